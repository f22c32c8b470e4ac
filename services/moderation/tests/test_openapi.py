"""The OpenAPI document and the router agree, and real answers match the documented schemas."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from paraphe_common.committees import parse_committees
from paraphe_moderation.openapi import document
from paraphe_moderation.reasons import parse_reason_codes

Client = TestClient[web.Request, web.Application]
SubmitPetition = Callable[..., Awaitable[dict[str, Any]]]
IssueStaffToken = Callable[..., str]
StartModeration = Callable[..., Awaitable[Client]]

DOCUMENT = document()
METHODS = {"get", "post", "put", "patch", "delete"}


def routes_of(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method.lower() in METHODS
    }


def documented() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, operations in DOCUMENT["paths"].items()
        for method in operations
        if method in METHODS
    }


def assert_matches(answer_body: Any, path: str, method: str, status: int) -> None:
    response = DOCUMENT["paths"][path][method]["responses"][str(status)]
    [(_, media)] = response["content"].items()
    schema = {**media["schema"], "components": DOCUMENT["components"]}
    Draft202012Validator(schema).validate(answer_body)


def test_the_document_is_openapi_3_1_with_problem_answers() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    for path, method in documented():
        for status, response in DOCUMENT["paths"][path][method]["responses"].items():
            if int(status) >= 400:
                assert "application/problem+json" in response["content"], (path, method, status)


async def test_every_documented_route_exists_and_every_api_route_is_documented(
    moderation: Client,
) -> None:
    served = routes_of(moderation.app)
    assert documented() <= served, documented() - served
    api = {(path, method) for path, method in served if path.startswith("/api/")}
    assert api <= documented(), api - documented()
    answer = await moderation.get("/openapi.json")
    assert answer.status == 200
    assert await answer.json() == DOCUMENT


async def test_answers_match_their_schemas(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    item = await submit_petition()
    ines = staff_token("admin", "moderator", subject="ines", name="Inès")
    headers = {"Authorization": f"Bearer {ines}"}
    checks: list[tuple[str, str, str, dict[str, Any] | None]] = [
        ("/api/moderation/me", "get", "/api/moderation/me", None),
        ("/api/moderation/vocabulary", "get", "/api/moderation/vocabulary", None),
        ("/api/moderation/queue", "get", "/api/moderation/queue", None),
        ("/api/moderation/items/{item_id}", "get", f"/api/moderation/items/{item['id']}", None),
        (
            "/api/moderation/items/{item_id}/claim", "post",
            f"/api/moderation/items/{item['id']}/claim", None,
        ),
        (
            "/api/moderation/items/{item_id}/decision", "post",
            f"/api/moderation/items/{item['id']}/decision",
            {"decision": "publish", "committee": "lois"},
        ),
        ("/api/moderation/audit", "get", "/api/moderation/audit", None),
        ("/api/moderation/queue/claim-next", "post", "/api/moderation/queue/claim-next", None),
        ("/api/moderation/report-reasons", "get", "/api/moderation/report-reasons", None),
        (
            "/api/moderation/reports", "post", "/api/moderation/reports",
            {"petition_id": str(uuid.uuid4()), "reason_code": "other"},
        ),
        (
            "/api/moderation/items/{item_id}", "get", f"/api/moderation/items/{uuid.uuid4()}",
            None,
        ),
    ]  # fmt: skip
    for template, method, url, body in checks:
        answer = await moderation.request(method, url, json=body, headers=headers)
        assert answer.status < 500, (url, await answer.text())
        assert_matches(await answer.json(), template, method, answer.status)
    # A report sent with a site cookie and no Origin, as a form of another site would.
    cross_site = await moderation.post(
        "/api/moderation/reports",
        json={"petition_id": str(uuid.uuid4()), "reason_code": "other"},
        headers={"Cookie": "paraphe_signer=x"},
    )
    assert cross_site.status == 403
    assert_matches(await cross_site.json(), "/api/moderation/reports", "post", 403)


async def test_the_document_served_lists_the_configured_committees_and_reasons(
    start_moderation: StartModeration,
) -> None:
    committees = json.dumps([{"id": "lois", "name": "Commission des lois"}])
    reasons = json.dumps([{"code": "hors-sujet", "label": "Hors sujet."}])
    moderation = await start_moderation(
        committees=parse_committees(committees),
        reason_codes=parse_reason_codes(reasons),
        report_message_max_length=280,
    )
    served = await (await moderation.get("/openapi.json")).json()
    [publish, reject, take_down, _] = served["components"]["schemas"]["ItemDecisionRequest"][
        "oneOf"
    ]
    assert publish["properties"]["committee"]["enum"] == ["lois"]
    assert reject["properties"]["reason_code"]["enum"] == ["hors-sujet"]
    assert take_down["properties"]["reason_code"]["enum"] == ["hors-sujet"]
    report = served["components"]["schemas"]["ReportRequest"]
    assert report["properties"]["message"]["maxLength"] == 280
