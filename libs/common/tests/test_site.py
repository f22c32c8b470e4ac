"""The shared page layout: a service's templates extend it, escaped, in French, with the DSFR."""

import re
from datetime import UTC, datetime
from pathlib import Path

import aiohttp_jinja2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from paraphe_common.app import create_service_app
from paraphe_common.problems import Problem
from paraphe_common.settings import ServiceSettings
from paraphe_common.site import (
    date_fr,
    datetime_fr,
    number_fr,
    origin_of,
    require_same_origin,
    setup_site,
)

Client = TestClient[web.Request, web.Application]
ORIGIN = "http://localhost:8080"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)|\son[a-z]+=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style|\sstyle=", re.IGNORECASE)

PAGE = """{% extends "site/base.html" %}
{% import "site/macros.html" as ui %}
{% set current = "/petitions" %}
{% block title %}{{ heading }}{% endblock %}
{% block main %}
<h1>{{ heading }}</h1>
{{ ui.franceconnect_button({"flow": "sign", "return_to": "/petitions/1"}) }}
{{ ui.error_summary(errors) }}
{{ ui.field("title", "Titre", value=heading, errors=errors, maxlength=150) }}
{{ ui.pagination(2, 5, "/petitions?q=x&page=") }}
<p>{{ 100000 | number_fr }}</p>
{% endblock %}
"""


@pytest.fixture
def service_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "example_service"
    (package / "templates").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "templates" / "page.html").write_text(PAGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "example_service"


@aiohttp_jinja2.template("page.html")
async def page(request: web.Request) -> dict[str, object]:
    return {"heading": request.query.get("heading", "Pétitions"), "errors": {}}


@aiohttp_jinja2.template("page.html")
async def page_with_errors(request: web.Request) -> dict[str, object]:
    return {"heading": "", "errors": {"title": "Le titre est obligatoire."}}


async def missing(request: web.Request) -> web.Response:
    raise Problem(404, "Cette pétition n'existe pas.", kind="petition-not-found")


async def post(request: web.Request) -> web.Response:
    require_same_origin(request, ORIGIN)
    return web.Response(text="ok")


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, service_package: str) -> Client:
    app = create_service_app("example", ServiceSettings())
    setup_site(app, service_package)
    app.router.add_get("/page", page)
    app.router.add_get("/errors", page_with_errors)
    app.router.add_post("/form", post)
    app.router.add_get("/missing", missing)
    return await aiohttp_client(app)


async def test_a_service_page_extends_the_dsfr_layout(client: Client) -> None:
    response = await client.get("/page")
    assert response.status == 200
    html = await response.text()
    assert '<html lang="fr">' in html
    assert "<title>Pétitions — Pétitions — Assemblée nationale</title>" in html
    assert 'href="/static/dsfr/dsfr.min.css"' in html
    assert 'src="/static/dsfr/dsfr.module.min.js"' in html
    assert 'class="fr-skiplinks"' in html
    assert 'href="#contenu"' in html
    assert '<main id="contenu"' in html
    assert 'class="fr-footer"' in html
    assert 'href="/petitions" aria-current="page"' in html
    # No inline script or style: the Content-Security-Policy will forbid them.
    assert not INLINE_SCRIPT.search(html)
    assert not INLINE_STYLE.search(html)


async def test_the_franceconnect_button_is_a_form_that_works_without_javascript(
    client: Client,
) -> None:
    html = await (await client.get("/page")).text()
    assert '<form method="get" action="/auth/login">' in html
    assert '<input type="hidden" name="flow" value="sign">' in html
    assert '<input type="hidden" name="return_to" value="/petitions/1">' in html
    assert 'class="fr-connect"' in html


async def test_values_are_escaped(client: Client) -> None:
    html = await (await client.get("/page", params={"heading": "<script>x</script>"})).text()
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


async def test_pagination_and_numbers_are_french(client: Client) -> None:
    html = await (await client.get("/page")).text()
    assert 'href="/petitions?q=x&amp;page=3"' in html
    assert 'aria-current="page">2</a>' in html
    assert "<p>100\u202f000</p>" in html


async def test_form_errors_are_listed_and_tied_to_their_field(client: Client) -> None:
    html = await (await client.get("/errors")).text()
    assert '<a href="#title">Le titre est obligatoire.</a>' in html
    assert 'aria-describedby="title-erreur"' in html
    assert 'id="title-erreur">Le titre est obligatoire.</p>' in html


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": ORIGIN}, 200),
        ({"Referer": f"{ORIGIN}/mon-espace/"}, 200),
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null", "Referer": "http://evil.example/"}, 403),
        ({}, 403),
    ],
)
async def test_forms_are_accepted_only_from_the_site_itself(
    client: Client, headers: dict[str, str], status: int
) -> None:
    response = await client.post("/form", headers=headers)
    assert response.status == status
    if status == 403:
        assert (await response.json())["type"] == "urn:paraphe:problem:cross-site-form"


async def test_failures_are_french_pages_in_the_layout_and_problems_for_apis(
    client: Client,
) -> None:
    page = await client.get("/missing", headers={"Accept": "text/html"})
    assert page.status == 404
    assert page.content_type == "text/html"
    html = await page.text()
    assert "<title>Ressource introuvable — Pétitions — Assemblée nationale</title>" in html
    assert "Cette pétition n&#39;existe pas." in html
    assert 'class="fr-header"' in html
    unknown = await client.get("/nowhere", headers={"Accept": "text/html"})
    assert unknown.status == 404
    html = await unknown.text()
    assert 'class="fr-footer"' in html
    # Not the advice for a failure that passes: the address leads nowhere.
    assert "Cette adresse ne correspond à aucune page du site" in html
    assert "quelques instants" not in html
    api = await client.get("/missing", headers={"Accept": "application/json"})
    assert api.content_type == "application/problem+json"


def test_french_formats() -> None:
    moment = datetime(2026, 12, 1, 13, 5, tzinfo=UTC)
    assert date_fr(moment) == "1er décembre 2026"
    assert datetime_fr(moment) == "1er décembre 2026 à 14 h 05"
    assert date_fr(None) == ""
    assert number_fr(1234567) == "1\u202f234\u202f567"
    assert origin_of("https://petitions.example/a?b") == "https://petitions.example"
    assert origin_of("http://localhost:8080/") == "http://localhost:8080"
    assert origin_of("https://x.example:443/") == "https://x.example"
