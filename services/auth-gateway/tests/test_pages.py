"""The pages a person's browser is shown when a sign-in ends badly: in the site's layout (the
DSFR, served by the catalogue on the site's origin), each leading back to the petition the
sign-in began from, else to the home page; checked by axe-core in Chromium."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Final

import pytest
from playwright.async_api import Browser, Route

from paraphe_devstack.playwright import (
    REPOSITORY,
    accessibility_violations,
    chromium,
    csp_violations,
)
from paraphe_devstack.rogue_provider import Bends, RogueSetup

DSFR: Final = REPOSITORY / "web" / "node_modules" / "@gouvfr" / "dsfr" / "dist"
HOME: Final = ("/", "Page d'accueil")
TO_THE_PETITION: Final = ("/petitions/p-1", "Revenir à la pétition")
A_MINOR: Final = Bends(birthdate=f"{time.gmtime().tm_year - 16}-01-01")
NO_BIRTH_DATE: Final = Bends(birthdate="1980-13-45")
TOKEN_ENDPOINT_FAILING: Final = Bends(token_failure="error")
DISCOVERY_BROKEN: Final = Bends(discovery=lambda document: {})


class Page(HTMLParser):
    """What a test reads of a page: its stylesheets, whether it has the DSFR header, and the
    links of its main content with their text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stylesheets: list[str] = []
        self.has_dsfr_header = False
        self.links: list[tuple[str, str]] = []
        self._in_main = False
        self._in_link = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes.get("href") or "")
        elif tag == "header" and "fr-header" in classes:
            self.has_dsfr_header = True
        elif tag == "main":
            self._in_main = True
        elif tag == "a" and self._in_main:
            self._in_link = True
            self.links.append((attributes.get("href") or "", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "main":
            self._in_main = False
        elif tag == "a":
            self._in_link = False

    def handle_data(self, data: str) -> None:
        if self._in_link:
            href, text = self.links[-1]
            self.links[-1] = (href, (text + data).strip())


async def page_at_the_end_of(rogue: RogueSetup, login_query: str) -> tuple[int, str]:
    """The page a browser is shown once a sign-in from /auth/login?<query> ends."""
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?{login_query}")
    url = f"{rogue.gateway_url}/auth/login?{login_query}"
    if login.status == 302:
        at_provider = await rogue.browser.get(login.headers["Location"])
        url = at_provider.headers["Location"]
    async with rogue.browser.session.get(
        url, allow_redirects=False, headers={"Accept": "text/html"}
    ) as page:
        assert page.content_type == "text/html"
        return page.status, await page.text()


def assert_in_the_sites_layout(page: Page) -> None:
    assert page.has_dsfr_header
    assert "/static/dsfr/dsfr.min.css" in page.stylesheets


@pytest.mark.parametrize(
    ("bends", "status", "says"),
    [
        pytest.param(A_MINOR, 403, "réservé aux personnes majeures", id="a minor"),
        pytest.param(NO_BIRTH_DATE, 400, "identité transmise", id="identity incomplete"),
        pytest.param(
            TOKEN_ENDPOINT_FAILING, 503, "momentanément indisponible", id="provider failing"
        ),
        pytest.param(DISCOVERY_BROKEN, 503, "momentanément indisponible", id="at login"),
    ],
)
async def test_a_sign_in_from_a_petition_ends_on_a_page_of_the_site_leading_back_to_it(
    rogue: RogueSetup, bends: Bends, status: int, says: str
) -> None:
    rogue.provider.bends = bends
    answer, html = await page_at_the_end_of(rogue, "flow=sign&petition=p-1")
    assert answer == status
    assert says in html
    page = Page(html)
    assert_in_the_sites_layout(page)
    assert page.links == [TO_THE_PETITION, HOME]


@pytest.mark.parametrize(
    "bends", [A_MINOR, NO_BIRTH_DATE, TOKEN_ENDPOINT_FAILING, DISCOVERY_BROKEN]
)
async def test_a_sign_in_from_elsewhere_ends_on_a_page_leading_home(
    rogue: RogueSetup, bends: Bends
) -> None:
    rogue.provider.bends = bends
    _, html = await page_at_the_end_of(rogue, "flow=sign")
    page = Page(html)
    assert_in_the_sites_layout(page)
    assert page.links == [HOME]


async def test_an_author_is_led_back_to_the_page_the_sign_in_was_to_return_to(
    rogue: RogueSetup,
) -> None:
    rogue.provider.bends = NO_BIRTH_DATE
    _, html = await page_at_the_end_of(rogue, "flow=author")
    assert Page(html).links == [("/mon-espace", "Revenir à la page de départ"), HOME]


async def test_a_spent_sign_in_link_ends_on_a_page_of_the_site_leading_home(
    rogue: RogueSetup,
) -> None:
    _, callback_url = await rogue.browser.sign_in("flow=sign&petition=p-1")
    async with rogue.browser.session.get(
        callback_url, allow_redirects=False, headers={"Accept": "text/html"}
    ) as answer:
        assert answer.status == 400
        html = await answer.text()
    assert "merci de recommencer" in html
    page = Page(html)
    assert_in_the_sites_layout(page)
    # The spent state took the way back with it: nothing says where this sign-in began.
    assert page.links == [HOME]


@pytest.fixture
async def chromium_browser() -> AsyncIterator[Browser]:
    async with chromium() as started:
        yield started


async def test_the_pages_have_no_serious_accessibility_violation_nor_break_the_csp(
    rogue: RogueSetup, chromium_browser: Browser
) -> None:
    context = await chromium_browser.new_context(base_url=rogue.gateway_url, locale="fr-FR")
    served: list[str] = []

    async def serve_the_dsfr(route: Route) -> None:
        """The DSFR, as the catalogue serves it on the site's origin."""
        path = route.request.url.split("/static/dsfr/", 1)[1].split("?")[0]
        served.append(path)
        await route.fulfill(path=DSFR / path)

    await context.route("**/static/dsfr/**", serve_the_dsfr)
    broken_csp = csp_violations(context)
    page = await context.new_page()
    found: dict[str, object] = {}
    for name, bends in [
        ("minor", A_MINOR),
        ("identity incomplete", NO_BIRTH_DATE),
        ("provider unavailable", TOKEN_ENDPOINT_FAILING),
    ]:
        rogue.provider.bends = bends
        response = await page.goto("/auth/login?flow=sign&petition=p-1")
        assert response is not None
        assert response.status >= 400
        assert "content-security-policy" in response.headers
        assert await page.get_by_role("link", name="Revenir à la pétition").count() == 1
        found[name] = await accessibility_violations(page)
    await page.goto("/auth/callback?code=x&state=forged")
    found["expired state"] = await accessibility_violations(page)
    await context.close()
    assert "dsfr.min.css" in served
    assert found == {name: [] for name in found}
    assert broken_csp == []
