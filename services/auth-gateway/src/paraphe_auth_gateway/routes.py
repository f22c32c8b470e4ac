from aiohttp import web

from paraphe_auth_gateway import views
from paraphe_common.openapi import add_openapi_route
from paraphe_common.security import SIGN_IN, limit_per_client


def setup_routes(app: web.Application) -> None:
    add_openapi_route(app, "paraphe_auth_gateway")
    app.router.add_get("/auth/login", limit_per_client(SIGN_IN)(views.login))
    app.router.add_get("/auth/callback", views.callback)
    app.router.add_get("/auth/logout", views.logout)
    app.router.add_get("/auth/logged-out", views.logged_out)
    app.router.add_get("/auth/session", views.session)
