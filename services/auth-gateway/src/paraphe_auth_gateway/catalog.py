"""Hands an author's identity to petition-catalog, which keeps it; we keep nothing."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import aiohttp

from paraphe_common.tokens import SERVICE, TokenIssuer

_SERVICE_TOKEN_LIFETIME = 120


class CatalogUnavailable(Exception):
    pass


@dataclass(frozen=True)
class AuthorIdentity:
    given_names: str
    family_name: str
    birthdate: str
    email: str | None


class Catalog:
    def __init__(self, base_url: str, http: aiohttp.ClientSession, issuer: TokenIssuer) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._issuer = issuer
        self._token = ""
        self._token_expires = 0.0

    def _service_token(self) -> str:
        if time.monotonic() > self._token_expires:
            self._token = self._issuer.issue(SERVICE, "auth-gateway", _SERVICE_TOKEN_LIFETIME)
            self._token_expires = time.monotonic() + _SERVICE_TOKEN_LIFETIME / 2
        return self._token

    async def record_author(self, author_id: str, identity: AuthorIdentity) -> None:
        try:
            async with self._http.put(
                f"{self._base_url}/internal/authors/{author_id}",
                json=asdict(identity),
                headers={"Authorization": f"Bearer {self._service_token()}"},
            ) as response:
                if response.status != 204:
                    raise CatalogUnavailable(f"catalog answered {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CatalogUnavailable(type(exc).__name__) from exc
