from aiohttp import web

from paraphe_auth_gateway import views


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/auth/login", views.login)
    app.router.add_get("/auth/callback", views.callback)
    app.router.add_get("/auth/logout", views.logout)
    app.router.add_get("/auth/logged-out", views.logged_out)
    app.router.add_get("/auth/session", views.session)
