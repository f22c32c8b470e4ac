from aiohttp import web

from paraphe_common.openapi import add_openapi_route
from paraphe_common.velocity import SIGNING_GUARD, SigningGuard
from paraphe_signature_intake import views


def setup_routes(app: web.Application) -> None:
    add_openapi_route(app, "paraphe_signature_intake")
    app[SIGNING_GUARD] = SigningGuard(app)
    app.router.add_post(views.SIGNATURES_ROUTE, views.sign)
    app.router.add_get("/api/petitions/{petition_id}/signatures/me", views.my_signature)
