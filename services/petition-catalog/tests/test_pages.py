"""The pages: French, DSFR, escaped, usable without JavaScript; the author's space end to end."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from paraphe_devstack.servers import RedisServer

if TYPE_CHECKING:
    from conftest import AddPetition, Tokens

Client = TestClient[web.Request, web.Application]

ORIGIN = "http://localhost:8080"  # the public_url the fixture gives the catalogue
PAGE = {"Accept": "text/html"}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)|\son[a-z]+=|\sstyle=|<style", re.IGNORECASE)


def as_cookie(bearer: dict[str, str]) -> dict[str, str]:
    """The author's token where a browser carries it: in the paraphe_author cookie."""
    return {"Cookie": "paraphe_author=" + bearer["Authorization"].removeprefix("Bearer ")}


async def drafts(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(*) FROM catalog.petitions WHERE status = 'draft'"))


async def first_petition(catalog: Client, query: str = "") -> dict[str, object]:
    body = await (await catalog.get(f"/api/petitions{query}")).json()
    item: dict[str, object] = body["items"][0]
    return item


async def test_home_page_is_french_dsfr_without_inline_script(catalog: Client) -> None:
    response = await catalog.get("/", headers=PAGE)
    assert response.status == 200
    html = await response.text()
    assert '<html lang="fr">' in html
    assert 'href="/static/dsfr/dsfr.min.css"' in html
    assert '<form method="get" action="/petitions" role="search"' in html
    assert "Rendre obligatoire l&#39;apprentissage des premiers secours au collège" in html
    assert not INLINE_SCRIPT.search(html)


async def test_dsfr_and_the_pages_scripts_are_served(catalog: Client) -> None:
    css = await catalog.get("/static/dsfr/dsfr.min.css")
    assert css.status == 200
    assert css.content_type == "text/css"
    assert (await catalog.get("/static/dsfr/dsfr.module.min.js")).status == 200
    assert (await catalog.get("/static/dsfr/utility/icons/icons.min.css")).status == 200
    assert (await catalog.get("/static/petition.js")).status == 200
    assert (await catalog.get("/static/catalog.css")).status == 200
    assert (await catalog.get("/static/dsfr/../../package.json")).status in {403, 404}


async def test_search_finds_a_petition_whatever_the_accents(catalog: Client) -> None:
    html = await (await catalog.get("/petitions?q=secours+college", headers=PAGE)).text()
    assert "1 pétition" in html
    assert "premiers secours au collège" in html
    assert "transports en commun" not in html
    assert '<option value="relevance" selected>Pertinence</option>' in html


async def test_filters_and_sorts_are_query_parameters(catalog: Client) -> None:
    html = await (
        await catalog.get(
            "/petitions?committee=affaires-economiques&sort=most-signed", headers=PAGE
        )
    ).text()
    assert '<option value="affaires-economiques" selected>' in html
    assert '<option value="most-signed" selected>' in html


async def test_the_forms_empty_choices_are_dropped_from_the_address(catalog: Client) -> None:
    response = await catalog.get(
        "/petitions?q=secours&status=&committee=&threshold=&sort=", allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"] == "/petitions?q=secours"
    emptied = await catalog.get("/petitions?q=&sort=relevance&page=1", allow_redirects=False)
    assert emptied.headers["Location"] == "/petitions?page=1"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("page=0", 400),
        ("status=maybe", 400),
        ("threshold=abc", 400),
        ("page=99", 404),
        ("q=%FF%FE", 400),
        ("q=" + "x" * 201, 400),
    ],
)
async def test_bad_list_parameters_get_a_french_page_not_a_500(
    catalog: Client, query: str, status: int
) -> None:
    response = await catalog.get(f"/petitions?{query}", headers=PAGE)
    assert response.status == status
    assert response.content_type == "text/html"
    assert '<html lang="fr">' in await response.text()


async def test_list_is_paginated_with_links(catalog: Client, add_petition: AddPetition) -> None:
    for number in range(25):
        await add_petition(title=f"Pétition numéro {number}")
    html = await (await catalog.get("/petitions?sort=newest", headers=PAGE)).text()
    assert "28 pétitions — page 1 sur 2" in html
    assert 'href="/petitions?sort=newest&amp;page=2"' in html


async def test_petition_page_renders_the_live_count_and_franceconnect(
    catalog: Client, redis_server: RedisServer
) -> None:
    petition = await first_petition(catalog)
    client = aioredis.from_url(redis_server.url)
    try:
        await client.set(f"count:{petition['id']}", 1234)
    finally:
        await client.aclose()
    response = await catalog.get(f"/petitions/{petition['id']}", headers=PAGE)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "private, no-cache"
    html = await response.text()
    assert '<span id="compteur-nombre">1\u202f234</span>' in html
    assert "/ 100\u202f000 signatures" in html
    assert 'aria-live="polite"' in html
    assert '<input type="hidden" name="flow" value="sign">' in html
    assert f'<input type="hidden" name="petition" value="{petition["id"]}">' in html
    assert f'<input type="hidden" name="return_to" value="/petitions/{petition["id"]}">' in html
    assert f'value="{ORIGIN}/petitions/{petition["id"]}" readonly' in html
    assert '<script src="/static/petition.js" defer></script>' in html
    assert 'id="form-signature"' not in html
    assert not INLINE_SCRIPT.search(html)


async def test_a_signed_in_signer_gets_the_sign_button(catalog: Client) -> None:
    petition = await first_petition(catalog)
    html = await (
        await catalog.get(
            f"/petitions/{petition['id']}", headers={**PAGE, "Cookie": "paraphe_signer=x"}
        )
    ).text()
    assert 'id="form-signature"' in html
    assert "Signer la pétition" in html
    assert "fr-connect" not in html


async def test_a_taken_down_petition_says_why_and_nothing_else(
    catalog: Client, db: asyncpg.Pool, add_petition: AddPetition
) -> None:
    petition = await add_petition("hidden", title="Une pétition retirée par la modération")
    await db.execute(
        "UPDATE catalog.petitions SET status_reason_code = 'defamatory',"
        " status_reason = 'Propos diffamatoires.', decided_at = now() WHERE id = $1",
        petition,
    )
    html = await (await catalog.get(f"/petitions/{petition}", headers=PAGE)).text()
    assert "Pétition retirée" in html
    assert "Propos diffamatoires." in html
    assert "Une pétition retirée par la modération" not in html


async def test_unknown_petitions_are_a_french_404_page(
    catalog: Client, add_petition: AddPetition
) -> None:
    for petition_id in ("not-a-uuid", str(uuid.uuid4()), str(await add_petition("submitted"))):
        response = await catalog.get(f"/petitions/{petition_id}", headers=PAGE)
        assert response.status == 404
        html = await response.text()
        assert "Cette pétition n&#39;existe pas." in html
        assert 'class="fr-header"' in html  # said in the site's layout


async def test_the_author_space_asks_to_sign_in_with_franceconnect(catalog: Client) -> None:
    response = await catalog.get("/mon-espace/", headers=PAGE)
    assert response.status == 401
    html = await response.text()
    assert '<input type="hidden" name="flow" value="author">' in html
    assert '<input type="hidden" name="return_to" value="/mon-espace/">' in html
    expired = await catalog.get("/mon-espace/", headers={**PAGE, "Cookie": "paraphe_author=x"})
    assert "Votre session a expiré" in await expired.text()
    after_a_form = await catalog.post(
        "/mon-espace/petitions",
        data={"title": "Un titre assez long", "body": "x" * 40},
        headers={**PAGE, "Cookie": "paraphe_author=x", "Origin": ORIGIN},
    )
    assert after_a_form.status == 401
    assert (
        '<input type="hidden" name="return_to" value="/mon-espace/">' in await after_a_form.text()
    )


async def test_an_author_deposits_edits_and_submits_a_petition(
    catalog: Client, authors: tuple[str, str], tokens: Tokens, db: asyncpg.Pool
) -> None:
    me = as_cookie(tokens.author(authors[0]))
    form = {
        "title": "Pour des <script>alert(1)</script> bancs publics",
        "body": "Des bancs dans chaque square.\n\nC'est tout ce que nous demandons.",
        "suggested_committee": "affaires-economiques",
    }
    created = await catalog.post(
        "/mon-espace/petitions", data=form, headers={**me, "Origin": ORIGIN}, allow_redirects=False
    )
    assert created.status == 303
    location = created.headers["Location"]
    assert location.endswith("?enregistree=1")
    page = await (await catalog.get(location, headers={**PAGE, **me})).text()
    assert "Votre brouillon est enregistré" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
    path = location.split("?")[0]

    edited = await catalog.post(
        path,
        data={**form, "title": "Pour des bancs publics dans chaque square"},
        headers={**me, "Origin": ORIGIN},
        allow_redirects=False,
    )
    assert edited.status == 303
    submitted = await catalog.post(
        f"{path}/soumettre", headers={**me, "Origin": ORIGIN}, allow_redirects=False
    )
    assert submitted.status == 303
    page = await (await catalog.get(submitted.headers["Location"], headers={**PAGE, **me})).text()
    assert "Votre pétition est soumise" in page
    assert "Soumettre la pétition" not in page  # no longer a draft: no more forms
    row = await db.fetchrow(
        "SELECT status, title, suggested_committee FROM catalog.petitions WHERE author_id = $1",
        authors[0],
    )
    assert row is not None
    assert tuple(row) == (
        "submitted",
        "Pour des bancs publics dans chaque square",
        "affaires-economiques",
    )
    space = await (await catalog.get("/mon-espace/", headers={**PAGE, **me})).text()
    assert "Pour des bancs publics dans chaque square" in space
    assert "En cours d&#39;examen" in space


async def test_a_rejected_petition_shows_its_reason_to_its_author(
    catalog: Client, authors: tuple[str, str], tokens: Tokens, db: asyncpg.Pool
) -> None:
    petition = await db.fetchval(
        "INSERT INTO catalog.petitions (author_id, title, body, status, status_reason_code,"
        " status_reason, submitted_at, decided_at) VALUES ($1, 'Une pétition hors sujet',"
        " 'Un texte qui ne relève pas du Parlement.', 'rejected', 'outside-remit',"
        " 'Cette demande ne relève pas de la compétence du Parlement.', now(), now())"
        " RETURNING id",
        authors[0],
    )
    me = tokens.author(authors[0])
    space = await (await catalog.get("/mon-espace/", headers={**PAGE, **me})).text()
    assert "Irrecevable" in space
    assert "ne relève pas de la compétence du Parlement" in space
    page = await (await catalog.get(f"/mon-espace/petitions/{petition}", headers=me)).text()
    assert "n'a pas été jugée recevable" in page
    assert "Motif : Cette demande ne relève pas de la compétence du Parlement." in page


async def test_form_errors_are_said_in_french_next_to_their_field(
    catalog: Client, authors: tuple[str, str], tokens: Tokens, db: asyncpg.Pool
) -> None:
    response = await catalog.post(
        "/mon-espace/petitions",
        data={"title": "Court", "body": "x" * 20_001, "suggested_committee": "nope"},
        headers={**tokens.author(authors[0]), "Origin": ORIGIN},
    )
    assert response.status == 422
    html = await response.text()
    assert '<a href="#title">Titre : texte trop court (au moins 10 caractères).</a>' in html
    assert "Texte : texte trop long (au plus 20000 caractères)." in html
    assert 'value="Court"' in html  # what was typed stays in the form
    assert await drafts(db) == 0


async def test_forms_from_another_site_are_refused(
    catalog: Client, authors: tuple[str, str], tokens: Tokens, db: asyncpg.Pool
) -> None:
    for headers in ({"Origin": "http://evil.example"}, {}):
        response = await catalog.post(
            "/mon-espace/petitions",
            data={"title": "Une pétition venue d'ailleurs", "body": "x" * 40},
            headers={**tokens.author(authors[0]), **headers, **PAGE},
        )
        assert response.status == 403
    assert await drafts(db) == 0


async def test_an_author_cannot_see_or_change_another_authors_draft(
    catalog: Client,
    authors: tuple[str, str],
    tokens: Tokens,
    db: asyncpg.Pool,
    add_petition: AddPetition,
) -> None:
    draft = await add_petition("draft", title="Le brouillon de Chloé", author_id=authors[0])
    other = tokens.author(authors[1])
    page = await catalog.get(f"/mon-espace/petitions/{draft}", headers={**PAGE, **other})
    assert page.status == 404
    for path in (f"/mon-espace/petitions/{draft}", f"/mon-espace/petitions/{draft}/soumettre"):
        response = await catalog.post(
            path,
            data={"title": "Le brouillon de Jean", "body": "Un texte réécrit par Jean."},
            headers={**other, "Origin": ORIGIN},
        )
        assert response.status == 404
    row = await db.fetchrow("SELECT title, status FROM catalog.petitions WHERE id = $1", draft)
    assert row is not None
    assert tuple(row) == ("Le brouillon de Chloé", "draft")
    space = await catalog.get("/mon-espace/", headers={**PAGE, **other})
    assert space.status == 200
    assert "Le brouillon de Chloé" not in await space.text()


async def test_the_sign_form_without_javascript_sends_a_stranger_to_franceconnect(
    catalog: Client, add_petition: AddPetition
) -> None:
    petition = await add_petition()
    response = await catalog.post(
        f"/petitions/{petition}/signature", headers={"Origin": ORIGIN}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == (
        f"/auth/login?flow=sign&petition={petition}&return_to=/petitions/{petition}"
    )
    refused = await catalog.post(
        f"/petitions/{petition}/signature",
        headers={"Origin": "http://evil.example", "Cookie": "paraphe_signer=x", **PAGE},
    )
    assert refused.status == 403


async def test_a_closed_petition_cannot_be_signed_from_its_page(
    catalog: Client, add_petition: AddPetition
) -> None:
    petition = await add_petition("closed")
    response = await catalog.post(
        f"/petitions/{petition}/signature",
        headers={"Origin": ORIGIN, "Cookie": "paraphe_signer=x"},
    )
    assert response.status == 409
    assert "n&#39;est plus ouverte à la signature" in await response.text()


async def test_the_follow_up_after_thresholds_is_public(
    catalog: Client, db: asyncpg.Pool, add_petition: AddPetition
) -> None:
    petition = await add_petition(signature_count=123_456)
    await db.execute(
        "INSERT INTO catalog.thresholds_reached (petition_id, threshold, signatures, reached_at)"
        " VALUES ($1, 100000, 100000, '2026-03-02T10:00:00Z')",
        petition,
    )
    await db.execute(
        "INSERT INTO catalog.follow_ups (petition_id, step, note, at, decision_id)"
        " VALUES ($1, 'rapporteur-appointed', 'Mme <b>Dupont</b> est nommée rapporteure.',"
        " '2026-03-10T10:00:00Z', $2)",
        petition,
        uuid.uuid4(),
    )
    html = await (await catalog.get(f"/petitions/{petition}", headers=PAGE)).text()
    assert "Suivi par l'Assemblée nationale" in html
    assert "2 mars 2026</strong> — 100\u202f000 signatures atteintes." in html
    assert "Un rapporteur a été nommé." in html
    assert "Mme &lt;b&gt;Dupont&lt;/b&gt; est nommée rapporteure." in html
    # Past the first threshold, the counter aims at the next one.
    assert "/ 500\u202f000 signatures" in html
    listed = await (await catalog.get("/petitions?threshold=100000", headers=PAGE)).text()
    assert "1 pétition" in listed


async def test_a_form_that_is_not_utf8_is_a_400_page(
    catalog: Client, authors: tuple[str, str], tokens: Tokens, db: asyncpg.Pool
) -> None:
    response = await catalog.post(
        "/mon-espace/petitions",
        data=b"title=%FF%FE&body=" + b"\xff" * 30,
        headers={
            **tokens.author(authors[0]),
            "Origin": ORIGIN,
            "Content-Type": "application/x-www-form-urlencoded",
            **PAGE,
        },
    )
    assert response.status in {400, 422}
    assert '<html lang="fr">' in await response.text()
    assert await drafts(db) == 0


async def test_accessibility_and_personal_data_are_said_from_every_page(catalog: Client) -> None:
    home = await (await catalog.get("/", headers=PAGE)).text()
    assert 'href="/accessibilite">Accessibilité : non conforme</a>' in home
    assert 'href="/donnees-personnelles"' in home
    accessibility = await (await catalog.get("/accessibilite", headers=PAGE)).text()
    assert "<h1>Déclaration d'accessibilité</h1>" in accessibility
    data = await (await catalog.get("/donnees-personnelles", headers=PAGE)).text()
    assert "Seuls vos nom et prénoms sont publiés" in data
