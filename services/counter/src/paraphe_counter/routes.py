from aiohttp import web

from paraphe_common.openapi import add_openapi_route
from paraphe_counter import views


def setup_routes(app: web.Application) -> None:
    add_openapi_route(app, "paraphe_counter")
    app.router.add_get(views.COUNT_ROUTE, views.get_count)
    app.router.add_get("/api/petitions/{petition_id}/count/stream", views.stream_count)
