from aiohttp import web

from paraphe_petition_catalog import views


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/petitions", views.list_petitions)
    app.router.add_get("/api/petitions/{petition_id}", views.get_petition)
    app.router.add_get("/", views.home_page)
    app.router.add_get("/petitions/{petition_id}", views.petition_page)
    # Service to service only: the proxy and the Ingress do not route /internal/.
    app.router.add_put("/internal/authors/{author_id}", views.put_author)
