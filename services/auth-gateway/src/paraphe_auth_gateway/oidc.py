"""An OpenID Connect relying party, as FranceConnect v2 expects one to behave.

Nothing here knows the sandbox: the issuer, the client id and the secret are settings, and
everything else comes from the provider's discovery document and JWK set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import urlencode, urlsplit

import aiohttp
from jose import JWTError, jwk, jwt
from jose.backends.base import Key
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)

# Signatures a provider may use; "none" and every HMAC algorithm are refused by construction.
ALGORITHMS = ("ES256", "RS256")
_LEEWAY_SECONDS = 30
_DISCOVERY_TTL_SECONDS = 3600
# An unknown kid triggers a JWKS refresh, but not more often than this (a forger could
# otherwise make us fetch the JWKS at every request).
_JWKS_REFRESH_INTERVAL_SECONDS = 30
DEFAULT_KEYS_MAX_AGE_SECONDS = 3600
_DOCUMENT_NAMES: Final = {
    "discovery": "discovery document",
    "jwks": "JWKS",
    "token": "token endpoint's answer",
}
# The algorithm of a key that names none, by its type.
_ALGORITHM_OF_KEY_TYPE: Final = {"EC": "ES256", "RSA": "RS256"}


class SignInFailed(Exception):
    """The provider's answer cannot be trusted. ``reason`` is a code for logs and metrics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProviderUnavailable(SignInFailed):
    """The provider failed, not the person: it did not answer, or in time, answered an error,
    or not in the shape it must (discovery, JWKS, token, userinfo)."""


def _web_address(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("not an http(s) URL")
    return value


WebAddress = Annotated[str, AfterValidator(_web_address)]


class _Document(BaseModel):
    """What a provider publishes, read as OpenID Connect says it is; other members ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Discovery(_Document):
    """The provider's discovery document (OpenID Connect Discovery 1.0 §3), what we use of it."""

    issuer: str
    authorization_endpoint: WebAddress
    token_endpoint: WebAddress
    userinfo_endpoint: WebAddress
    jwks_uri: WebAddress
    end_session_endpoint: WebAddress | None = None


class JsonWebKey(BaseModel):
    """One key of a JWKS (RFC 7517 §4), its type's own members (x, y, n, e...) kept as extras.

    ``kid`` is optional in RFC 7517 but not to us: tokens name their key by it.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    kty: str
    kid: str
    use: str = "sig"
    alg: str | None = None


class JsonWebKeySet(_Document):
    keys: list[JsonWebKey]


class TokenAnswer(_Document):
    """The token endpoint's answer (OpenID Connect Core 3.1.3.3), what we use of it."""

    access_token: str
    id_token: str


class OAuthError(_Document):
    """An error answer of the token endpoint (RFC 6749 §5.2)."""

    error: str


def _oauth_error(body: bytes) -> str | None:
    try:
        return OAuthError.model_validate_json(body).error
    except ValidationError:
        return None


D = TypeVar("D", bound=BaseModel)


def _shape_errors(exc: ValidationError) -> str:
    """Where a document departs from its shape and how, without its values."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'document'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )


@dataclass(frozen=True)
class Client:
    issuer: str
    client_id: str
    client_secret: str
    acr_values: str | None = None


@dataclass(frozen=True)
class Tokens:
    access_token: str
    id_token: str


class Provider:
    def __init__(
        self,
        client: Client,
        http: aiohttp.ClientSession,
        *,
        keys_max_age: float = DEFAULT_KEYS_MAX_AGE_SECONDS,
    ) -> None:
        self.client = client
        self._http = http
        self._metadata: Discovery | None = None
        self._metadata_at = 0.0
        # A key the provider withdraws (after a leak) is trusted no longer than keys_max_age:
        # past it, the keys are fetched again before use, or nothing is verified.
        self._keys_max_age = keys_max_age
        self._keys: dict[str, Key] = {}
        self._keys_at: float | None = None  # when the keys were fetched
        self._keys_tried_at: float | None = None  # when the last fetch ended, or failed
        self._keys_lock = asyncio.Lock()
        self._authorization_queries: dict[tuple[str, str, str], str] = {}

    async def metadata(self) -> Discovery:
        if self._metadata is None or time.monotonic() - self._metadata_at > _DISCOVERY_TTL_SECONDS:
            url = self.client.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_document(url, Discovery, "discovery")
            if document.issuer != self.client.issuer:
                raise SignInFailed("discovery-issuer-mismatch")
            self._metadata, self._metadata_at = document, time.monotonic()
        return self._metadata

    async def authorization_url(
        self,
        *,
        scope: str,
        redirect_uri: str,
        state: str,
        nonce: str,
        login_hint: str | None = None,
    ) -> str:
        endpoint = (await self.metadata()).authorization_endpoint
        # What every sign-in of a flow shares is encoded once; only its own values each time.
        shared = self._authorization_queries.get((endpoint, scope, redirect_uri))
        if shared is None:
            params = {
                "response_type": "code",
                "client_id": self.client.client_id,
                "redirect_uri": redirect_uri,
                "scope": scope,
                "prompt": "login consent",
            }
            if self.client.acr_values:
                params["acr_values"] = self.client.acr_values
            shared = f"{endpoint}?{urlencode(params)}"
            self._authorization_queries[(endpoint, scope, redirect_uri)] = shared
        own = {"state": state, "nonce": nonce}
        if login_hint:
            own["login_hint"] = login_hint
        return f"{shared}&{urlencode(own)}"

    async def exchange(self, code: str, redirect_uri: str) -> Tokens:
        """The authorization code for tokens, authenticating with client_secret_post."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client.client_id,
            "client_secret": self.client.client_secret,
        }
        try:
            # Encoded here: aiohttp's FormData would build a multipart writer for nothing.
            async with self._http.post(
                metadata.token_endpoint,
                data=urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ) as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable("token-endpoint-unreachable") from exc
        if status != 200:
            if 400 <= status < 500 and _oauth_error(body) == "invalid_grant":
                # The code is unknown, spent or expired (RFC 6749 §5.2): this sign-in fails,
                # and the person mends it by starting again.
                raise SignInFailed("token-endpoint-refused-the-code")
            # The provider failing, or refusing our client (a secret rotated on one side only):
            # nothing the person can mend, and what the alert on provider errors is for.
            raise ProviderUnavailable(f"token-endpoint-answered-{status}")
        try:
            answer = TokenAnswer.model_validate_json(body)
        except ValidationError as exc:
            self._log_malformed("token", _shape_errors(exc))
            raise ProviderUnavailable("token-endpoint-malformed") from None
        return Tokens(answer.access_token, answer.id_token)

    async def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        claims = await self._verify(id_token, "id-token")
        for required in ("sub", "iat", "exp", "nonce"):
            if required not in claims:
                raise SignInFailed(f"id-token-without-{required}")
        if not isinstance(claims["iat"], int) or claims["iat"] > time.time() + _LEEWAY_SECONDS:
            raise SignInFailed("id-token-issued-in-the-future")
        if claims["nonce"] != nonce:
            raise SignInFailed("nonce-mismatch")
        self._check_authorized_party(claims)
        if self.client.acr_values:
            accepted = self.client.acr_values.split()
            if claims.get("acr") not in accepted:
                raise SignInFailed("acr-not-accepted")
        return claims

    def _check_authorized_party(self, claims: dict[str, Any]) -> None:
        """OpenID Connect Core 3.1.3.7: a token meant for other clients too is ours to use
        only if it names us as its authorized party (``azp``), and a token naming another
        party is not ours, whatever its audiences. That ours is among them is checked already.
        """
        ours = self.client.client_id
        if "azp" in claims:
            if claims["azp"] != ours:
                raise SignInFailed("id-token-azp-mismatch")
            return
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if any(audience != ours for audience in audiences):
            raise SignInFailed("id-token-without-azp")

    async def userinfo(self, access_token: str, *, subject: str) -> dict[str, Any]:
        """The user's claims, which FranceConnect v2 sends as a signed JWT."""
        metadata = await self.metadata()
        try:
            async with self._http.get(
                metadata.userinfo_endpoint,
                headers={"Authorization": f"Bearer {access_token}"},
            ) as response:
                if response.status >= 500:
                    raise ProviderUnavailable(f"userinfo-answered-{response.status}")
                if response.status != 200:
                    # The access token it has just given refused: this sign-in's to start again.
                    raise SignInFailed("userinfo-refused")
                if response.content_type != "application/jwt":
                    # A web page, or claims unsigned: not the answer FranceConnect v2 gives.
                    raise ProviderUnavailable("userinfo-not-a-jwt")
                signed = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable("userinfo-unreachable") from exc
        claims = await self._verify(signed.strip(), "userinfo")
        if claims.get("sub") != subject:
            raise SignInFailed("userinfo-subject-mismatch")
        return claims

    async def end_session_url(
        self, *, id_token_hint: str, state: str, post_logout_redirect_uri: str
    ) -> str | None:
        endpoint = (await self.metadata()).end_session_endpoint
        if not endpoint:
            return None
        params = {
            "id_token_hint": id_token_hint,
            "state": state,
            "post_logout_redirect_uri": post_logout_redirect_uri,
        }
        return f"{endpoint}?{urlencode(params)}"

    async def _verify(self, token: str, what: str) -> dict[str, Any]:
        """Signature from the provider's JWKS, then iss, aud and exp."""
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise SignInFailed(f"{what}-malformed") from exc
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise SignInFailed(f"{what}-algorithm-refused")
        key = await self._key(str(header.get("kid")), what)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.client.client_id,
                issuer=self.client.issuer,
                # python-jose checks an aud only when there is one: a token without is refused.
                options={"leeway": _LEEWAY_SECONDS, "verify_at_hash": False, "require_aud": True},
            )
        except ExpiredSignatureError as exc:
            raise SignInFailed(f"{what}-expired") from exc
        except JWTClaimsError as exc:
            raise SignInFailed(f"{what}-claims-refused") from exc
        except JWTError as exc:
            raise SignInFailed(f"{what}-signature-refused") from exc
        return claims

    async def _key(self, kid: str, what: str) -> Key:
        now = time.monotonic()
        if self._keys_at is None or now - self._keys_at >= self._keys_max_age:
            await self._refresh_keys(now)
        elif kid not in self._keys and (
            self._keys_tried_at is None
            or now - self._keys_tried_at > _JWKS_REFRESH_INTERVAL_SECONDS
        ):
            await self._refresh_keys(now)  # perhaps a key the provider has just added
        key = self._keys.get(kid)
        if key is None:
            raise SignInFailed(f"{what}-unknown-key")
        return key

    async def _refresh_keys(self, wanted_at: float) -> None:
        """The provider's keys as of ``wanted_at`` or later; sign-ins that want them at once
        share one fetch. ProviderUnavailable when they cannot be had: the old ones are not
        used past their max age."""
        async with self._keys_lock:
            if self._keys_at is not None and self._keys_at >= wanted_at:
                return  # fetched while this sign-in waited
            if self._keys_tried_at is not None and self._keys_tried_at >= wanted_at:
                # That fetch failed: the provider is not asked again by each sign-in queued
                # behind it, each waiting out the timeout in turn.
                raise ProviderUnavailable("jwks-unavailable")
            try:
                keys = await self._fetch_keys()
            except Exception:
                self._keys_tried_at = time.monotonic()
                raise
            self._keys_tried_at = self._keys_at = time.monotonic()
            self._keys = keys

    async def _fetch_keys(self) -> dict[str, Key]:
        jwks_uri = (await self.metadata()).jwks_uri
        document = await self._get_document(jwks_uri, JsonWebKeySet, "jwks")
        keys: dict[str, Key] = {}
        for entry in document.keys:
            algorithm = entry.alg or _ALGORITHM_OF_KEY_TYPE.get(entry.kty)
            if entry.use != "sig" or algorithm not in ALGORITHMS:
                continue  # an encryption key, or one of a kind we never verify with
            try:
                keys[entry.kid] = jwk.construct(entry.model_dump(exclude_none=True), algorithm)
            except (JOSEError, ValueError, TypeError):
                # A key of ours that cannot be read: the JWKS is broken, not that key alone.
                self._log_malformed("jwks", f"key {entry.kid!r} is not a usable {algorithm} key")
                raise ProviderUnavailable("jwks-malformed") from None
        return keys

    async def _get_document(self, url: str, model: type[D], what: str) -> D:
        try:
            async with self._http.get(url) as response:
                if response.status != 200:
                    raise ProviderUnavailable(f"{what}-unavailable")
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(f"{what}-unavailable") from exc
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            self._log_malformed(what, _shape_errors(exc))
            raise ProviderUnavailable(f"{what}-malformed") from None

    def _log_malformed(self, what: str, problems: str) -> None:
        log.warning(
            "the %s of %s is not as OpenID Connect has it (%s): the provider is taken for "
            "unavailable",
            _DOCUMENT_NAMES[what],
            self.client.issuer,
            problems,
        )
