"""Platform tokens: issued by auth-gateway, verified by every service with one function.

Tokens are JWTs issued with python-jose. Author, staff and service tokens are ES256:
auth-gateway alone holds the private key, every service the public JWK set
(``PARAPHE_TOKEN_VERIFICATION_KEYS``). Signer tokens have a single verifier, signature-intake,
so they are HS256 under a secret only auth-gateway and intake hold
(``PARAPHE_SIGNER_TOKEN_KEYS``): intake could publish signatures anyway, so holding the secret
gives it no new power, and no other service has it. Each key is bound by its ``kid`` to one
algorithm (an EC key to ES256, a secret to HS256) and a secret to the signer audience alone,
so neither algorithm confusion nor a signer secret minting a staff token is possible. Both sets
may list several keys by ``kid``, so keys rotate without a flag day.

Verification sits on the signing hot path. python-jose with a key object built once per
``kid`` costs about 85 µs on the 2-core reference machine, nearly all of it the ECDSA check
itself (the raw ``cryptography`` call costs 73 µs), so the library stays; what is saved is
work done twice: keys are parsed once, and a token already verified is answered from a small
cache until it expires (a signer who signs several petitions, or polls, presents it again).

Signer tokens are checked without python-jose: an HMAC-SHA256 over the first two segments,
compared in constant time, then the same claim rules as python-jose's (issuer, subject, iat,
jti), in 3 µs instead of 26. It is at least as strict as python-jose: tests/test_tokens.py
shows the two agree on valid tokens and on every forgery and malformation it knows, but for
one known difference, where this check is the stricter: python-jose drops characters outside
the base64url alphabet from a signature before decoding it (a non-ASCII ``é``, or two stray
``!``), so the genuine signature with such characters added still passes there, whereas the
strict decoding here refuses the token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from jose import JWTError, jwk, jwt
from jose.backends.base import Key
from pydantic import AwareDatetime, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from paraphe_common.settings import ENV_PREFIX

ALGORITHM: Final = "ES256"
SIGNER_ALGORITHM: Final = "HS256"
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
# Genuine tokens share a handful of headers (one per key); forgeries cannot fill more than this.
_KNOWN_HEADERS: Final = 64
_REGISTERED_CLAIMS: Final = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "roles"})


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


# subject, audience, expires_at, roles, extra (its pairs, or JSON if it holds containers):
# what the verifier keeps of a token it checked.
_CachedClaims = tuple[str, str, int, tuple[str, ...], tuple[tuple[str, Any], ...] | str]
_ATOMIC: Final = (str, int, float, bool, type(None))


class TokenVerificationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # A JWK set (JSON) of the public keys auth-gateway signs with.
    token_verification_keys: str
    token_cache_size: int = Field(default=100_000, ge=0)


class SignerTokenSettings(BaseSettings):
    """For auth-gateway and signature-intake only."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # A JWK set (JSON) of secret ("oct") keys; new signer tokens use signer_token_key_id.
    signer_token_keys: SecretStr
    signer_token_key_id: str = Field(min_length=1)
    # Pepper rotation (paraphe_common.peppers): each version and the instant from which it
    # takes over, for petitions closing at or after it. Empty: one pepper, no rotation.
    signer_pepper_schedule: dict[str, AwareDatetime] = Field(default_factory=dict)


class TokenSigningSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # The private key (PEM) auth-gateway signs with, and the kid it is published under.
    token_signing_key: SecretStr
    token_signing_key_id: str = Field(min_length=1)


@dataclass(frozen=True)
class VerificationKey:
    key: Key
    algorithm: str
    audiences: frozenset[str] | None  # None: any audience
    secret: bytes | None = None  # an HS256 key's secret, checked with the standard library


def _b64url_decode(segment: str) -> bytes:
    """Strict base64url without padding, as JWS compact serialisation writes it."""
    return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)


def jose_payload(token: str, key: VerificationKey) -> dict[str, Any]:
    """The payload of a token whose signature python-jose checks under ``key``."""
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm],
            issuer=ISSUER,
            options={
                # The audience is checked against the caller's, by the verifier; times against
                # its clock, the same one that expires cache entries. (python-jose turns
                # verify_exp back on when require_exp is set: presence is checked there.)
                "verify_aud": False,
                "verify_exp": False,
                "verify_nbf": False,
                "require_sub": True,
            },
        )
    except JWTError as exc:
        raise InvalidToken(str(exc)) from exc


def hmac_payload(token: str, key: VerificationKey) -> dict[str, Any]:
    """What ``jose_payload`` answers for an HS256 token, with the standard library alone;
    a refusal where python-jose lets characters outside base64url in a signature pass."""
    if key.secret is None:
        raise InvalidToken("not a secret key")
    try:
        signing_input, _, signature = token.rpartition(".")
        _, _, payload_segment = signing_input.partition(".")
        expected = hmac.digest(key.secret, signing_input.encode("ascii"), "sha256")
        if not hmac.compare_digest(expected, _b64url_decode(signature)):
            raise InvalidToken("Signature verification failed.")
        payload = json.loads(_b64url_decode(payload_segment))
    # UnicodeError and JSONDecodeError among them; a payload nested too deep, signed, all the same.
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(payload, dict):
        raise InvalidToken("Invalid payload string: must be a json object")
    # python-jose's claim rules under jose_payload's options, in its order.
    issued_at = payload.get("iat")
    if "iat" in payload and (isinstance(issued_at, bool) or not _is_integral(issued_at)):
        raise InvalidToken("Issued At claim (iat) must be an integer.")
    if payload.get("iss") != ISSUER:
        raise InvalidToken("Invalid issuer")
    if "sub" not in payload:
        raise InvalidToken('missing required key "sub" among claims')
    if not isinstance(payload["sub"], str):
        raise InvalidToken("Subject must be a string.")
    if "jti" in payload and not isinstance(payload["jti"], str):
        raise InvalidToken("JWT ID must be a string.")
    if "at_hash" in payload:
        raise InvalidToken("No access_token provided to compare against at_hash claim.")
    return payload


def _is_integral(value: object) -> bool:
    """python-jose's iat rule: int(value) succeeds."""
    try:
        int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _jwk_entries(jwks_json: str) -> list[dict[str, Any]]:
    try:
        entries = json.loads(jwks_json)["keys"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError('not a JWK set: expected {"keys": [...]}') from exc
    if not isinstance(entries, list) or not entries:
        raise ValueError("the JWK set holds no key")
    return entries


def public_keys(jwks_json: str) -> dict[str, VerificationKey]:
    """The verification keys of a JWK set, by kid; only public EC P-256 keys are taken."""
    keys: dict[str, VerificationKey] = {}
    for entry in _jwk_entries(jwks_json):
        if entry.get("kty") != "EC" or entry.get("crv") != "P-256" or "d" in entry:
            raise ValueError("every verification key must be a public EC P-256 key")
        keys[str(entry["kid"])] = VerificationKey(jwk.construct(entry, ALGORITHM), ALGORITHM, None)
    return keys


def signer_secret_keys(jwks_json: str) -> dict[str, VerificationKey]:
    """The secret keys of signer tokens, by kid: HS256, for the signer audience only."""
    keys: dict[str, VerificationKey] = {}
    for entry in _jwk_entries(jwks_json):
        if entry.get("kty") != "oct" or len(str(entry.get("k", ""))) < 43:  # 32 bytes, base64url
            raise ValueError("every signer token key must be a secret of 32 bytes or more")
        secret = str(entry["k"]).rstrip("=")
        keys[str(entry["kid"])] = VerificationKey(
            jwk.construct(entry, SIGNER_ALGORITHM),
            SIGNER_ALGORITHM,
            frozenset({SIGNER}),
            secret=base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)),
        )
    return keys


class TokenVerifier:
    """The one check of platform tokens, for every service."""

    def __init__(
        self,
        keys: Mapping[str, VerificationKey],
        *,
        cache_size: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = dict(keys)
        self._headers: dict[str, VerificationKey] = {}
        # Plain tuples of strings and numbers, which Python's garbage collector stops
        # tracking: a full cache of Claims objects was 400,000 tracked objects, and each full
        # collection walked them (62 ms measured) — intake's slowest answers under load.
        self._cache: OrderedDict[str, _CachedClaims] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: TokenVerificationSettings) -> TokenVerifier:
        keys = public_keys(settings.token_verification_keys)
        if isinstance(settings, SignerTokenSettings):
            secrets = signer_secret_keys(settings.signer_token_keys.get_secret_value())
            if secrets.keys() & keys.keys():
                raise ValueError("a kid names both a public key and a signer secret")
            keys |= secrets
        return cls(keys, cache_size=settings.token_cache_size)

    def verify(self, token: str, audience: str, *, role: str | None = None) -> Claims:
        cached = self._cache.get(token)
        if cached is None or self._expired(cached[2]):
            claims = self._decode(token)
            self._remember(token, claims)
        else:
            subject, meant_for, expires_at, roles, extra = cached
            claims = Claims(
                subject, meant_for, expires_at, frozenset(roles),
                json.loads(extra) if isinstance(extra, str) else dict(extra),
            )  # fmt: skip
        # The cache is keyed by the whole token, so these checks hold for cached claims too.
        if claims.audience != audience:
            raise InvalidToken("token meant for another audience")
        if role is not None and role not in claims.roles:
            raise MissingRole(role)
        return claims

    def _signing_key(self, header_segment: str) -> VerificationKey:
        """The key a header names; the few distinct headers in use are parsed once each."""
        signing_key = self._headers.get(header_segment)
        if signing_key is not None:
            return signing_key
        try:
            header = json.loads(_b64url_decode(header_segment))
        # Read before any signature is checked: a header nested deeper than the parser goes
        # (6 kB, within a cookie) is anyone's to send.
        except (ValueError, binascii.Error, RecursionError):
            raise InvalidToken("malformed token") from None
        if not isinstance(header, dict):
            raise InvalidToken("malformed token")
        signing_key = self._keys.get(str(header.get("kid")))
        if signing_key is None or header.get("alg") != signing_key.algorithm:
            raise InvalidToken("unknown key or algorithm")
        if len(self._headers) < _KNOWN_HEADERS:
            self._headers[header_segment] = signing_key
        return signing_key

    def _decode(self, token: str) -> Claims:
        if token.count(".") != 2:
            raise InvalidToken("malformed token")
        signing_key = self._signing_key(token.partition(".")[0])
        if signing_key.secret is not None:
            payload = hmac_payload(token, signing_key)
        else:
            payload = jose_payload(token, signing_key)
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
        if signing_key.audiences is not None and audience not in signing_key.audiences:
            raise InvalidToken("this key does not sign tokens for that audience")
        roles = payload.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken("malformed roles")
        return Claims(
            subject=str(payload["sub"]),
            audience=audience,
            expires_at=expires_at,
            roles=frozenset(roles),
            extra={k: v for k, v in payload.items() if k not in _REGISTERED_CLAIMS},
        )

    def _expired(self, expires_at: int) -> bool:
        return expires_at + _LEEWAY_SECONDS <= self._clock()

    def _remember(self, token: str, claims: Claims) -> None:
        if self._cache_size == 0:
            return
        extra = tuple(claims.extra.items())
        # Pairs of plain values are untracked; containers (a pepper rotation's keys) would
        # keep the entry tracked: then the claims are kept as JSON.
        flat = all(isinstance(value, _ATOMIC) for _, value in extra)
        self._cache[token] = (
            claims.subject, claims.audience, claims.expires_at, tuple(claims.roles),
            extra if flat else json.dumps(dict(extra)),
        )  # fmt: skip
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


class TokenIssuer:
    """auth-gateway's side: signs platform tokens."""

    def __init__(self, private_key_pem: str, key_id: str, algorithm: str = ALGORITHM) -> None:
        self._key = jwk.construct(private_key_pem, algorithm)
        self._key_id = key_id
        self._algorithm = algorithm

    @classmethod
    def from_settings(cls, settings: TokenSigningSettings) -> TokenIssuer:
        return cls(settings.token_signing_key.get_secret_value(), settings.token_signing_key_id)

    @classmethod
    def for_signers(cls, settings: SignerTokenSettings) -> TokenIssuer:
        """The issuer of signer tokens, under the current signer secret."""
        entries = _jwk_entries(settings.signer_token_keys.get_secret_value())
        current = [e for e in entries if str(e.get("kid")) == settings.signer_token_key_id]
        if not current:
            raise ValueError("PARAPHE_SIGNER_TOKEN_KEY_ID names no key of the set")
        issuer = cls.__new__(cls)
        issuer._key = jwk.construct(current[0], SIGNER_ALGORITHM)
        issuer._key_id = settings.signer_token_key_id
        issuer._algorithm = SIGNER_ALGORITHM
        return issuer

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
            jwt.encode(payload, self._key, algorithm=self._algorithm, headers={"kid": self._key_id})
        )
