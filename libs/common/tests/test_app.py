"""The behaviour every service inherits from create_service_app."""

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from paraphe_common.app import create_service_app
from paraphe_common.problems import PROBLEM_CONTENT_TYPE, Problem
from paraphe_common.settings import ServiceSettings

Client = TestClient[web.Request, web.Application]


async def conflict(request: web.Request) -> web.Response:
    raise Problem(409, "La pétition est close.", kind="petition-not-open", petition="p1")


async def broken(request: web.Request) -> web.Response:
    raise RuntimeError("a bug with a secret=hunter2 in it")


async def ok(request: web.Request) -> web.Response:
    logging.getLogger("paraphe.test").info("handled")
    return web.json_response({"ok": True})


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    app = create_service_app("example", ServiceSettings())
    app.router.add_get("/api/conflict", conflict)
    app.router.add_get("/api/broken", broken)
    app.router.add_get("/api/items/{item_id}", ok)
    app.router.add_get("/page", conflict)
    return await aiohttp_client(app)


async def test_healthz_answers_without_dependencies(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_with_no_dependencies_is_ready(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["dependencies"] == []


async def test_domain_problem_is_rfc9457(client: Client) -> None:
    response = await client.get("/api/conflict")
    assert response.status == 409
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert await response.json() == {
        "type": "urn:paraphe:problem:petition-not-open",
        "title": "Conflit avec l'état de la ressource",
        "status": 409,
        "detail": "La pétition est close.",
        "petition": "p1",
    }


async def test_unknown_route_is_a_problem(client: Client) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status == 404
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body = await response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == 404


async def test_wrong_method_is_a_problem_that_keeps_allow(client: Client) -> None:
    response = await client.post("/api/conflict")
    assert response.status == 405
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert "GET" in response.headers["Allow"]


async def test_unexpected_error_is_a_500_problem_and_is_logged(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/api/broken", headers={"X-Request-Id": "req-42"})
    assert response.status == 500
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body = await response.json()
    assert body["request_id"] == "req-42"
    assert "hunter2" not in await response.text()
    assert any(record.exc_info for record in caplog.records)


async def test_a_browser_gets_a_french_page_instead_of_json(client: Client) -> None:
    response = await client.get("/page", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status == 409
    assert response.content_type == "text/html"
    page = await response.text()
    assert '<html lang="fr">' in page
    assert "La pétition est close." in page


async def test_api_paths_answer_problems_even_to_browsers(client: Client) -> None:
    response = await client.get("/api/conflict", headers={"Accept": "text/html"})
    assert response.content_type == PROBLEM_CONTENT_TYPE


async def test_well_formed_request_id_is_kept_and_returned(client: Client) -> None:
    response = await client.get("/api/items/1", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"


async def test_malformed_request_id_is_replaced(client: Client) -> None:
    response = await client.get("/api/items/1", headers={"X-Request-Id": "<script>" * 20})
    returned = response.headers["X-Request-Id"]
    assert returned.isalnum()
    assert len(returned) == 24


async def test_error_answers_carry_a_request_id_too(client: Client) -> None:
    first = (await client.get("/api/nothing-here")).headers["X-Request-Id"]
    second = (await client.get("/api/nothing-here")).headers["X-Request-Id"]
    assert len(first) == 24
    assert first != second


async def test_log_records_carry_the_request_id(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    from paraphe_common.logs import _RequestIdFilter

    caplog.handler.addFilter(_RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="paraphe.test"):
        await client.get("/api/items/1", headers={"X-Request-Id": "trace-me"})
    handled = [r for r in caplog.records if r.getMessage() == "handled"]
    assert [r.request_id for r in handled] == ["trace-me"]  # type: ignore[attr-defined]


async def test_metrics_count_requests_by_route_template_not_path(client: Client) -> None:
    for item in ("1", "2", "3"):
        await client.get(f"/api/items/{item}")
    await client.get("/api/conflict")
    metrics = await (await client.get("/metrics")).text()
    assert (
        'http_server_requests_total{method="GET",route="/api/items/{item_id}",status="200"} 3.0'
        in metrics
    )
    assert 'route="/api/conflict",status="409"' in metrics
    assert "/api/items/1" not in metrics
    assert "http_server_request_duration_seconds_bucket" in metrics
    assert "process_cpu_seconds_total" in metrics
