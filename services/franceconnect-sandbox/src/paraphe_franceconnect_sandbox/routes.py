from collections.abc import Iterable

from aiohttp import web

from paraphe_franceconnect_sandbox.provider import (
    AUTHORIZE_PATH,
    CHOOSE_PATH,
    DISCOVERY_PATH,
    END_SESSION_PATH,
    JWKS_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
    Provider,
)
from paraphe_franceconnect_sandbox.views import ProviderViews


def setup_routes(app: web.Application, providers: Iterable[Provider]) -> None:
    for provider in providers:
        views = ProviderViews(provider)
        app.router.add_get(provider.path(DISCOVERY_PATH), views.discovery)
        app.router.add_get(provider.path(JWKS_PATH), views.jwks)
        app.router.add_get(provider.path(AUTHORIZE_PATH), views.authorize)
        app.router.add_post(provider.path(CHOOSE_PATH), views.choose)
        app.router.add_post(provider.path(TOKEN_PATH), views.token)
        app.router.add_get(provider.path(USERINFO_PATH), views.userinfo)
        app.router.add_get(provider.path(END_SESSION_PATH), views.end_session)
