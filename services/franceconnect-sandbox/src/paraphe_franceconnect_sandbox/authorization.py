"""The authorization request, checked the way FranceConnect v2 checks it.

Until the client and its redirect URI are known to be registered, a bad request is answered
with a page and never redirected: an unregistered URI must learn nothing. Past that point the
relying party hears about every other mistake on its redirect URI (RFC 6749, section 4.1.2.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from multidict import MultiMapping
from yarl import URL

from paraphe_franceconnect_sandbox.clients import ClientRegistry

# FranceConnect refuses a state or a nonce shorter than this: they must carry enough entropy.
MIN_STATE_LENGTH = 22
MIN_NONCE_LENGTH = 22
ACR_VALUES = ("eidas1", "eidas2", "eidas3")
DEFAULT_ACR = "eidas1"
PROMPT_VALUES = frozenset({"login", "consent"})

_PARAMETERS = (
    "client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "acr_values",
    "prompt", "login_hint",
)  # fmt: skip


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str
    nonce: str
    acr: str
    login_hint: str | None


class UnregisteredRedirect(Exception):
    """No registered client and redirect URI to answer to: say it on a page, in French."""


class AuthorizationRefused(Exception):
    """An error the relying party receives on its redirect URI."""

    def __init__(self, error: str, description: str, redirect_uri: str, state: str | None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state


def redirection(redirect_uri: str, params: Mapping[str, str]) -> str:
    """``redirect_uri`` with ``params`` added to whatever query it already has."""
    return str(URL(redirect_uri, encoded=True).extend_query(params))


def _single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    return values[0] if len(values) == 1 else None


def parse_authorization_request(
    query: MultiMapping[str], clients: ClientRegistry, scopes_supported: frozenset[str]
) -> AuthorizationRequest:
    client_id = _single(query, "client_id")
    redirect_uri = _single(query, "redirect_uri")
    if not client_id:
        raise UnregisteredRedirect("La demande ne précise pas le fournisseur de service.")
    client = clients.find(client_id)
    if client is None:
        raise UnregisteredRedirect("Ce fournisseur de service n'est pas enregistré.")
    if not redirect_uri or redirect_uri not in client.redirect_uris:
        raise UnregisteredRedirect(
            "L'adresse de retour demandée n'est pas enregistrée pour ce fournisseur de service."
        )

    state = query.get("state")

    def refuse(error: str, description: str) -> AuthorizationRefused:
        return AuthorizationRefused(error, description, redirect_uri, state)

    repeated = [name for name in _PARAMETERS if len(query.getall(name, [])) > 1]
    if repeated:
        raise refuse("invalid_request", f"{repeated[0]} is repeated.")
    response_type = query.get("response_type")
    if not response_type:
        raise refuse("invalid_request", "response_type is required.")
    if response_type != "code":
        raise refuse("unsupported_response_type", "Only response_type=code is supported.")
    scopes = tuple(dict.fromkeys(query.get("scope", "").split()))
    if "openid" not in scopes:
        raise refuse("invalid_scope", "scope must contain openid.")
    unknown = [scope for scope in scopes if scope not in scopes_supported]
    if unknown:
        raise refuse("invalid_scope", f"Unknown scope: {unknown[0]}.")
    if state is None or len(state) < MIN_STATE_LENGTH:
        raise refuse(
            "invalid_request",
            f"state must be at least {MIN_STATE_LENGTH} characters long.",
        )
    nonce = query.get("nonce")
    if nonce is None or len(nonce) < MIN_NONCE_LENGTH:
        raise refuse(
            "invalid_request",
            f"nonce must be at least {MIN_NONCE_LENGTH} characters long.",
        )
    acr = query.get("acr_values", DEFAULT_ACR)
    if acr not in ACR_VALUES:
        raise refuse("invalid_request", "acr_values must be eidas1, eidas2 or eidas3.")
    prompt = query.get("prompt")
    if prompt is not None and not set(prompt.split()) <= PROMPT_VALUES:
        raise refuse("invalid_request", "prompt accepts login and consent only.")
    return AuthorizationRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        nonce=nonce,
        acr=acr,
        login_hint=query.get("login_hint") or None,
    )
