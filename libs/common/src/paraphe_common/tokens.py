"""Platform tokens: issued by auth-gateway, verified by every service with one function.

Tokens are ES256 JWTs issued with python-jose. auth-gateway alone holds the private key;
the others hold the public JWK set (``PARAPHE_TOKEN_VERIFICATION_KEYS``), which may list
several keys by ``kid`` so keys can be rotated without a flag day.

Verification sits on the signing hot path. python-jose with a key object built once per
``kid`` costs about 85 µs on the 2-core reference machine, nearly all of it the ECDSA check
itself (the raw ``cryptography`` call costs 73 µs), so the library stays; what is saved is
work done twice: keys are parsed once, and a token already verified is answered from a small
cache until it expires (a signer who signs several petitions, or polls, presents it again).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from jose import JWTError, jwk, jwt
from jose.backends.base import Key
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from paraphe_common.settings import ENV_PREFIX

ALGORITHM: Final = "ES256"
ISSUER: Final = "paraphe"

# Audiences: a token made for one use is refused for any other.
SIGNER: Final = "paraphe:signer"
AUTHOR: Final = "paraphe:author"
STAFF: Final = "paraphe:staff"
SERVICE: Final = "paraphe:service"

# Staff roles, granted by auth-gateway's configuration only.
MODERATOR: Final = "moderator"
COMMITTEE_SECRETARIAT: Final = "committee-secretariat"
ADMIN: Final = "admin"
STAFF_ROLES: Final = frozenset({MODERATOR, COMMITTEE_SECRETARIAT, ADMIN})

_LEEWAY_SECONDS: Final = 30


class InvalidToken(Exception):
    """The token is absent, malformed, forged, expired or meant for another use."""


class MissingRole(Exception):
    """The token is genuine but does not carry the role the action needs."""


@dataclass(frozen=True)
class Claims:
    subject: str
    audience: str
    expires_at: int
    roles: frozenset[str] = frozenset()
    extra: Mapping[str, Any] = field(default_factory=dict)


class TokenVerificationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # A JWK set (JSON) of the public keys auth-gateway signs with.
    token_verification_keys: str
    token_cache_size: int = Field(default=100_000, ge=0)


class TokenSigningSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # The private key (PEM) auth-gateway signs with, and the kid it is published under.
    token_signing_key: SecretStr
    token_signing_key_id: str = Field(min_length=1)


def public_keys(jwks_json: str) -> dict[str, Key]:
    """The verification keys of a JWK set, by kid; only EC P-256 signing keys are taken."""
    try:
        document = json.loads(jwks_json)
        entries = document["keys"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError('not a JWK set: expected {"keys": [...]}') from exc
    keys: dict[str, Key] = {}
    for entry in entries:
        if entry.get("kty") != "EC" or entry.get("crv") != "P-256" or "d" in entry:
            raise ValueError("every verification key must be a public EC P-256 key")
        keys[str(entry["kid"])] = jwk.construct(entry, ALGORITHM)
    if not keys:
        raise ValueError("the JWK set holds no key")
    return keys


class TokenVerifier:
    """The one check of platform tokens, for every service."""

    def __init__(
        self,
        keys: Mapping[str, Key],
        *,
        cache_size: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = dict(keys)
        self._cache: OrderedDict[str, Claims] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: TokenVerificationSettings) -> TokenVerifier:
        return cls(
            public_keys(settings.token_verification_keys), cache_size=settings.token_cache_size
        )

    def verify(self, token: str, audience: str, *, role: str | None = None) -> Claims:
        claims = self._cache.get(token)
        if claims is None or self._expired(claims.expires_at):
            claims = self._decode(token)
            self._remember(token, claims)
        # The cache is keyed by the whole token, so these checks hold for cached claims too.
        if claims.audience != audience:
            raise InvalidToken("token meant for another audience")
        if role is not None and role not in claims.roles:
            raise MissingRole(role)
        return claims

    def _decode(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise InvalidToken("malformed token") from exc
        key = self._keys.get(str(header.get("kid")))
        if key is None or header.get("alg") != ALGORITHM:
            raise InvalidToken("unknown key or algorithm")
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={
                    # The audience is checked against the caller's, below; times against our
                    # clock, the same one that expires cache entries. (python-jose turns
                    # verify_exp back on when require_exp is set: presence is checked below.)
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "require_sub": True,
                },
            )
        except JWTError as exc:
            raise InvalidToken(str(exc)) from exc
        expires_at, issued_at = payload.get("exp"), payload.get("iat")
        if not isinstance(expires_at, int) or not isinstance(issued_at, int):
            raise InvalidToken("exp and iat are required integers")
        if self._expired(expires_at):
            raise InvalidToken("token expired")
        if issued_at > self._clock() + _LEEWAY_SECONDS:
            raise InvalidToken("token issued in the future")
        audience = payload.get("aud")
        if not isinstance(audience, str):
            raise InvalidToken("token has no single audience")
        roles = payload.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken("malformed roles")
        known = {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "roles"}
        return Claims(
            subject=str(payload["sub"]),
            audience=audience,
            expires_at=expires_at,
            roles=frozenset(roles),
            extra={k: v for k, v in payload.items() if k not in known},
        )

    def _expired(self, expires_at: int) -> bool:
        return expires_at + _LEEWAY_SECONDS <= self._clock()

    def _remember(self, token: str, claims: Claims) -> None:
        if self._cache_size == 0:
            return
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


class TokenIssuer:
    """auth-gateway's side: signs platform tokens."""

    def __init__(self, private_key_pem: str, key_id: str) -> None:
        self._key = jwk.construct(private_key_pem, ALGORITHM)
        self._key_id = key_id

    @classmethod
    def from_settings(cls, settings: TokenSigningSettings) -> TokenIssuer:
        return cls(settings.token_signing_key.get_secret_value(), settings.token_signing_key_id)

    def issue(
        self,
        audience: str,
        subject: str,
        lifetime_seconds: int,
        *,
        roles: frozenset[str] = frozenset(),
        **extra: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "exp": now + lifetime_seconds,
            "jti": uuid.uuid4().hex,
            **extra,
        }
        if roles:
            payload["roles"] = sorted(roles)
        return str(
            jwt.encode(payload, self._key, algorithm=ALGORITHM, headers={"kid": self._key_id})
        )
