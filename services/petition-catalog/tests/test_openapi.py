"""The OpenAPI document tells the truth: its routes exist, the API's routes are in it, and the
answers match the schemas it gives for them."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import ClientResponse
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from paraphe_petition_catalog.views import OPENAPI

if TYPE_CHECKING:
    from conftest import AddPetition, Client, MakeCatalog, Tokens

DOCUMENT: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))
METHODS = {"get", "post", "put", "patch", "delete"}


def documented_operations() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in METHODS
    }


def routed_operations(catalog: Client) -> set[tuple[str, str]]:
    operations = set()
    for route in catalog.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path and route.method != "HEAD":
            operations.add((route.method, path))
    return operations


@pytest.fixture
async def petitions(add_petition: AddPetition) -> dict[str, uuid.UUID]:
    return {
        status: await add_petition(status, title=f"Une pétition ({status}) pour les schémas")
        for status in ("published", "hidden", "submitted")
    }


@pytest.fixture
async def catalog_with_petitions(
    make_catalog: MakeCatalog, petitions: dict[str, uuid.UUID]
) -> Client:
    return await make_catalog()


def test_the_document_is_openapi_3_1_with_valid_schemas() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    for schema in DOCUMENT["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


async def test_it_is_served_with_the_configured_committees(make_catalog: MakeCatalog) -> None:
    committees = [{"id": "petitions", "name": "Commission des pétitions"}]
    catalog = await make_catalog(committees=json.dumps(committees))
    response = await catalog.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    served = await response.json()
    assert served["components"]["schemas"]["CommitteeId"]["enum"] == ["petitions"]
    del served["components"]["schemas"]["CommitteeId"]["enum"]
    assert served == DOCUMENT


async def test_every_documented_route_exists_and_every_api_route_is_documented(
    catalog_with_petitions: Client,
) -> None:
    routed = routed_operations(catalog_with_petitions)
    documented = documented_operations()
    assert documented <= routed, documented - routed
    api = {
        (method, path)
        for method, path in routed
        if path.startswith("/api/") or path.startswith("/internal/petitions")
    }
    assert api <= documented, api - documented


def check(response: ClientResponse, body: Any, method: str, template: str) -> None:
    """The answer is one the document lists for the operation, in the listed shape."""
    operation = DOCUMENT["paths"][template][method.lower()]
    documented = operation["responses"].get(str(response.status))
    assert documented is not None, f"{method} {template}: undocumented {response.status}"
    if "$ref" in documented:
        documented = DOCUMENT["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
    media = documented["content"].get(response.content_type)
    assert media is not None, f"{response.content_type} not documented for {response.status}"
    validator = Draft202012Validator({**DOCUMENT, **media["schema"]})
    errors = [error.message for error in validator.iter_errors(body)]
    assert not errors, errors


async def call(
    catalog: Client, method: str, template: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    response = await catalog.request(method, path, **kwargs)
    body = await response.json()
    check(response, body, method, template)
    return response.status, body


LIST = "/api/petitions"
ONE = "/api/petitions/{petition_id}"
MINE = "/api/author/petitions"
MY_ONE = "/api/author/petitions/{petition_id}"
SUBMIT = "/api/author/petitions/{petition_id}/submit"
REVIEW = "/internal/petitions/{petition_id}"
DECIDE = "/internal/petitions/{petition_id}/decisions"


async def test_public_answers_match_their_schemas(
    catalog_with_petitions: Client, petitions: dict[str, uuid.UUID]
) -> None:
    catalog = catalog_with_petitions
    assert (await call(catalog, "GET", LIST, LIST))[0] == 200
    assert (await call(catalog, "GET", LIST, LIST + "?q=schémas&sort=relevance"))[0] == 200
    assert (await call(catalog, "GET", LIST, LIST + "?page=0"))[0] == 400
    assert (await call(catalog, "GET", "/api/committees", "/api/committees"))[0] == 200
    for status, expected in (("published", 200), ("hidden", 200), ("submitted", 404)):
        answer = await call(catalog, "GET", ONE, f"/api/petitions/{petitions[status]}")
        assert answer[0] == expected
    assert (await call(catalog, "GET", ONE, "/api/petitions/x"))[0] == 404


async def test_author_and_staff_answers_match_their_schemas(
    catalog_with_petitions: Client, tokens: Tokens, petitions: dict[str, uuid.UUID]
) -> None:
    catalog = catalog_with_petitions
    author = tokens.author()
    draft = {"title": "Un brouillon pour les schémas", "body": "Un texte assez long pour valoir."}
    assert (await call(catalog, "GET", MINE, MINE))[0] == 401
    assert (await call(catalog, "POST", MINE, MINE, json={}, headers=author))[0] == 422
    status, created = await call(catalog, "POST", MINE, MINE, json=draft, headers=author)
    assert status == 201
    mine = f"{MINE}/{created['id']}"
    assert (await call(catalog, "GET", MINE, MINE, headers=author))[0] == 200
    assert (await call(catalog, "GET", MY_ONE, mine, headers=author))[0] == 200
    changes = {"suggested_committee": "lois"}
    assert (await call(catalog, "PATCH", MY_ONE, mine, json=changes, headers=author))[0] == 200
    assert (await call(catalog, "POST", SUBMIT, f"{mine}/submit", headers=author))[0] == 200
    assert (await call(catalog, "POST", SUBMIT, f"{mine}/submit", headers=author))[0] == 200
    assert (await call(catalog, "PATCH", MY_ONE, mine, json=changes, headers=author))[0] == 409
    other = tokens.author("b" * 64)
    assert (await call(catalog, "GET", MY_ONE, mine, headers=other))[0] == 404
    assert (await call(catalog, "DELETE", MY_ONE, mine, headers=author))[0] == 409

    staff = tokens.staff("moderator")
    review = f"/internal/petitions/{created['id']}"
    assert (await call(catalog, "GET", REVIEW, review, headers=staff))[0] == 200
    assert (await call(catalog, "GET", REVIEW, review, headers=tokens.staff()))[0] == 403
    publish = {"decision_id": str(uuid.uuid4()), "decision": "publish", "committee": "lois"}
    decisions = f"{review}/decisions"
    assert (await call(catalog, "POST", DECIDE, decisions, json={}, headers=staff))[0] == 422
    assert (await call(catalog, "POST", DECIDE, decisions, json=publish, headers=staff))[0] == 200
    again = publish | {"decision_id": str(uuid.uuid4())}
    assert (await call(catalog, "POST", DECIDE, decisions, json=again, headers=staff))[0] == 409
    follow = {"decision_id": str(uuid.uuid4()), "decision": "follow-up", "step": "classified"}
    assert (await call(catalog, "POST", DECIDE, decisions, json=follow, headers=staff))[0] == 403
    assert (await call(catalog, "POST", DECIDE, decisions, json=follow))[0] == 401
