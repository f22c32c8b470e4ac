from aiohttp import web

from paraphe_signature_intake import views


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/petitions/{petition_id}/signatures", views.sign)
    app.router.add_get("/api/petitions/{petition_id}/signatures/me", views.my_signature)
