"""An OpenID Connect relying party, as FranceConnect v2 expects one to behave.

Nothing here knows the sandbox: the issuer, the client id and the secret are settings, and
everything else comes from the provider's discovery document and JWK set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from jose import JWTError, jwk, jwt
from jose.backends.base import Key
from jose.exceptions import ExpiredSignatureError, JWTClaimsError

log = logging.getLogger(__name__)

# Signatures a provider may use; "none" and every HMAC algorithm are refused by construction.
ALGORITHMS = ("ES256", "RS256")
_LEEWAY_SECONDS = 30
_DISCOVERY_TTL_SECONDS = 3600
# An unknown kid triggers a JWKS refresh, but not more often than this (a forger could
# otherwise make us fetch the JWKS at every request).
_JWKS_REFRESH_INTERVAL_SECONDS = 30


class SignInFailed(Exception):
    """The provider's answer cannot be trusted. ``reason`` is a code for logs and metrics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    def __init__(self, client: Client, http: aiohttp.ClientSession) -> None:
        self.client = client
        self._http = http
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: dict[str, Key] = {}
        self._keys_at = 0.0
        self._authorization_queries: dict[tuple[str, str, str], str] = {}

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._metadata_at > _DISCOVERY_TTL_SECONDS:
            url = self.client.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json(url, "discovery")
            if document.get("issuer") != self.client.issuer:
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
        metadata = await self.metadata()
        endpoint = metadata["authorization_endpoint"]
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
                metadata["token_endpoint"],
                data=urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ) as response:
                if response.status != 200:
                    raise SignInFailed("token-endpoint-refused")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SignInFailed("token-endpoint-unreachable") from exc
        if not isinstance(answer, dict):
            raise SignInFailed("token-endpoint-malformed")
        access_token, id_token = answer.get("access_token"), answer.get("id_token")
        if not isinstance(access_token, str) or not isinstance(id_token, str):
            raise SignInFailed("token-endpoint-malformed")
        return Tokens(access_token, id_token)

    async def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        claims = await self._verify(id_token, "id-token")
        for required in ("sub", "iat", "exp", "nonce"):
            if required not in claims:
                raise SignInFailed(f"id-token-without-{required}")
        if not isinstance(claims["iat"], int) or claims["iat"] > time.time() + _LEEWAY_SECONDS:
            raise SignInFailed("id-token-issued-in-the-future")
        if claims["nonce"] != nonce:
            raise SignInFailed("nonce-mismatch")
        if self.client.acr_values:
            accepted = self.client.acr_values.split()
            if claims.get("acr") not in accepted:
                raise SignInFailed("acr-not-accepted")
        return claims

    async def userinfo(self, access_token: str, *, subject: str) -> dict[str, Any]:
        """The user's claims, which FranceConnect v2 sends as a signed JWT."""
        metadata = await self.metadata()
        try:
            async with self._http.get(
                metadata["userinfo_endpoint"],
                headers={"Authorization": f"Bearer {access_token}"},
            ) as response:
                if response.status != 200:
                    raise SignInFailed("userinfo-refused")
                if response.content_type != "application/jwt":
                    raise SignInFailed("userinfo-not-signed")
                signed = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SignInFailed("userinfo-unreachable") from exc
        claims = await self._verify(signed.strip(), "userinfo")
        if claims.get("sub") != subject:
            raise SignInFailed("userinfo-subject-mismatch")
        return claims

    async def end_session_url(
        self, *, id_token_hint: str, state: str, post_logout_redirect_uri: str
    ) -> str | None:
        endpoint = (await self.metadata()).get("end_session_endpoint")
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
                options={"leeway": _LEEWAY_SECONDS, "verify_at_hash": False},
            )
        except ExpiredSignatureError as exc:
            raise SignInFailed(f"{what}-expired") from exc
        except JWTClaimsError as exc:
            raise SignInFailed(f"{what}-claims-refused") from exc
        except JWTError as exc:
            raise SignInFailed(f"{what}-signature-refused") from exc
        return claims

    async def _key(self, kid: str, what: str) -> Key:
        if kid not in self._keys and (
            time.monotonic() - self._keys_at > _JWKS_REFRESH_INTERVAL_SECONDS or not self._keys
        ):
            await self._refresh_keys()
        key = self._keys.get(kid)
        if key is None:
            raise SignInFailed(f"{what}-unknown-key")
        return key

    async def _refresh_keys(self) -> None:
        document = await self._get_json((await self.metadata())["jwks_uri"], "jwks")
        keys: dict[str, Key] = {}
        for entry in document.get("keys", []):
            if entry.get("use", "sig") != "sig" or "kid" not in entry:
                continue
            algorithm = entry.get("alg") or ("ES256" if entry.get("kty") == "EC" else "RS256")
            if algorithm not in ALGORITHMS:
                continue
            try:
                keys[str(entry["kid"])] = jwk.construct(entry, algorithm)
            except JWTError:
                log.warning("ignoring a JWKS entry that is not a usable key")
        self._keys, self._keys_at = keys, time.monotonic()

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http.get(url) as response:
                if response.status != 200:
                    raise SignInFailed(f"{what}-unavailable")
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SignInFailed(f"{what}-unavailable") from exc
        if not isinstance(document, dict):
            raise SignInFailed(f"{what}-malformed")
        return document
