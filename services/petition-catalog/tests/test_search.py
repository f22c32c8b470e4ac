"""The public list: French full-text search without accents, filters, sorts, pagination."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

if TYPE_CHECKING:
    from conftest import AddPetition, Client, MakeCatalog


@pytest.fixture
async def listed(make_catalog: MakeCatalog, add_petition: AddPetition, db: asyncpg.Pool) -> Client:
    await add_petition(
        title="Rénover les écoles rurales avant 2030",
        body="Les bâtiments scolaires des villages se dégradent faute de moyens.",
        committee="affaires-culturelles",
        published_days_ago=5,
        signature_count=5_000,
    )
    await add_petition(
        title="Des pistes cyclables le long des routes départementales",
        body="Pour que les enfants puissent aller à l'école à vélo en sécurité.",
        committee="developpement-durable",
        published_days_ago=3,
        open_days=10,
        signature_count=120_000,
    )
    await add_petition(
        title="Protéger les haies bocagères et les talus",
        body="Les haies abritent la biodiversité des campagnes françaises.",
        committee="developpement-durable",
        published_days_ago=1,
        signature_count=40,
    )
    await add_petition(
        "closed",
        title="Une pétition close sur la chasse aux escargots",
        body="Cette pétition n'est plus ouverte à la signature depuis longtemps.",
        committee="affaires-economiques",
        published_days_ago=400,
        open_days=180,
    )
    await add_petition(
        title="Une pétition échue que le job n'a pas encore close",
        body="Son échéance est passée il y a une heure à peine, voilà tout.",
        committee="lois",
        published_days_ago=181,
        open_days=181 - 1 / 24,
    )
    await add_petition("submitted", title="Une école soumise mais pas encore publiée")
    await add_petition("rejected", title="Une école rejetée par la modération")
    await add_petition("draft", title="Un brouillon sur les écoles")
    await add_petition("hidden", title="Une école retirée pour diffamation")
    return await make_catalog()


async def titles(catalog: Client, query: str) -> list[str]:
    response = await catalog.get(f"/api/petitions?{query}")
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return [item["title"] for item in body["items"]]


@pytest.mark.parametrize("q", ["école", "ecole", "écoles", "ECOLES", "Ecolé"])
async def test_search_ignores_accents_and_case_and_stems_french(listed: Client, q: str) -> None:
    found = await titles(listed, f"q={q}")
    # The title match ranks above the text match; unpublished petitions never show.
    assert found == [
        "Rénover les écoles rurales avant 2030",
        "Des pistes cyclables le long des routes départementales",
    ]


async def test_search_takes_web_syntax(listed: Client) -> None:
    assert await titles(listed, "q=%22haies+bocag%C3%A8res%22") == [
        "Protéger les haies bocagères et les talus"
    ]
    assert await titles(listed, "q=%C3%A9cole+-v%C3%A9lo") == [
        "Rénover les écoles rurales avant 2030"
    ]


@pytest.mark.parametrize(
    "q", ["le la les", "&|!():*", "%22non+fermé", "<script>alert(1)</script>", "%C3%A9" * 50]
)
async def test_any_search_text_is_an_answer_never_an_error(listed: Client, q: str) -> None:
    response = await listed.get(f"/api/petitions?q={q}")
    assert response.status == 200
    assert (await response.json())["total"] >= 0


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("q=" + "a" * 201, "q"),
        ("q=%00", "q"),
        ("q=%FF%FE", "q"),
        ("status=draft", "status"),
        ("status=hidden", "status"),
        ("committee=inconnue", "committee"),
        ("threshold=-1", "threshold"),
        ("threshold=1e5", "threshold"),
        ("threshold=99999999999", "threshold"),
        ("sort=random", "sort"),
        ("page=10001", "page"),
        ("page=%D9%A3", "page"),
        ("per_page=0", "per_page"),
    ],
)
async def test_bad_parameters_are_400_problems_naming_them(
    listed: Client, query: str, parameter: str
) -> None:
    response = await listed.get(f"/api/petitions?{query}")
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    assert (await response.json())["invalid_params"][0]["name"] == parameter


async def test_status_filters_tell_open_from_closed_by_their_deadline(listed: Client) -> None:
    assert await titles(listed, "status=open&sort=newest") == [
        "Protéger les haies bocagères et les talus",
        "Des pistes cyclables le long des routes départementales",
        "Rénover les écoles rurales avant 2030",
    ]
    assert set(await titles(listed, "status=closed")) == {
        "Une pétition close sur la chasse aux escargots",
        "Une pétition échue que le job n'a pas encore close",
    }


async def test_an_empty_filter_is_no_filter(listed: Client) -> None:
    everything = await titles(listed, "sort=newest")
    emptied = "q=&status=&committee=&threshold=&page=&per_page=&sort=newest"
    assert await titles(listed, emptied) == everything


async def test_relevance_without_a_search_is_the_default_order(listed: Client) -> None:
    assert await titles(listed, "sort=relevance") == await titles(listed, "")


async def test_committee_filter(listed: Client) -> None:
    assert await titles(listed, "committee=developpement-durable&sort=newest") == [
        "Protéger les haies bocagères et les talus",
        "Des pistes cyclables le long des routes départementales",
    ]


async def test_sorts(listed: Client) -> None:
    assert (await titles(listed, "sort=most-signed"))[:3] == [
        "Des pistes cyclables le long des routes départementales",
        "Rénover les écoles rurales avant 2030",
        "Protéger les haies bocagères et les talus",
    ]
    assert (await titles(listed, "sort=closing-soon"))[:4] == [
        "Des pistes cyclables le long des routes départementales",
        "Rénover les écoles rurales avant 2030",
        "Protéger les haies bocagères et les talus",
        # Past their deadline: after every open one.
        "Une pétition close sur la chasse aux escargots",
    ]
    assert (await titles(listed, "sort=newest"))[0] == "Protéger les haies bocagères et les talus"


async def test_pages_cover_the_list_once_and_count_it(listed: Client) -> None:
    seen: list[str] = []
    for page in (1, 2, 3):
        response = await listed.get(f"/api/petitions?sort=newest&per_page=2&page={page}")
        body = await response.json()
        assert (body["page"], body["per_page"], body["total"]) == (page, 2, 5)
        seen += [item["title"] for item in body["items"]]
    assert len(seen) == len(set(seen)) == 5
    beyond = await (await listed.get("/api/petitions?per_page=2&page=4")).json()
    assert (beyond["items"], beyond["total"]) == ([], 5)
