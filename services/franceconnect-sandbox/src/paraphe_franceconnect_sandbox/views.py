"""Thin handlers: read the request, ask the provider, answer as FranceConnect would.

OAuth endpoints answer OAuth errors (``{"error": ..., "error_description": ...}``), not
problem documents: that is what relying parties parse. Descriptions are for their developers,
in ASCII as RFC 6749 requires; pages are for people, in French.
"""

from __future__ import annotations

from typing import Any, NoReturn

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiMapping
from yarl import URL

from paraphe_franceconnect_sandbox.authorization import (
    AuthorizationRefused,
    AuthorizationRequest,
    UnregisteredRedirect,
)
from paraphe_franceconnect_sandbox.dates import paris_today
from paraphe_franceconnect_sandbox.provider import (
    CHOOSE_PATH,
    EndSessionRefused,
    InvalidAccessToken,
    Provider,
    TokenRefused,
)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Nothing an identity provider answers may be cached: codes, tokens, personal claims.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _page_headers(form_targets: tuple[str, ...] = ()) -> dict[str, str]:
    # Browsers enforce form-action on the redirection that follows a form, so the relying
    # party's origin is allowed beside ours.
    form_action = " ".join(("'self'", *form_targets))
    return {
        **_NO_STORE,
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'; "
            f"form-action {form_action}"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


def _redirect(location: str) -> NoReturn:
    raise web.HTTPFound(location, headers=_NO_STORE)


def _oauth_error(status: int, error: str, description: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description},
        status=status,
        headers={**_NO_STORE, **headers},
    )


def _text(form: MultiMapping[object], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _origin(url: str) -> str:
    return str(URL(url).origin())


class ProviderViews:
    """The handlers of one provider, under its path prefix."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(self.provider.discovery())

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.provider.jwks())

    async def authorize(self, request: web.Request) -> web.Response:
        try:
            authorization = self.provider.authorization_request(request.query)
            identity = self.provider.hinted_identity(authorization, paris_today())
        except UnregisteredRedirect as exc:
            return self._error_page(request, str(exc))
        except AuthorizationRefused as refused:
            _redirect(self.provider.refusal(refused))
        if identity is not None:
            _redirect(self.provider.grant(authorization, identity))
        return self._picker(request, authorization, self.provider.hold(authorization))

    async def choose(self, request: web.Request) -> web.Response:
        form = await request.post()
        transaction = _text(form, "transaction")
        authorization = self.provider.pending(transaction)
        if authorization is None:
            return self._error_page(
                request,
                "Cette demande d'authentification a expiré ou a déjà abouti. Retournez sur le "
                "site d'où vous venez et recommencez.",
            )
        if _text(form, "action") == "cancel":
            self.provider.release(transaction)
            _redirect(self.provider.deny(authorization))
        identity = self.provider.identity(_text(form, "identity"), paris_today())
        if identity is None:
            return self._picker(
                request, authorization, transaction, error="Choisissez une identité.", status=400
            )
        self.provider.release(transaction)
        _redirect(self.provider.grant(authorization, identity))

    async def token(self, request: web.Request) -> web.Response:
        if request.content_type != FORM_CONTENT_TYPE:
            return _oauth_error(
                400, "invalid_request", f"The request body must be {FORM_CONTENT_TYPE}."
            )
        form = await request.post()
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        try:
            tokens = self.provider.redeem(fields)
        except TokenRefused as refused:
            return _oauth_error(refused.status, refused.error, refused.description)
        return web.json_response(tokens, headers=_NO_STORE)

    async def userinfo(self, request: web.Request) -> web.Response:
        scheme, _, access_token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not access_token.strip():
            # Without any credential, RFC 6750 (section 3.1) wants no error code in the header.
            return _oauth_error(
                401,
                "invalid_token",
                "An access token is expected in an Authorization: Bearer header.",
                **{"WWW-Authenticate": "Bearer"},
            )
        try:
            signed = self.provider.userinfo(access_token.strip())
        except InvalidAccessToken:
            return _oauth_error(
                401,
                "invalid_token",
                "Unknown or expired access token.",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return web.Response(body=signed.encode(), content_type="application/jwt", headers=_NO_STORE)

    async def end_session(self, request: web.Request) -> web.Response:
        try:
            location = self.provider.end_session(request.query)
        except EndSessionRefused as exc:
            return self._error_page(request, str(exc))
        _redirect(location)

    def _picker(
        self,
        request: web.Request,
        authorization: AuthorizationRequest,
        transaction: str,
        *,
        error: str | None = None,
        status: int = 200,
    ) -> web.Response:
        today = paris_today()
        context: dict[str, Any] = {
            "title": self.provider.profile.title,
            "action": self.provider.path(CHOOSE_PATH),
            "transaction": transaction,
            "identities": [
                {
                    "id": identity.id,
                    "description": identity.describe(today),
                    "is_minor": identity.is_minor(today),
                }
                for identity in self.provider.profile.directory.listed(today)
            ],
            "error": error,
        }
        response = aiohttp_jinja2.render_template("picker.html", request, context, status=status)
        response.headers.update(_page_headers((_origin(authorization.redirect_uri),)))
        return response

    def _error_page(self, request: web.Request, message: str) -> web.Response:
        context = {"title": self.provider.profile.title, "message": message}
        response = aiohttp_jinja2.render_template("error.html", request, context, status=400)
        response.headers.update(_page_headers())
        return response
