from aiohttp import web

from paraphe_moderation import views


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/moderation/me", views.me)
