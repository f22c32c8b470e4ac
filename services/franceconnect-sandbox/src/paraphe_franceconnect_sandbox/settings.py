"""The sandbox's settings: where browsers reach it, and the relying parties it knows.

``PARAPHE_SANDBOX_CLIENTS`` is a JSON list, for instance::

    [{"client_id": "paraphe", "client_secret": "…",
      "redirect_uris": ["http://localhost:8080/auth/callback"],
      "post_logout_redirect_uris": ["http://localhost:8080/"]}]

The same registry serves both providers (citizens and public agents).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Json, SecretStr

from paraphe_common.settings import ServiceSettings


def _absolute_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("an absolute http:// or https:// URL is required")
    if parts.fragment:
        raise ValueError("a URL with a fragment cannot receive a redirection")
    return url


def _issuer(url: str) -> str:
    _absolute_http_url(url)
    parts = urlsplit(url)
    if parts.query:
        raise ValueError("an issuer has no query string")
    # Relying parties compare issuers character for character: keep one spelling.
    return url.rstrip("/")


AbsoluteUrl = Annotated[str, AfterValidator(_absolute_http_url)]


class SandboxClient(BaseModel):
    """A relying party registered with the sandbox."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    redirect_uris: tuple[AbsoluteUrl, ...] = Field(min_length=1)
    post_logout_redirect_uris: tuple[AbsoluteUrl, ...] = ()


def _distinct_client_ids(clients: list[SandboxClient]) -> list[SandboxClient]:
    ids = [client.client_id for client in clients]
    if len(set(ids)) != len(ids):
        raise ValueError("each client_id must appear once")
    if not clients:
        raise ValueError("at least one client is required")
    return clients


class FranceconnectSandboxSettings(ServiceSettings):
    """Read once from the PARAPHE_* environment at start."""

    # The citizens' provider's issuer, as browsers and relying parties reach it; the public
    # agents' provider is "<sandbox_issuer>/agents".
    sandbox_issuer: Annotated[str, AfterValidator(_issuer)]
    sandbox_clients: Annotated[Json[list[SandboxClient]], AfterValidator(_distinct_client_ids)]
