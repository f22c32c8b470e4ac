from aiohttp import web

from paraphe_common.security import DEPOSIT, limit_per_client
from paraphe_petition_catalog import author_views, internal_views, views


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", views.openapi)
    app.router.add_get("/api/petitions", views.list_petitions)
    app.router.add_get("/api/petitions/{petition_id}", views.get_petition)
    app.router.add_get("/api/committees", views.list_committees)
    app.router.add_get("/api/author/petitions", author_views.list_my_petitions)
    app.router.add_post(
        "/api/author/petitions", limit_per_client(DEPOSIT)(author_views.create_draft)
    )
    app.router.add_get("/api/author/petitions/{petition_id}", author_views.get_my_petition)
    app.router.add_patch("/api/author/petitions/{petition_id}", author_views.edit_my_draft)
    app.router.add_delete("/api/author/petitions/{petition_id}", author_views.delete_my_draft)
    app.router.add_post("/api/author/petitions/{petition_id}/submit", author_views.submit_my_draft)
    # Service to service only: the proxy and the Ingress do not route /internal/.
    app.router.add_put("/internal/authors/{author_id}", views.put_author)
    app.router.add_get("/internal/petitions/{petition_id}", internal_views.get_petition)
    app.router.add_post(
        "/internal/petitions/{petition_id}/decisions", internal_views.record_decision
    )
