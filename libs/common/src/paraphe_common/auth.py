"""Who is calling: a platform token from the Authorization header or from its cookie."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from paraphe_common.problems import Problem
from paraphe_common.tokens import (
    AUTHOR,
    SERVICE,
    SIGNER,
    STAFF,
    Claims,
    InvalidToken,
    MissingRole,
    TokenVerifier,
)

TOKEN_VERIFIER = web.AppKey("token_verifier", TokenVerifier)

# One cookie per audience, so that being a signer and a moderator in one browser never mixes.
COOKIES: Final = {SIGNER: "paraphe_signer", AUTHOR: "paraphe_author", STAFF: "paraphe_staff"}

_SIGN_IN_REQUIRED: Final = {
    SIGNER: "Identifiez-vous avec FranceConnect pour signer.",
    AUTHOR: "Identifiez-vous avec FranceConnect pour déposer ou suivre une pétition.",
    STAFF: "Identifiez-vous avec votre compte d'agent.",
    SERVICE: "Appel de service non authentifié.",
}


def bearer_token(request: web.BaseRequest) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None for any other, or none at all."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    token = credentials.strip()
    return token if token and scheme.lower() == "bearer" else None


def presented_token(request: web.BaseRequest, audience: str) -> str | None:
    """The bearer token, else the audience's cookie: the CSRF check
    (``paraphe_common.security.cookie_authenticated``) spares exactly the former."""
    token = bearer_token(request)
    if token is not None:
        return token
    cookie = COOKIES.get(audience)
    return request.cookies.get(cookie) if cookie else None


def authenticate(request: web.Request, audience: str, *, role: str | None = None) -> Claims:
    """The caller's claims for ``audience``, or a 401/403 problem."""
    token = presented_token(request, audience)
    if not token:
        raise Problem(
            401,
            _SIGN_IN_REQUIRED[audience],
            kind="unauthenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return request.config_dict[TOKEN_VERIFIER].verify(token, audience, role=role)
    except InvalidToken:
        raise Problem(
            401,
            "Votre session n'est pas valide ou a expiré : identifiez-vous à nouveau.",
            kind="invalid-token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    except MissingRole:
        raise Problem(
            403, "Votre compte n'a pas accès à cette action.", kind="missing-role"
        ) from None
