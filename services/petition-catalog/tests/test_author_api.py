"""The author's space: deposit, edit while a draft, submit; only one's own petitions."""

from __future__ import annotations

import io
import json
import re
import uuid
from typing import TYPE_CHECKING

import asyncpg
import pytest
from aiohttp import ClientResponse
from nats.aio.client import Client as NatsClient

if TYPE_CHECKING:
    from conftest import Client, MakeCatalog, Tokens

AUTHOR_A = "a" * 64
AUTHOR_B = "b" * 64
DRAFT = {
    "title": "Pour des cours d'école végétalisées",
    "body": "Nous demandons que chaque école primaire dispose d'une cour végétalisée d'ici 2030.",
    "suggested_committee": "developpement-durable",
}


@pytest.fixture
async def empty_catalog(make_catalog: MakeCatalog, authors: tuple[str, str]) -> Client:
    return await make_catalog()


async def create(
    catalog: Client, tokens: Tokens, body: object = DRAFT, author: str = AUTHOR_A
) -> ClientResponse:
    return await catalog.post("/api/author/petitions", json=body, headers=tokens.author(author))


async def test_an_author_deposits_a_draft_and_reads_it_back(
    empty_catalog: Client, tokens: Tokens
) -> None:
    response = await create(empty_catalog, tokens)
    assert response.status == 201
    petition = await response.json()
    assert response.headers["Location"] == f"/api/author/petitions/{petition['id']}"
    assert petition["status"] == "draft"
    assert petition["title"] == DRAFT["title"]
    assert petition["suggested_committee"] == {
        "id": "developpement-durable",
        "name": "Commission du développement durable et de l'aménagement du territoire",
    }
    assert petition["author"] == {"given_names": "Chloé", "family_name": "Bernard"}
    assert "email" not in json.dumps(petition)
    assert "1990" not in json.dumps(petition)
    mine = await (await empty_catalog.get("/api/author/petitions", headers=tokens.author())).json()
    assert [item["id"] for item in mine["items"]] == [petition["id"]]
    one = await empty_catalog.get(
        f"/api/author/petitions/{petition['id']}", headers=tokens.author()
    )
    assert await one.json() == petition


async def test_a_draft_is_edited_then_submitted_and_moderation_hears_of_it(
    empty_catalog: Client, tokens: Tokens, nats_client: NatsClient, db: asyncpg.Pool
) -> None:
    submitted = await nats_client.subscribe("petitions.events.submitted")
    petition = await (await create(empty_catalog, tokens)).json()
    url = f"/api/author/petitions/{petition['id']}"
    edited = await empty_catalog.patch(
        url,
        json={"title": "Pour des cours d'écoles végétalisées", "suggested_committee": None},
        headers=tokens.author(),
    )
    assert edited.status == 200
    body = await edited.json()
    assert body["title"] == "Pour des cours d'écoles végétalisées"
    assert body["body"] == DRAFT["body"]  # untouched: not sent
    assert body["suggested_committee"] is None
    response = await empty_catalog.post(f"{url}/submit", headers=tokens.author())
    assert response.status == 200
    assert (await response.json())["status"] == "submitted"
    message = await submitted.next_msg(timeout=5)
    event = json.loads(message.data)
    assert event["kind"] == "submitted"
    assert event["petition_id"] == petition["id"]
    assert event["status"] == "submitted"
    assert event["title"] == "Pour des cours d'écoles végétalisées"
    assert event["suggested_committee"] is None
    assert message.headers is not None
    assert message.headers["Nats-Msg-Id"] == event["id"]
    history = await db.fetch(
        "SELECT from_status, to_status, actor FROM catalog.transitions WHERE petition_id = $1",
        uuid.UUID(petition["id"]),
    )
    assert [tuple(row) for row in history] == [("draft", "submitted", "author")]


async def test_a_submitted_petition_can_no_longer_be_edited_and_a_resubmit_changes_nothing(
    empty_catalog: Client, tokens: Tokens, db: asyncpg.Pool
) -> None:
    petition = await (await create(empty_catalog, tokens)).json()
    url = f"/api/author/petitions/{petition['id']}"
    first = await empty_catalog.post(f"{url}/submit", headers=tokens.author())
    assert first.status == 200
    # A retry after an answer lost: the same answer, and moderation hears of it once.
    again = await empty_catalog.post(f"{url}/submit", headers=tokens.author())
    assert again.status == 200
    assert await again.json() == await first.json()
    submitted = "SELECT count(*) FROM catalog.events WHERE kind = 'submitted'"
    assert await db.fetchval(submitted) == 1
    edit = await empty_catalog.patch(
        url, json={"title": "Un autre titre, trop tard"}, headers=tokens.author()
    )
    assert edit.status == 409
    assert edit.content_type == "application/problem+json"
    still = await (await empty_catalog.get(url, headers=tokens.author())).json()
    assert still["title"] == DRAFT["title"]


async def test_another_author_cannot_see_edit_or_submit_a_draft(
    empty_catalog: Client, tokens: Tokens
) -> None:
    petition = await (await create(empty_catalog, tokens)).json()
    url = f"/api/author/petitions/{petition['id']}"
    intruder = tokens.author(AUTHOR_B)
    assert (await empty_catalog.get(url, headers=intruder)).status == 404
    assert (
        await empty_catalog.patch(url, json={"title": "Détourné par un autre"}, headers=intruder)
    ).status == 404
    assert (await empty_catalog.post(f"{url}/submit", headers=intruder)).status == 404
    theirs = await (await empty_catalog.get("/api/author/petitions", headers=intruder)).json()
    assert theirs["items"] == []
    mine = await (await empty_catalog.get(url, headers=tokens.author())).json()
    assert (mine["title"], mine["status"]) == (DRAFT["title"], "draft")
    # Nor is a draft public.
    assert (await empty_catalog.get(f"/api/petitions/{petition['id']}")).status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/author/petitions"),
        ("POST", "/api/author/petitions"),
        ("GET", "/api/author/petitions/00000000-0000-0000-0000-000000000000"),
        ("PATCH", "/api/author/petitions/00000000-0000-0000-0000-000000000000"),
        ("POST", "/api/author/petitions/00000000-0000-0000-0000-000000000000/submit"),
    ],
)
async def test_the_author_space_needs_an_author_token(
    empty_catalog: Client, tokens: Tokens, method: str, path: str
) -> None:
    for headers in ({}, tokens.staff("admin", "moderator"), {"Authorization": "Bearer forged"}):
        response = await empty_catalog.request(method, path, json=DRAFT, headers=headers)
        assert response.status == 401, headers
        assert response.content_type == "application/problem+json"


async def test_an_author_the_gateway_never_introduced_is_refused(
    empty_catalog: Client, tokens: Tokens
) -> None:
    response = await create(empty_catalog, tokens, author="c" * 64)
    assert response.status == 403
    assert (await response.json())["type"] == "urn:paraphe:problem:unknown-author"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (DRAFT | {"title": "Trop court"[:8]}, "title"),
        (DRAFT | {"title": "T" * 201}, "title"),
        (DRAFT | {"title": "   "}, "title"),
        (DRAFT | {"body": "x" * 20_001}, "body"),
        (DRAFT | {"body": ""}, "body"),
        (DRAFT | {"title": "Un titre avec un \x00 caché"}, "title"),
        (DRAFT | {"body": "Un texte avec une demi-paire \ud800 de substitution."}, "body"),
        (DRAFT | {"suggested_committee": "commission-imaginaire"}, "suggested_committee"),
        (DRAFT | {"status": "published"}, "status"),
        ({"body": DRAFT["body"]}, "title"),
        ([DRAFT], "body"),
        ("une chaîne", "body"),
    ],
)
async def test_an_invalid_draft_is_a_422_naming_the_field_and_nothing_is_written(
    empty_catalog: Client, tokens: Tokens, db: asyncpg.Pool, body: object, field: str
) -> None:
    response = await create(empty_catalog, tokens, body)
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert field in [param["name"] for param in problem["invalid_params"]]
    assert await db.fetchval("SELECT count(*) FROM catalog.petitions") == 0


@pytest.mark.parametrize("raw", [b"\xff\xfe not UTF-8", b'{"title": "\xe9cole', b"", b"{" * 10_000])
async def test_bytes_that_are_not_json_are_a_422(
    empty_catalog: Client, tokens: Tokens, raw: bytes
) -> None:
    response = await empty_catalog.post(
        "/api/author/petitions",
        data=raw,
        headers=tokens.author() | {"Content-Type": "application/json"},
    )
    assert response.status == 422
    assert response.content_type == "application/problem+json"


async def test_a_body_not_in_its_announced_encoding_is_a_400(
    empty_catalog: Client, tokens: Tokens, db: asyncpg.Pool
) -> None:
    for encoding in ("gzip", "deflate"):
        response = await empty_catalog.post(
            "/api/author/petitions",
            data=json.dumps(DRAFT).encode(),
            headers=tokens.author()
            | {"Content-Type": "application/json", "Content-Encoding": encoding}
            # A connection each: aiohttp closes one whose request body it could not decode.
            | {"Connection": "close"},
        )
        assert response.status == 400
        assert response.content_type == "application/problem+json"
        assert (await response.json())["type"] == "urn:paraphe:problem:unreadable-body"
    assert await db.fetchval("SELECT count(*) FROM catalog.petitions") == 0


async def test_an_over_large_body_is_a_413(empty_catalog: Client, tokens: Tokens) -> None:
    raw = json.dumps(DRAFT | {"body": "é" * 50_000}).encode()  # 300 kB escaped
    response = await empty_catalog.post(
        "/api/author/petitions",
        data=io.BytesIO(raw),
        headers=tokens.author() | {"Content-Type": "application/json"},
    )
    assert response.status == 413
    assert response.content_type == "application/problem+json"


async def test_a_longest_text_in_escaped_json_is_accepted(
    empty_catalog: Client, tokens: Tokens
) -> None:
    raw = json.dumps(DRAFT | {"body": "é" * 20_000}, ensure_ascii=True).encode()
    response = await empty_catalog.post(
        "/api/author/petitions",
        data=raw,
        headers=tokens.author() | {"Content-Type": "application/json"},
    )
    assert response.status == 201


@pytest.mark.parametrize("changes", [{}, {"title": None}, {"body": "court"}, {"author_id": "x"}])
async def test_invalid_changes_are_a_422_and_the_draft_stays(
    empty_catalog: Client, tokens: Tokens, changes: dict[str, object]
) -> None:
    petition = await (await create(empty_catalog, tokens)).json()
    url = f"/api/author/petitions/{petition['id']}"
    assert (await empty_catalog.patch(url, json=changes, headers=tokens.author())).status == 422
    assert (await (await empty_catalog.get(url, headers=tokens.author())).json()) == petition


@pytest.mark.parametrize("petition_id", ["nope", "00000000-0000-0000-0000-000000000000"])
async def test_unknown_ids_are_404_problems(
    empty_catalog: Client, tokens: Tokens, petition_id: str
) -> None:
    response = await empty_catalog.get(
        f"/api/author/petitions/{petition_id}", headers=tokens.author()
    )
    assert response.status == 404
    assert (await response.json())["type"] == "urn:paraphe:problem:petition-not-found"


async def test_the_author_reads_the_decision_and_its_reason(
    empty_catalog: Client, tokens: Tokens
) -> None:
    petition = await (await create(empty_catalog, tokens)).json()
    url = f"/api/author/petitions/{petition['id']}"
    await empty_catalog.post(f"{url}/submit", headers=tokens.author())
    decision = await empty_catalog.post(
        f"/internal/petitions/{petition['id']}/decisions",
        json={
            "decision_id": "2f1c7a52-5f4e-4c7e-9a0e-3d6b1f0b9a11",
            "decision": "reject",
            "reason_code": "hors-competence",
            "reason": "Cette demande relève des collectivités territoriales.",
        },
        headers=tokens.staff("moderator"),
    )
    assert decision.status == 200
    mine = await (await empty_catalog.get(url, headers=tokens.author())).json()
    assert mine["status"] == "rejected"
    assert mine["decision"]["reason_code"] == "hors-competence"
    assert mine["decision"]["reason"] == "Cette demande relève des collectivités territoriales."
    assert mine["decision"]["decided_at"] is not None


async def test_an_author_keeps_at_most_twenty_drafts_at_once(
    empty_catalog: Client, tokens: Tokens
) -> None:
    def draft(n: int) -> dict[str, str]:
        return DRAFT | {"title": f"{DRAFT['title']} ({n})"}  # the same twice is one draft

    created = [await (await create(empty_catalog, tokens, draft(n))).json() for n in range(20)]
    refused = await create(empty_catalog, tokens, draft(20))
    assert refused.status == 409
    assert (await refused.json())["type"] == "urn:paraphe:problem:too-many-drafts"
    assert (await create(empty_catalog, tokens, author=AUTHOR_B)).status == 201  # per author
    submit = f"/api/author/petitions/{created[0]['id']}/submit"
    assert (await empty_catalog.post(submit, headers=tokens.author())).status == 200
    assert (await create(empty_catalog, tokens, draft(21))).status == 201
    given_up = f"/api/author/petitions/{created[1]['id']}"
    assert (await empty_catalog.delete(given_up, headers=tokens.author())).status == 204
    assert (await create(empty_catalog, tokens, draft(22))).status == 201


async def test_an_author_deletes_a_draft_but_nothing_submitted_nor_anyone_elses(
    empty_catalog: Client, tokens: Tokens, db: asyncpg.Pool
) -> None:
    draft = await (await create(empty_catalog, tokens)).json()
    url = f"/api/author/petitions/{draft['id']}"
    assert (await empty_catalog.delete(url, headers=tokens.author(AUTHOR_B))).status == 404
    assert (await empty_catalog.delete(url)).status == 401
    assert (await empty_catalog.delete(url, headers=tokens.author())).status == 204
    assert (await empty_catalog.get(url, headers=tokens.author())).status == 404
    assert (await empty_catalog.delete(url, headers=tokens.author())).status == 404
    submitted = await (await create(empty_catalog, tokens)).json()
    url = f"/api/author/petitions/{submitted['id']}"
    assert (await empty_catalog.post(f"{url}/submit", headers=tokens.author())).status == 200
    refused = await empty_catalog.delete(url, headers=tokens.author())
    assert refused.status == 409
    assert (await refused.json())["petition_status"] == "submitted"
    assert await db.fetchval("SELECT count(*) FROM catalog.petitions") == 1


async def test_a_title_fits_on_one_line(empty_catalog: Client, tokens: Tokens) -> None:
    response = await create(
        empty_catalog, tokens, DRAFT | {"title": "Une pétition\nsur deux lignes"}
    )
    assert response.status == 422
    assert (await response.json())["invalid_params"][0]["name"] == "title"


# Words of pydantic's and of the former messages: none may reach an author.
ENGLISH = re.compile(
    r"\b(must|cannot|should|input|nothing|needs|contains|field|required|valid|value|string|"
    r"error|characters?|line|removed|change)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (DRAFT | {"title": "Une pétition\nsur deux lignes"}, "title", None),
        (DRAFT | {"title": "Un titre avec un \x00 caché"}, "title", None),
        (DRAFT | {"body": "Un texte avec une demi-paire \ud800 de substitution."}, "body", None),
        (DRAFT | {"title": 12345678901}, "title", "texte attendu"),
        (DRAFT | {"title": None}, "title", "texte attendu"),
        (DRAFT | {"suggested_committee": ["lois"]}, "suggested_committee", None),
        (DRAFT | {"status": "published"}, "status", "champ inconnu"),
        ([DRAFT], "body", "objet JSON attendu"),
    ],
)
async def test_a_refused_draft_says_why_in_french(
    empty_catalog: Client, tokens: Tokens, body: object, field: str, reason: str | None
) -> None:
    problem = await (await create(empty_catalog, tokens, body)).json()
    reasons = {param["name"]: param["reason"] for param in problem["invalid_params"]}
    assert field in reasons
    assert not ENGLISH.search(reasons[field]), reasons[field]
    if reason is not None:
        assert reasons[field] == reason


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        (
            {},
            "body",
            "aucune modification : envoyez au moins un des champs title, body, suggested_committee",
        ),
        ({"title": None}, "title", "ne peut pas être supprimé"),
        ({"body": None}, "body", "ne peut pas être supprimé"),
        ({"title": "Sur deux\r\nlignes à la fois"}, "title", "doit tenir sur une seule ligne"),
        (
            {"body": "Un texte avec un caractère \x1b d'échappement."},
            "body",
            "contient des caractères invisibles qui ne sont pas admis",
        ),
        ({"suggested_committee": 3}, "suggested_committee", "texte attendu"),
    ],
)
async def test_refused_changes_say_why_in_french(
    empty_catalog: Client, tokens: Tokens, changes: dict[str, object], field: str, reason: str
) -> None:
    petition = await (await create(empty_catalog, tokens)).json()
    url = f"/api/author/petitions/{petition['id']}"
    response = await empty_catalog.patch(url, json=changes, headers=tokens.author())
    assert response.status == 422
    assert (await response.json())["invalid_params"] == [{"name": field, "reason": reason}]


async def test_a_tab_in_a_title_is_a_space(empty_catalog: Client, tokens: Tokens) -> None:
    response = await create(empty_catalog, tokens, DRAFT | {"title": "Des cours\td'école vertes"})
    assert response.status == 201
    assert (await response.json())["title"] == "Des cours d'école vertes"


async def test_changes_made_with_the_cookie_from_another_sites_page_are_refused(
    empty_catalog: Client, tokens: Tokens
) -> None:
    token = tokens.author()["Authorization"].removeprefix("Bearer ")
    empty_catalog.session.cookie_jar.update_cookies({"paraphe_author": token})
    assert (await empty_catalog.get("/api/author/petitions")).status == 200
    for elsewhere in (
        {"Origin": "https://ailleurs.example"},
        {"Origin": "null"},
        {"Referer": "https://ailleurs.example/page"},
    ):
        refused = await empty_catalog.post("/api/author/petitions", json=DRAFT, headers=elsewhere)
        assert refused.status == 403, elsewhere
        assert (await refused.json())["type"] == "urn:paraphe:problem:cross-site-form"
    ours = {"Origin": "http://localhost:8080"}
    created = await empty_catalog.post("/api/author/petitions", json=DRAFT, headers=ours)
    assert created.status == 201
    # With the token as a bearer, no cookie is involved: nothing for another site to abuse.
    bearer = tokens.author() | {"Origin": "https://ailleurs.example"}
    assert (
        await empty_catalog.post("/api/author/petitions", json=DRAFT, headers=bearer)
    ).status == 201
