"""The pages: French, DSFR, escaped, usable without JavaScript; the author's space end to end."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from html import unescape
from html.parser import HTMLParser
from typing import TYPE_CHECKING

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpServer
from redis.exceptions import RedisError

from paraphe_common.resources import REDIS
from paraphe_devstack.servers import RedisServer

if TYPE_CHECKING:
    from conftest import AddPetition, MakeCatalog, Tokens

Client = TestClient[web.Request, web.Application]

ORIGIN = "http://localhost:8080"  # the public_url the fixture gives the catalogue
PAGE = {"Accept": "text/html"}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)|\son[a-z]+=|\sstyle=|<style", re.IGNORECASE)


def as_cookie(bearer: dict[str, str]) -> dict[str, str]:
    """The author's token where a browser carries it: in the paraphe_author cookie."""
    return {"Cookie": "paraphe_author=" + bearer["Authorization"].removeprefix("Bearer ")}


async def drafts(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(*) FROM catalog.petitions WHERE status = 'draft'"))


DRAFT_FORM = {
    "title": "Pour des bancs publics",
    "body": "Des bancs dans chaque square, pour s'asseoir.",
}


async def add_draft(catalog: Client, author: dict[str, str]) -> str:
    """A draft deposited with the page's form: the path of its page."""
    created = await catalog.post(
        "/mon-espace/petitions", data=DRAFT_FORM, headers={**author, "Origin": ORIGIN},
        allow_redirects=False,
    )  # fmt: skip
    assert created.status == 303
    return created.headers["Location"].split("?")[0]


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


async def test_the_search_boxes_hold_no_more_than_the_list_reads(catalog: Client) -> None:
    for path in ("/", "/petitions"):
        html = await (await catalog.get(path, headers=PAGE)).text()
        box = re.search(r'<input [^>]*name="q"[^>]*>', html)
        assert box is not None, path
        limit = re.search(r'maxlength="(\d+)"', box.group(0))
        assert limit is not None, path
        longest = await catalog.get("/petitions", params={"q": "é" * int(limit.group(1))})
        assert longest.status == 200
        beyond = await catalog.get("/petitions", params={"q": "é" * (int(limit.group(1)) + 1)})
        assert beyond.status == 400


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
    assert '<option value="pertinence" selected>Pertinence</option>' in html


class ListForm(HTMLParser):
    """The list page's filter form as a browser sends it: each field's name, its options and
    the one chosen, and the petitions' titles listed below it."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.options: dict[str, list[str]] = {}
        self.chosen: dict[str, str] = {}
        self.titles: list[str] = []
        self._select: str | None = None
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "select":
            self._select = attributes["name"]
            self.options[self._select or ""] = []
        elif tag == "option" and self._select is not None:
            value = attributes["value"] or ""
            self.options[self._select].append(value)
            if "selected" in attributes:
                self.chosen[self._select] = value
        elif "fr-card__title" in (attributes.get("class") or ""):
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag in {"h2", "h3"}:
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and data.strip():
            self.titles.append(data.strip())


async def list_page(catalog: Client, query: dict[str, str]) -> ListForm:
    response = await catalog.get("/petitions", params=query, headers=PAGE)
    assert response.status == 200, await response.text()
    return ListForm(await response.text())


async def test_the_forms_filters_and_sorts_change_the_list_and_stay_chosen(
    catalog: Client, db: asyncpg.Pool, add_petition: AddPetition
) -> None:
    closed = "Une pétition close sur les bibliothèques"
    await add_petition("closed", title=closed, committee="affaires-culturelles")
    popular = "Une pétition très signée sur les hôpitaux"
    popular_id = await add_petition(
        title=popular, committee="affaires-sociales", signature_count=150_000, published_days_ago=9
    )
    await db.execute(
        "INSERT INTO catalog.thresholds_reached (petition_id, threshold, signatures, reached_at)"
        " VALUES ($1, 100000, 100000, now())",
        popular_id,
    )
    everything = await list_page(catalog, {})
    assert set(everything.options) == {"statut", "commission", "seuil", "tri"}
    assert len(everything.titles) == 5
    assert everything.titles[0] != popular  # the newest first

    # Each choice as the form sends it (its own field names and option values).
    for field, option, expected in [
        ("statut", "closes", [closed]),
        ("commission", "affaires-sociales", [popular]),
        ("seuil", "100000", [popular]),
    ]:
        assert option in everything.options[field]
        filtered = await list_page(catalog, {field: option})
        assert filtered.titles == expected, field
        assert filtered.chosen[field] == option
    opened = await list_page(catalog, {"statut": "ouvertes"})
    assert closed not in opened.titles
    assert len(opened.titles) == 4

    assert "plus-signees" in everything.options["tri"]
    most_signed = await list_page(catalog, {"tri": "plus-signees", "statut": "ouvertes"})
    assert most_signed.titles[0] == popular
    assert most_signed.chosen == {
        "statut": "ouvertes",
        "commission": "",
        "seuil": "",
        "tri": "plus-signees",
    }


async def test_the_home_pages_link_to_the_newest_sorts_the_list(catalog: Client) -> None:
    home = await (await catalog.get("/", headers=PAGE)).text()
    link = re.search(r'href="(/petitions\?tri=[^"]+)">Voir toutes les pétitions', home)
    assert link is not None
    listed = await catalog.get(link.group(1), headers=PAGE, allow_redirects=False)
    assert listed.status == 200
    assert ListForm(await listed.text()).chosen["tri"] == "plus-recentes"


async def test_the_apis_names_in_a_list_address_are_sent_to_the_french_ones(
    catalog: Client,
) -> None:
    response = await catalog.get(
        "/petitions?committee=affaires-economiques&sort=most-signed&status=open&threshold=1",
        allow_redirects=False,
    )
    assert response.status == 301
    assert response.headers["Location"] == (
        "/petitions?commission=affaires-economiques&tri=plus-signees&statut=ouvertes&seuil=1"
    )


async def test_the_forms_empty_choices_are_dropped_from_the_address(catalog: Client) -> None:
    response = await catalog.get(
        "/petitions?q=secours&statut=&commission=&seuil=&tri=", allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"] == "/petitions?q=secours"
    emptied = await catalog.get("/petitions?q=&tri=pertinence&page=1", allow_redirects=False)
    assert emptied.headers["Location"] == "/petitions?page=1"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("page=0", 400),
        ("statut=peut-etre", 400),
        ("seuil=abc", 400),
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


async def test_a_wrong_choice_in_the_list_address_is_said_with_the_forms_labels(
    catalog: Client,
) -> None:
    for query, said in [
        ("tri=popularite", "« Les plus récentes »"),
        ("statut=open", "« Ouvertes à la signature », « Closes »"),
        ("commission=inconnue", "« Commission des affaires sociales »"),
    ]:
        response = await catalog.get(f"/petitions?{query}", headers=PAGE)
        assert response.status == 400
        html = unescape(await response.text())
        assert said in html
        assert not re.search(r"closing-soon|most-signed|affaires-sociales,", html)
    # The API still names the values a program sends.
    api = await (await catalog.get("/api/petitions?sort=popularite")).json()
    assert api["invalid_params"] == [
        {
            "name": "sort",
            "reason": "valeurs possibles : closing-soon, most-signed, newest, relevance",
        }
    ]


async def test_list_is_paginated_with_links(catalog: Client, add_petition: AddPetition) -> None:
    for number in range(25):
        await add_petition(title=f"Pétition numéro {number}")
    html = await (await catalog.get("/petitions?tri=plus-recentes", headers=PAGE)).text()
    assert "28 pétitions — page 1 sur 2" in html
    assert 'href="/petitions?tri=plus-recentes&amp;page=2"' in html


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


SIGNED = re.compile(r'<div class="[^"]*" id="deja-signe">')
SIGN_FORM_HIDDEN = re.compile(r'<form [^>]*id="form-signature"[^>]*hidden>')


async def stand_in_for_intake(aiohttp_server: AiohttpServer, *, delay: float = 0) -> str:
    """An intake that knows one signer, whose token is "a-signer", to have signed everything;
    its ``signatures/me`` answers after ``delay`` seconds. Its URL."""

    async def my_signature(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        if request.headers.get("Authorization") != "Bearer a-signer":
            return web.json_response({"title": "Authentification requise"}, status=401)
        return web.json_response({"petition_id": request.match_info["id"], "signed": True})

    app = web.Application()
    app.router.add_get("/api/petitions/{id}/signatures/me", my_signature)
    server = await aiohttp_server(app)
    return str(server.make_url("/"))


async def test_without_javascript_a_signer_who_signed_reads_it_on_the_page(
    make_catalog: MakeCatalog, add_petition: AddPetition, aiohttp_server: AiohttpServer
) -> None:
    petition = await add_petition()
    catalog = await make_catalog(intake_url=await stand_in_for_intake(aiohttp_server))
    html = await (
        await catalog.get(
            f"/petitions/{petition}", headers={**PAGE, "Cookie": "paraphe_signer=a-signer"}
        )
    ).text()
    assert SIGNED.search(html)
    assert SIGN_FORM_HIDDEN.search(html)
    assert 'data-signature-known="true"' in html  # the script need not ask again
    # Saying who signed what: stored by no cache, the browser's own neither (Back, next person).
    signed = await catalog.get(
        f"/petitions/{petition}", headers={**PAGE, "Cookie": "paraphe_signer=a-signer"}
    )
    assert signed.headers["Cache-Control"] == "no-store"
    # Someone else, or a token intake refuses: the sign button, as before.
    other = await (
        await catalog.get(f"/petitions/{petition}", headers={**PAGE, "Cookie": "paraphe_signer=x"})
    ).text()
    assert not SIGNED.search(other)
    assert not SIGN_FORM_HIDDEN.search(other)
    assert "Signer la pétition" in other


@pytest.mark.parametrize("intake", ["slow", "away"])
async def test_a_petition_page_does_not_wait_for_an_intake_that_does_not_answer(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    aiohttp_server: AiohttpServer,
    unused_tcp_port: int,
    intake: str,
) -> None:
    petition = await add_petition()
    url = (
        await stand_in_for_intake(aiohttp_server, delay=30)
        if intake == "slow"
        else f"http://127.0.0.1:{unused_tcp_port}/"
    )
    catalog = await make_catalog(intake_url=url)
    started = time.monotonic()
    response = await catalog.get(
        f"/petitions/{petition}", headers={**PAGE, "Cookie": "paraphe_signer=a-signer"}
    )
    assert response.status == 200
    assert time.monotonic() - started < 3
    html = await response.text()
    assert not SIGNED.search(html)
    assert "Signer la pétition" in html
    assert "data-signature-known" not in html  # the script asks intake itself


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


async def test_an_unknown_address_says_so_rather_than_to_try_again(catalog: Client) -> None:
    response = await catalog.get("/une-adresse-inconnue", headers=PAGE)
    assert response.status == 404
    html = unescape(await response.text())
    assert "Cette adresse ne correspond à aucune page du site : vérifiez-la" in html
    assert "quelques instants" not in html


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


async def test_submitting_a_draft_submits_what_its_fields_hold_saved_or_not(
    catalog: Client, authors: tuple[str, str], tokens: Tokens, db: asyncpg.Pool
) -> None:
    me = as_cookie(tokens.author(authors[0]))
    saved = {
        "title": "Pour des bancs publics",
        "body": "Des bancs dans chaque square, pour s'asseoir.",
        "suggested_committee": "",
    }
    created = await catalog.post(
        "/mon-espace/petitions", data=saved, headers={**me, "Origin": ORIGIN}, allow_redirects=False
    )
    path = created.headers["Location"].split("?")[0]
    page = await (await catalog.get(path, headers={**PAGE, **me})).text()
    # The submit button belongs to the form of the fields, which it sends elsewhere.
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', page, re.DOTALL)
    assert form is not None
    assert form.group(1) == path
    assert 'name="title"' in form.group(2)
    assert f'formaction="{path}/soumettre">Soumettre la pétition</button>' in form.group(2)

    on_screen = {**saved, "title": "Pour des bancs publics dans chaque square"}
    submitted = await catalog.post(
        f"{path}/soumettre", data=on_screen, headers={**me, "Origin": ORIGIN},
        allow_redirects=False,
    )  # fmt: skip
    assert submitted.status == 303
    row = await db.fetchrow(
        "SELECT status, title FROM catalog.petitions WHERE author_id = $1", authors[0]
    )
    assert row is not None
    assert tuple(row) == ("submitted", "Pour des bancs publics dans chaque square")
    event = await db.fetchval(
        "SELECT body->>'title' FROM catalog.events WHERE kind = 'submitted' AND petition_id = $1",
        uuid.UUID(path.rsplit("/", 1)[1]),
    )
    assert event == "Pour des bancs publics dans chaque square"
    # A double click sends it twice: the second is told it is submitted, and nothing changes.
    again = await catalog.post(
        f"{path}/soumettre", data=on_screen, headers={**me, "Origin": ORIGIN},
        allow_redirects=False,
    )  # fmt: skip
    assert again.status == 303
    assert again.headers["Location"] == submitted.headers["Location"]
    events = "SELECT count(*) FROM catalog.events WHERE kind = 'submitted' AND petition_id = $1"
    assert await db.fetchval(events, uuid.UUID(path.rsplit("/", 1)[1])) == 1
    # Another text, from a tab left open, cannot change what moderation reads.
    other_tab = await catalog.post(
        f"{path}/soumettre", data=saved, headers={**PAGE, **me, "Origin": ORIGIN},
        allow_redirects=False,
    )  # fmt: skip
    assert other_tab.status == 409


async def test_a_draft_whose_fields_are_wrong_is_neither_saved_nor_submitted(
    catalog: Client, authors: tuple[str, str], tokens: Tokens, db: asyncpg.Pool
) -> None:
    me = as_cookie(tokens.author(authors[0]))
    saved = {"title": "Pour des bancs publics", "body": "Des bancs dans chaque square."}
    created = await catalog.post(
        "/mon-espace/petitions", data=saved, headers={**me, "Origin": ORIGIN}, allow_redirects=False
    )
    path = created.headers["Location"].split("?")[0]
    refused = await catalog.post(
        f"{path}/soumettre", data={**saved, "title": "Bancs"},
        headers={**PAGE, **me, "Origin": ORIGIN},
    )  # fmt: skip
    assert refused.status == 422
    html = unescape(await refused.text())
    assert "Votre pétition n'est pas soumise" in html
    assert "Titre : texte trop court (au moins 10 caractères)." in html
    assert 'value="Bancs"' in html  # what was typed stays in the form
    row = await db.fetchrow(
        "SELECT status, title FROM catalog.petitions WHERE author_id = $1", authors[0]
    )
    assert row is not None
    assert tuple(row) == ("draft", "Pour des bancs publics")


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


async def test_a_title_on_two_lines_or_with_control_characters_is_said_in_french(
    catalog: Client, authors: tuple[str, str], tokens: Tokens, db: asyncpg.Pool
) -> None:
    response = await catalog.post(
        "/mon-espace/petitions",
        data={"title": "Une pétition\nsur deux lignes", "body": "Un texte \x07 qui sonne fort."},
        headers={**tokens.author(authors[0]), "Origin": ORIGIN},
    )
    assert response.status == 422
    html = unescape(await response.text())
    assert "Titre : doit tenir sur une seule ligne." in html
    assert "Texte : contient des caractères invisibles qui ne sont pas admis." in html
    assert await drafts(db) == 0
    tabbed = await catalog.post(
        "/mon-espace/petitions",
        data={"title": "Une pétition\tcollée d'un tableur", "body": "Un texte assez long ici."},
        headers={**tokens.author(authors[0]), "Origin": ORIGIN},
        allow_redirects=False,
    )
    assert tabbed.status == 303
    title = await db.fetchval(
        "SELECT title FROM catalog.petitions WHERE author_id = $1", authors[0]
    )
    assert title == "Une pétition collée d'un tableur"


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


async def test_only_a_published_petition_offers_to_report_it(
    catalog: Client, add_petition: AddPetition
) -> None:
    for status, offered in (("published", True), ("closed", False), ("hidden", False)):
        petition = await add_petition(status)
        html = await (await catalog.get(f"/petitions/{petition}", headers=PAGE)).text()
        assert ("Signaler un contenu inapproprié" in html) is offered, status
        assert (f'href="/moderation/signaler?petition={petition}"' in html) is offered, status


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
    listed = await (await catalog.get("/petitions?seuil=100000", headers=PAGE)).text()
    assert "1 pétition" in listed


async def test_the_author_reads_the_count_thresholds_and_follow_up_of_their_petition(
    catalog: Client,
    authors: tuple[str, str],
    tokens: Tokens,
    db: asyncpg.Pool,
    add_petition: AddPetition,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    petition = await add_petition(author_id=authors[0], signature_count=120_000)
    await db.execute(
        "INSERT INTO catalog.thresholds_reached (petition_id, threshold, signatures, reached_at)"
        " VALUES ($1, 100000, 100000, '2026-03-02T10:00:00Z')",
        petition,
    )
    await db.execute(
        "INSERT INTO catalog.follow_ups (petition_id, step, note, at, decision_id)"
        " VALUES ($1, 'rapporteur-appointed', 'Mme Dupont est nommée rapporteure.',"
        " '2026-03-10T10:00:00Z', $2)",
        petition,
        uuid.uuid4(),
    )
    client = aioredis.from_url(redis_server.url)
    try:
        await client.set(f"count:{petition}", 123_456)
    finally:
        await client.aclose()
    me = {**PAGE, **tokens.author(authors[0])}
    path = f"/mon-espace/petitions/{petition}"
    html = unescape(await (await catalog.get(path, headers=me)).text())
    assert "<dt>État</dt><dd>Ouverte à la signature</dd>" in html
    assert "<dt>Signatures jusqu'au</dt>" in html
    assert '<dd id="signatures">123\u202f456</dd>' in html
    assert "100\u202f000 signatures atteintes</p>" in html  # its badge
    assert "Suivi par l'Assemblée nationale" in html
    assert "2 mars 2026</strong> — 100\u202f000 signatures atteintes." in html
    assert "10 mars 2026</strong> — Un rapporteur a été nommé." in html
    assert "Mme Dupont est nommée rapporteure." in html

    async def unanswered(*args: object) -> None:
        raise RedisError("counter's Redis does not answer")

    # Without counter's total, the catalogue's copy, as on the public page.
    monkeypatch.setattr(catalog.app[REDIS], "get", unanswered)
    degraded = await catalog.get(path, headers=me)
    assert degraded.status == 200
    assert '<dd id="signatures">120\u202f000</dd>' in unescape(await degraded.text())


@pytest.mark.parametrize(
    ("status", "open_days", "words", "deadline"),
    [
        pytest.param("published", 180, "Ouverte à la signature", True, id="open"),
        pytest.param("published", 0.5, "Close : elle ne recueille plus de signatures", False,
                     id="past its deadline"),
        pytest.param("closed", 180, "Close : elle ne recueille plus de signatures", False,
                     id="closed"),
        pytest.param("hidden", 180, "Retirée par la modération", False, id="taken down"),
        pytest.param("submitted", 180, "En cours d'examen par les services du Parlement", False,
                     id="submitted"),
    ],
)  # fmt: skip
async def test_the_author_reads_a_signing_deadline_only_while_their_petition_is_open(
    catalog: Client,
    authors: tuple[str, str],
    tokens: Tokens,
    add_petition: AddPetition,
    status: str,
    open_days: float,
    words: str,
    deadline: bool,
) -> None:
    petition = await add_petition(status, author_id=authors[0], open_days=open_days)
    html = unescape(
        await (
            await catalog.get(
                f"/mon-espace/petitions/{petition}", headers={**PAGE, **tokens.author(authors[0])}
            )
        ).text()
    )
    assert ("Signatures jusqu'au" in html) is deadline
    assert f"<dt>État</dt><dd>{words}</dd>" in html
    # Signatures once it was published, whatever became of it since.
    assert ('<dd id="signatures">0</dd>' in html) is (status != "submitted")


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


async def test_percent_escapes_that_are_not_utf8_are_a_form_error_not_a_stored_draft(
    catalog: Client, authors: tuple[str, str], tokens: Tokens, db: asyncpg.Pool
) -> None:
    me = {**tokens.author(authors[0]), "Origin": ORIGIN, **PAGE}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = b"&body=Un+texte+tout+%C3%A0+fait+lisible+et+assez+long."
    response = await catalog.post(
        "/mon-espace/petitions", data=b"title=%ff%fe+Titre+invalide+ici" + body,
        headers={**me, **form},
    )  # fmt: skip
    assert response.status == 422
    html = unescape(await response.text())
    assert "Titre : contient des caractères que le site n'a pas pu lire, à retaper." in html
    assert await drafts(db) == 0

    draft = await add_draft(catalog, me)
    latin_1 = b"title=Un+titre+tout+%C3%A0+fait+lisible" + body.replace(b"lisible", b"%e9")
    for path in (draft, f"{draft}/soumettre"):
        refused = await catalog.post(path, data=latin_1, headers={**me, **form})
        assert refused.status == 422
        html = unescape(await refused.text())
        assert "Texte : contient des caractères que le site n'a pas pu lire, à retaper." in html
    row = await db.fetchrow(
        "SELECT status, body FROM catalog.petitions WHERE author_id = $1", authors[0]
    )
    assert row is not None
    assert tuple(row) == ("draft", DRAFT_FORM["body"])


async def test_accessibility_and_personal_data_are_said_from_every_page(catalog: Client) -> None:
    home = await (await catalog.get("/", headers=PAGE)).text()
    assert 'href="/accessibilite">Accessibilité : non conforme</a>' in home
    assert 'href="/donnees-personnelles"' in home
    accessibility = await (await catalog.get("/accessibilite", headers=PAGE)).text()
    assert "<h1>Déclaration d'accessibilité</h1>" in accessibility
    data = await (await catalog.get("/donnees-personnelles", headers=PAGE)).text()
    assert "Seuls vos nom et prénoms sont publiés" in data


MULTIPART_BOGUS_ENCODING = (
    b'--XX\r\nContent-Disposition: form-data; name="title"\r\n'
    b"Content-Transfer-Encoding: x-bogus\r\n\r\nUne petition\r\n--XX--\r\n"
)


@pytest.mark.parametrize(
    ("content_type", "content_encoding", "body"),
    [
        pytest.param(
            "application/x-www-form-urlencoded; charset=nope", None, b"a=1", id="unknown-charset"
        ),
        pytest.param(
            "application/x-www-form-urlencoded", "gzip", b"not gzip at all", id="not-gzip"
        ),
        pytest.param(
            "multipart/form-data; boundary=XX", None, MULTIPART_BOGUS_ENCODING, id="bogus-part"
        ),
    ],
)
async def test_a_form_that_cannot_be_read_is_a_french_400_page_on_every_form(
    catalog: Client,
    authors: tuple[str, str],
    tokens: Tokens,
    add_petition: AddPetition,
    db: asyncpg.Pool,
    content_type: str,
    content_encoding: str | None,
    body: bytes,
) -> None:
    petition = await add_petition()
    # A connection each: aiohttp closes one whose request body it could not decode.
    headers = {**PAGE, "Origin": ORIGIN, "Content-Type": content_type, "Connection": "close"}
    if content_encoding:
        headers["Content-Encoding"] = content_encoding
    for path, who in (
        (f"/petitions/{petition}/signature", {}),  # public: nobody signed in
        ("/mon-espace/petitions", tokens.author(authors[0])),
    ):
        response = await catalog.post(path, data=body, headers={**headers, **who})
        assert response.status == 400, (path, await response.text())
        assert response.content_type == "text/html"
        assert "pas pu être lu" in unescape(await response.text())
    assert await drafts(db) == 0


@pytest.mark.parametrize(
    ("title", "body", "said"),
    [
        pytest.param(
            "Une pétition\u2028sur deux lignes", "Un texte assez long ici.",
            "Titre : doit tenir sur une seule ligne.", id="line-separator",
        ),
        pytest.param(
            "Une pétition\x85sur deux lignes", "Un texte assez long ici.",
            "Titre : contient des caractères invisibles qui ne sont pas admis.", id="nel",
        ),
        pytest.param(
            "Une pétition assez longue", "Un texte \x9b qui commande le terminal.",
            "Texte : contient des caractères invisibles qui ne sont pas admis.", id="c1",
        ),
        pytest.param(
            "\u200b" * 10, "Un texte assez long ici.",
            "Titre : ne contient ni lettre ni chiffre.", id="invisible-title",
        ),
        pytest.param(
            "Une pétition assez longue", "\u200b" * 20,
            "Texte : ne contient ni lettre ni chiffre.", id="invisible-body",
        ),
    ],
)  # fmt: skip
async def test_a_text_that_would_show_other_than_typed_is_refused_in_french(
    catalog: Client,
    authors: tuple[str, str],
    tokens: Tokens,
    db: asyncpg.Pool,
    title: str,
    body: str,
    said: str,
) -> None:
    response = await catalog.post(
        "/mon-espace/petitions",
        data={"title": title, "body": body},
        headers={**tokens.author(authors[0]), "Origin": ORIGIN},
    )
    assert response.status == 422
    assert said in unescape(await response.text())
    assert await drafts(db) == 0


async def test_a_deposit_sent_twice_at_once_makes_one_draft(
    catalog: Client, authors: tuple[str, str], tokens: Tokens, db: asyncpg.Pool
) -> None:
    me = as_cookie(tokens.author(authors[0]))
    form = {"title": "Pour des bancs publics", "body": "Des bancs dans chaque square, merci."}

    async def deposit(fields: dict[str, str]) -> str:
        response = await catalog.post(
            "/mon-espace/petitions", data=fields, headers={**me, "Origin": ORIGIN},
            allow_redirects=False,
        )  # fmt: skip
        assert response.status == 303
        return response.headers["Location"]

    # A double click: the same form twice, the second before the first is answered.
    first, second = await asyncio.gather(deposit(form), deposit(form))
    assert first == second
    assert await drafts(db) == 1
    # Another text is another draft.
    await deposit({**form, "title": "Pour des bancs publics et des fontaines"})
    assert await drafts(db) == 2
