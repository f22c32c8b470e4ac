"""The catalogue's pages in Chromium, served by the catalogue alone, checked by axe-core.

The whole-stack journeys (tests/test_site_browser.py) block on serious and critical violations;
here every kind of page the catalogue serves, in each state a petition can be in, is held to
rules of lesser impact too: headings that follow each other (heading-order, "moderate").
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncpg
import pytest
from playwright.async_api import Browser, BrowserContext

from paraphe_devstack.playwright import accessibility_violations, chromium

if TYPE_CHECKING:
    from conftest import AddPetition, Client, Tokens

RULES = ("heading-order",)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as started:
        yield started


async def violations_on(context: BrowserContext, *paths: str) -> dict[str, list[str]]:
    """Each path's violations of RULES, by rule and where: every page is seen before failing."""
    page = await context.new_page()
    found: dict[str, list[str]] = {}
    for path in paths:
        response = await page.goto(path)
        assert response is not None
        for violation in await accessibility_violations(page, RULES):
            found.setdefault(path, []).append(f"{violation['id']} at {violation['targets']}")
    await context.close()
    return found


async def person(browser: Browser, catalog: Client, **cookies: str) -> BrowserContext:
    site = str(catalog.make_url("/"))
    context = await browser.new_context(base_url=site, locale="fr-FR")
    await context.add_cookies(
        [{"name": name, "value": value, "url": site} for name, value in cookies.items()]
    )
    return context


async def test_headings_follow_each_other_on_every_public_page(
    catalog: Client, browser: Browser, add_petition: AddPetition
) -> None:
    opened = await add_petition(title="Une pétition ouverte pour les titres")
    closed = await add_petition("closed", title="Une pétition close pour les titres")
    hidden = await add_petition("hidden", title="Une pétition retirée pour les titres")
    context = await person(browser, catalog)
    assert not await violations_on(
        context,
        "/",
        "/petitions",
        "/petitions?q=secours",
        f"/petitions/{opened}",
        f"/petitions/{closed}",
        f"/petitions/{hidden}",
        "/accessibilite",
        "/donnees-personnelles",
        "/une-adresse-inconnue",
        "/petitions?tri=inconnu",
        "/mon-espace/",  # to an author who is not signed in
    )


async def test_headings_follow_each_other_on_every_page_of_the_authors_space(
    catalog: Client,
    browser: Browser,
    add_petition: AddPetition,
    tokens: Tokens,
    authors: tuple[str, str],
    db: asyncpg.Pool,
) -> None:
    draft = await add_petition("draft", author_id=authors[0])
    submitted = await add_petition("submitted", author_id=authors[0])
    published = await add_petition(author_id=authors[0])
    # Past a threshold, its follow-up begun: the page's « Suivi » section.
    followed = await add_petition(author_id=authors[0], reached=(100_000,))
    await db.execute(
        "INSERT INTO catalog.follow_ups (petition_id, step, decision_id)"
        " VALUES ($1, 'rapporteur-appointed', $2)",
        followed,
        uuid.uuid4(),
    )
    closed = await add_petition("closed", author_id=authors[0])
    hidden = await add_petition("hidden", author_id=authors[0])
    token = tokens.author(authors[0])["Authorization"].removeprefix("Bearer ")
    context = await person(browser, catalog, paraphe_author=token)
    assert not await violations_on(
        context,
        "/mon-espace/",
        "/mon-espace/petitions/nouvelle",
        f"/mon-espace/petitions/{draft}?enregistree=1",
        f"/mon-espace/petitions/{submitted}?soumise=1",
        f"/mon-espace/petitions/{published}",
        f"/mon-espace/petitions/{followed}",
        f"/mon-espace/petitions/{closed}",
        f"/mon-espace/petitions/{hidden}",
    )
    expired = await person(browser, catalog, paraphe_author="expire")
    assert not await violations_on(expired, "/mon-espace/")
