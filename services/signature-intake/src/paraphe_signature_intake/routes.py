from aiohttp import web

from paraphe_common.openapi import add_openapi_route
from paraphe_common.velocity import guard_signing
from paraphe_signature_intake import views


def setup_routes(app: web.Application) -> None:
    add_openapi_route(app, "paraphe_signature_intake")
    app.router.add_post("/api/petitions/{petition_id}/signatures", guard_signing(app, views.sign))
    app.router.add_get("/api/petitions/{petition_id}/signatures/me", views.my_signature)
