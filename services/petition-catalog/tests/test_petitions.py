"""The public catalogue: what is published shows, the rest does not; bad input gets a 400."""

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from paraphe_petition_catalog.demo import DEMO_PETITIONS, load_demo_petitions

Client = TestClient[web.Request, web.Application]


async def add_draft(database_url: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        return str(
            await connection.fetchval(
                "INSERT INTO catalog.petitions (author_id, title, body)"
                " VALUES ('demo-author', 'Un brouillon pas encore soumis', $1) RETURNING id",
                "Ce texte n'est visible que de son auteur tant qu'il n'est pas publié.",
            )
        )
    finally:
        await connection.close()


async def test_published_petitions_are_listed_newest_first(catalog: Client) -> None:
    response = await catalog.get("/api/petitions")
    assert response.status == 200
    body = await response.json()
    assert body["total"] == len(DEMO_PETITIONS)
    assert [item["title"] for item in body["items"]] == [title for title, _, _ in DEMO_PETITIONS]
    first = body["items"][0]
    assert first["author"] == {"given_names": "Camille", "family_name": "Durand"}
    assert "email" not in str(first)
    assert "birthdate" not in str(first)


async def test_list_is_paginated(catalog: Client) -> None:
    body = await (await catalog.get("/api/petitions?page=2&per_page=2")).json()
    assert (body["page"], body["per_page"], body["total"]) == (2, 2, 3)
    assert [item["title"] for item in body["items"]] == [DEMO_PETITIONS[2][0]]


@pytest.mark.parametrize("query", ["page=0", "page=abc", "per_page=1000", "per_page=-1"])
async def test_bad_pagination_is_a_400_problem(catalog: Client, query: str) -> None:
    response = await catalog.get(f"/api/petitions?{query}")
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["invalid_params"][0]["name"] == query.split("=")[0]


async def test_a_petition_is_served_by_id(catalog: Client) -> None:
    listed = (await (await catalog.get("/api/petitions")).json())["items"][0]
    response = await catalog.get(f"/api/petitions/{listed['id']}")
    assert response.status == 200
    assert await response.json() == listed


@pytest.mark.parametrize("petition_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
async def test_unknown_petition_is_a_404_problem(catalog: Client, petition_id: str) -> None:
    response = await catalog.get(f"/api/petitions/{petition_id}")
    assert response.status == 404
    assert (await response.json())["type"] == "urn:paraphe:problem:petition-not-found"


async def test_drafts_are_not_public(catalog: Client, database_url: str) -> None:
    draft = await add_draft(database_url)
    assert (await catalog.get(f"/api/petitions/{draft}")).status == 404
    assert (await (await catalog.get("/api/petitions")).json())["total"] == 3


async def test_demo_petitions_are_loaded_only_into_an_empty_catalogue(
    catalog: Client, database_url: str
) -> None:
    assert await load_demo_petitions(database_url) == 0
    assert (await (await catalog.get("/api/petitions")).json())["total"] == 3


async def test_every_petition_state_is_published_at_start(catalog: Client) -> None:
    from paraphe_common.petition_states import PetitionState
    from paraphe_petition_catalog.states import BUCKET

    listed = (await (await catalog.get("/api/petitions")).json())["items"]
    bucket = catalog.app[BUCKET]
    for item in listed:
        state = PetitionState.decode((await bucket.get(item["id"])).value or b"")
        assert state.status == "published"
        assert state.is_open(now=0)
