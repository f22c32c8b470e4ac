"""One OpenID Connect provider as FranceConnect v2 behaves for a relying party.

Two of them run side by side: citizens at the issuer itself, public agents under ``/agents``.
Each has its own signing key, its own people and its own transient state; they share the
client registry. Subjects are pairwise: the same person has a different ``sub`` at each client.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from multidict import MultiMapping

from paraphe_franceconnect_sandbox.authorization import (
    ACR_VALUES,
    AuthorizationRefused,
    AuthorizationRequest,
    parse_authorization_request,
    redirection,
)
from paraphe_franceconnect_sandbox.clients import ClientRegistry
from paraphe_franceconnect_sandbox.identities import (
    AgentDirectory,
    CitizenDirectory,
    Directory,
    Identity,
)
from paraphe_franceconnect_sandbox.keys import ALGORITHM, InvalidSignature, SigningKey
from paraphe_franceconnect_sandbox.store import TransientStore

DISCOVERY_PATH = "/.well-known/openid-configuration"
AUTHORIZE_PATH = "/api/v2/authorize"
CHOOSE_PATH = "/api/v2/authorize/choose"
TOKEN_PATH = "/api/v2/token"  # noqa: S105 - a path, not a secret
USERINFO_PATH = "/api/v2/userinfo"
END_SESSION_PATH = "/api/v2/session/end"
JWKS_PATH = "/api/v2/jwks"

# Seconds. A person takes a while to pick an identity; a relying party redeems its code at once.
PENDING_AUTHORIZATION_TTL = 600
CODE_TTL = 60
ACCESS_TOKEN_TTL = 60
ID_TOKEN_LIFETIME = 60


@dataclass(frozen=True)
class Profile:
    """What tells the two providers apart."""

    prefix: str
    title: str
    # Each scope and the claims it releases in userinfo ("openid" releases none).
    scopes: Mapping[str, tuple[str, ...]]
    directory: Directory

    @property
    def claims(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for claims in self.scopes.values() for c in claims))


ID_TOKEN_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr")
CITIZEN_CLAIMS = (
    "given_name", "family_name", "birthdate", "email", "gender", "birthplace", "birthcountry",
    "preferred_username",
)  # fmt: skip
AGENT_CLAIMS = ("given_name", "usual_name", "email", "uid", "organizational_unit")

CITIZENS = Profile(
    prefix="",
    title="FranceConnect (bac à sable)",
    scopes={
        "openid": (),
        **{claim: (claim,) for claim in CITIZEN_CLAIMS},
        # FranceConnect's grouped scopes.
        "profile": ("given_name", "family_name", "birthdate", "gender", "preferred_username"),
        "birth": ("birthplace", "birthcountry"),
        "identite_pivot": (
            "given_name",
            "family_name",
            "birthdate",
            "gender",
            "birthplace",
            "birthcountry",
        ),
    },
    directory=CitizenDirectory(),
)
AGENTS = Profile(
    prefix="/agents",
    title="FranceConnect Agents (bac à sable)",
    scopes={"openid": (), **{claim: (claim,) for claim in AGENT_CLAIMS}},
    directory=AgentDirectory(),
)


def pairwise_subject(client_id: str, identity_id: str) -> str:
    """The same person seen by two clients has two unrelated subjects, stable at each."""
    return hashlib.sha256(f"{client_id}:{identity_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Grant:
    """An identity given to a client: what its code, then its access token, stand for."""

    request: AuthorizationRequest
    identity: Identity
    subject: str
    auth_time: int


class TokenRefused(Exception):
    """An OAuth error answer of the token endpoint (RFC 6749, section 5.2)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class InvalidAccessToken(Exception):
    """No live access token goes by this value."""


class EndSessionRefused(Exception):
    """A logout request that cannot be honoured; the message is French, for a page."""


class Provider:
    def __init__(self, profile: Profile, sandbox_issuer: str, clients: ClientRegistry) -> None:
        self.profile = profile
        self.issuer = sandbox_issuer + profile.prefix
        self.clients = clients
        self.key = SigningKey()
        self._pending: TransientStore[AuthorizationRequest] = TransientStore(
            PENDING_AUTHORIZATION_TTL
        )
        self._codes: TransientStore[Grant] = TransientStore(CODE_TTL)
        self._access_tokens: TransientStore[Grant] = TransientStore(ACCESS_TOKEN_TTL)
        # Redeemed codes and the access token each gave: a code presented again reveals a
        # leak, and the token it gave is revoked (RFC 6749, section 4.1.2).
        self._redeemed: TransientStore[str] = TransientStore(ACCESS_TOKEN_TTL)

    def path(self, endpoint: str) -> str:
        return self.profile.prefix + endpoint

    def url(self, endpoint: str) -> str:
        return self.issuer + endpoint

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.url(AUTHORIZE_PATH),
            "token_endpoint": self.url(TOKEN_PATH),
            "userinfo_endpoint": self.url(USERINFO_PATH),
            "end_session_endpoint": self.url(END_SESSION_PATH),
            "jwks_uri": self.url(JWKS_PATH),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "userinfo_signing_alg_values_supported": [ALGORITHM],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "scopes_supported": list(self.profile.scopes),
            "claims_supported": [*ID_TOKEN_CLAIMS, *self.profile.claims],
            "acr_values_supported": list(ACR_VALUES),
            "prompt_values_supported": ["login", "consent"],
            "authorization_response_iss_parameter_supported": True,
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.public_jwk()]}

    # The authorization endpoint.

    def authorization_request(self, query: MultiMapping[str]) -> AuthorizationRequest:
        return parse_authorization_request(query, self.clients, frozenset(self.profile.scopes))

    def hinted_identity(self, request: AuthorizationRequest, today: date) -> Identity | None:
        """The person ``login_hint`` names, None without a hint; an unknown one is refused."""
        if request.login_hint is None:
            return None
        identity = self.profile.directory.find(request.login_hint, today)
        if identity is None:
            raise AuthorizationRefused(
                "invalid_request",
                "login_hint names no demo identity of this provider.",
                request.redirect_uri,
                request.state,
            )
        return identity

    def identity(self, identity_id: str, today: date) -> Identity | None:
        return self.profile.directory.find(identity_id, today)

    def hold(self, request: AuthorizationRequest) -> str:
        """Keep a request while a person picks an identity; the key names the transaction."""
        return self._pending.add(request)

    def pending(self, transaction: str) -> AuthorizationRequest | None:
        return self._pending.get(transaction)

    def release(self, transaction: str) -> AuthorizationRequest | None:
        """The pending request, which no second choice can reuse."""
        return self._pending.take(transaction)

    def grant(self, request: AuthorizationRequest, identity: Identity) -> str:
        """Where to send the browser with a single-use code for ``identity``."""
        code = self._codes.add(
            Grant(
                request=request,
                identity=identity,
                subject=pairwise_subject(request.client_id, identity.id),
                auth_time=int(time.time()),
            )
        )
        return redirection(
            request.redirect_uri, {"code": code, "state": request.state, "iss": self.issuer}
        )

    def deny(self, request: AuthorizationRequest) -> str:
        """Where to send a browser whose person cancelled."""
        return self.refusal(
            AuthorizationRefused(
                "access_denied",
                "The user cancelled the authentication.",
                request.redirect_uri,
                request.state,
            )
        )

    def refusal(self, refused: AuthorizationRefused) -> str:
        params = {"error": refused.error, "error_description": refused.description}
        if refused.state is not None:
            params["state"] = refused.state
        return redirection(refused.redirect_uri, params | {"iss": self.issuer})

    # The token endpoint.

    def redeem(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Tokens for an authorization code, which works once (client_secret_post)."""
        client = self.clients.authenticate(form.get("client_id", ""), form.get("client_secret", ""))
        if client is None:
            raise TokenRefused(401, "invalid_client", "Unknown client or wrong secret.")
        grant_type = form.get("grant_type")
        if not grant_type:
            raise TokenRefused(400, "invalid_request", "grant_type is required.")
        if grant_type != "authorization_code":
            raise TokenRefused(
                400, "unsupported_grant_type", "Only grant_type=authorization_code is supported."
            )
        code = form.get("code")
        if not code:
            raise TokenRefused(400, "invalid_request", "code is required.")
        grant = self._codes.take(code)
        if grant is None:
            replayed_token = self._redeemed.take(code)
            if replayed_token is not None:
                self._access_tokens.discard(replayed_token)
            raise TokenRefused(400, "invalid_grant", "Unknown, expired or already used code.")
        if grant.request.client_id != client.client_id:
            raise TokenRefused(400, "invalid_grant", "This code was issued to another client.")
        if form.get("redirect_uri") != grant.request.redirect_uri:
            raise TokenRefused(
                400, "invalid_grant", "redirect_uri differs from the authorization request's."
            )
        access_token = self._access_tokens.add(grant)
        self._redeemed.put(code, access_token)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_TTL,
            "id_token": self._id_token(grant),
            "scope": " ".join(grant.request.scopes),
        }

    def _id_token(self, grant: Grant) -> str:
        # No identity claim here: FranceConnect gives them in userinfo only.
        now = int(time.time())
        return self.key.sign(
            {
                "iss": self.issuer,
                "sub": grant.subject,
                "aud": grant.request.client_id,
                "exp": now + ID_TOKEN_LIFETIME,
                "iat": now,
                "auth_time": grant.auth_time,
                "nonce": grant.request.nonce,
                "acr": grant.request.acr,
                "amr": ["pwd"],
            }
        )

    # The userinfo endpoint.

    def userinfo(self, access_token: str) -> str:
        """The claims the granted scopes allow, as a JWT signed like the ID token."""
        grant = self._access_tokens.get(access_token)
        if grant is None:
            raise InvalidAccessToken
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": grant.request.client_id,
            "iat": now,
            "exp": now + ACCESS_TOKEN_TTL,
            "sub": grant.subject,
        }
        known = grant.identity.claims()
        for scope in grant.request.scopes:
            for claim in self.profile.scopes[scope]:
                claims[claim] = known[claim]
        return self.key.sign(claims)

    # The end-session endpoint.

    def end_session(self, query: MultiMapping[str]) -> str:
        """Where to send the browser after logout; refused unless everything checks."""
        id_token_hint = query.get("id_token_hint")
        state = query.get("state")
        post_logout_redirect_uri = query.get("post_logout_redirect_uri")
        if not id_token_hint or not state or not post_logout_redirect_uri:
            raise EndSessionRefused(
                "La déconnexion demande id_token_hint, state et post_logout_redirect_uri."
            )
        try:
            # An expired ID token still says who logs out: only its signature matters here.
            claims = self.key.verify(id_token_hint, issuer=self.issuer)
        except InvalidSignature:
            raise EndSessionRefused(
                "Le jeton d'identité présenté n'a pas été émis par ce fournisseur."
            ) from None
        if "nonce" not in claims:
            # Userinfo answers are signed by the same key but are not ID tokens.
            raise EndSessionRefused("Le jeton présenté n'est pas un jeton d'identité.")
        client = self.clients.find(claims["aud"]) if isinstance(claims.get("aud"), str) else None
        if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uris:
            raise EndSessionRefused(
                "L'adresse de retour après déconnexion n'est pas enregistrée pour ce fournisseur "
                "de service."
            )
        return redirection(post_logout_redirect_uri, {"state": state})
