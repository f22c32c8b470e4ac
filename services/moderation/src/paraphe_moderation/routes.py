from aiohttp import web

from paraphe_moderation import pages, views
from paraphe_moderation.openapi import openapi


def setup_routes(app: web.Application) -> None:
    api = "/api/moderation"
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get(f"{api}/me", views.me)
    app.router.add_get(f"{api}/vocabulary", views.vocabulary)
    app.router.add_get(f"{api}/queue", views.queue)
    app.router.add_post(f"{api}/queue/claim-next", views.claim_next)
    app.router.add_get(f"{api}/items/{{item_id}}", views.get_item)
    app.router.add_post(f"{api}/items/{{item_id}}/claim", views.claim_item)
    app.router.add_post(f"{api}/items/{{item_id}}/release", views.release_item)
    app.router.add_post(f"{api}/items/{{item_id}}/decision", views.decide_item)
    app.router.add_post(f"{api}/petitions/{{petition_id}}/decisions", views.decide_petition)
    app.router.add_get(f"{api}/audit", views.audit)
    app.router.add_get(f"{api}/report-reasons", views.report_reasons)
    app.router.add_post(f"{api}/reports", views.post_report)
    # Staff pages, and the public report form.
    app.router.add_get("/moderation/", pages.queue_page)
    app.router.add_post("/moderation/claim-next", pages.claim_next_form)
    app.router.add_get("/moderation/items/{item_id}", pages.item_page)
    app.router.add_post("/moderation/items/{item_id}/claim", pages.claim_form)
    app.router.add_post("/moderation/items/{item_id}/release", pages.release_form)
    app.router.add_post("/moderation/items/{item_id}/decision", pages.decision_form)
    app.router.add_get("/moderation/petitions/{petition_id}", pages.petition_page)
    app.router.add_post(
        "/moderation/petitions/{petition_id}/decisions", pages.petition_decision_form
    )
    app.router.add_get("/moderation/journal", pages.audit_page)
    app.router.add_get("/moderation/signaler", pages.report_page)
    app.router.add_post("/moderation/signaler", pages.report_form)
