"""Moderation's pages in Chromium, served by moderation alone (the catalog a stand-in), held to
axe-core's heading-order as the catalogue's are (its tests/test_pages_in_chromium.py): every
kind of page, the queue, an item, a petition, the journal, the public report form and the
errors, in the states that add an alert under the title (a notice, a decision refused, the
petition unavailable, an item taken or decided, a follow-up not open yet).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, BrowserContext, Page

from paraphe_devstack.playwright import accessibility_violations, chromium

Client = TestClient[web.Request, web.Application]
# The shapes of conftest's fixtures (test modules cannot import it).
SubmitPetition = Callable[..., Awaitable[dict[str, Any]]]
IssueStaffToken = Callable[..., str]
PublishEvent = Callable[..., Awaitable[Any]]
SetState = Callable[[str, str], Awaitable[None]]
Eventually = Callable[..., Awaitable[Any]]
FakeCatalog = Any

RULES = ("heading-order",)
# conftest's PUBLIC_URL: the forms posted from the browser come from the site, as behind the
# proxy (the test server's own address is not it).
ORIGIN = "http://petitions.example"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as started:
        yield started


async def person(browser: Browser, moderation: Client, staff: str | None = None) -> BrowserContext:
    """A browser on moderation's pages, as the agent of the ``staff`` token when given."""
    site = str(moderation.make_url("/"))
    context = await browser.new_context(
        base_url=site, locale="fr-FR", extra_http_headers={"Origin": ORIGIN}
    )
    if staff is not None:
        await context.add_cookies([{"name": "paraphe_staff", "value": staff, "url": site}])
    return context


async def violations(page: Page, where: str, found: dict[str, list[str]]) -> None:
    for violation in await accessibility_violations(page, RULES):
        found.setdefault(where, []).append(f"{violation['id']} at {violation['targets']}")


async def violations_on(context: BrowserContext, *paths: str) -> dict[str, list[str]]:
    """Each path's violations of RULES, by rule and where: every page is seen before failing."""
    page = await context.new_page()
    found: dict[str, list[str]] = {}
    for path in paths:
        response = await page.goto(path)
        assert response is not None
        await violations(page, path, found)
    await context.close()
    return found


async def posted(page: Page, path: str, button: str, **choices: str) -> Page:
    """The page a form of ``path`` answers with, once ``choices`` are selected and sent."""
    await page.goto(path)
    for name, value in choices.items():
        await page.select_option(f"select[name={name}]", value)
    async with page.expect_navigation():
        await page.get_by_role("button", name=button).click()
    return page


async def test_headings_follow_each_other_on_the_queue_and_the_journal(
    moderation: Client,
    browser: Browser,
    staff_token: IssueStaffToken,
    submit_petition: SubmitPetition,
) -> None:
    await submit_petition()
    admin = await person(browser, moderation, staff_token("admin", name="Alice"))
    assert not await violations_on(
        admin,
        "/moderation/",
        "/moderation/?kind=review&notice=decided",
        "/moderation/?kind=report&notice=nothing",
        "/moderation/?kind=follow-up&status=resolved",
        "/moderation/journal",
    )


async def test_headings_follow_each_other_on_an_item_in_each_state(
    moderation: Client,
    browser: Browser,
    staff_token: IssueStaffToken,
    submit_petition: SubmitPetition,
    publish_event: PublishEvent,
    eventually: Eventually,
    catalog: FakeCatalog,
) -> None:
    review = await submit_petition()
    taken = await submit_petition(title="Une pétition qu'un autre agent examine")
    refused = await submit_petition(title="Une pétition que le catalogue refuse de rejeter")
    decided = await submit_petition(title="Une pétition déjà publiée")
    # A follow-up item on a petition the catalog does not give: « Pétition indisponible ».
    away = str(uuid.uuid4())
    await publish_event("threshold-reached", away, threshold=100_000, signatures=100_000)
    admin = staff_token("admin")

    async def follow_up_item() -> str | None:
        answer = await moderation.get(
            f"/api/moderation/queue?kind=follow-up&petition_id={away}",
            headers={"Authorization": f"Bearer {admin}"},
        )
        items = (await answer.json())["items"]
        return str(items[0]["id"]) if items else None

    unavailable = await eventually(follow_up_item)
    paul = staff_token("moderator", subject="paul", name="Paul")
    other = await person(browser, moderation, paul)
    await posted(await other.new_page(), f"/moderation/items/{taken['id']}", "Prendre en charge")
    await other.close()

    marie = await person(browser, moderation, staff_token("moderator", subject="marie"))
    page = await marie.new_page()
    found: dict[str, list[str]] = {}
    for path in (f"/moderation/items/{review['id']}", f"/moderation/items/{taken['id']}"):
        await page.goto(path)
        await violations(page, path, found)
    item = f"/moderation/items/{refused['id']}"
    await posted(page, item, "Prendre en charge")
    await violations(page, f"{item}, taken", found)
    catalog.refusal = {"status": 409, "detail": "Transition impossible depuis cet état."}
    await posted(page, item, "Déclarer irrecevable", reason_code="duplicate")
    await violations(page, f"{item}, a decision refused", found)
    item = f"/moderation/items/{decided['id']}"
    await posted(page, item, "Prendre en charge")
    await posted(page, item, "Publier", committee="lois")
    await page.goto(item)
    await violations(page, f"{item}, decided", found)
    await marie.close()
    admin_context = await person(browser, moderation, admin)
    found |= await violations_on(admin_context, f"/moderation/items/{unavailable}")
    assert not found


async def test_headings_follow_each_other_on_a_petition_in_each_state(
    moderation: Client, browser: Browser, staff_token: IssueStaffToken, catalog: FakeCatalog
) -> None:
    waiting = str(uuid.uuid4())  # no threshold yet: no step to record
    catalog.statuses[waiting] = "published"
    followed = str(uuid.uuid4())
    catalog.statuses[followed] = "published"
    catalog.thresholds[followed] = [100_000]
    admin = await person(browser, moderation, staff_token("admin"))
    page = await admin.new_page()
    found: dict[str, list[str]] = {}
    for path in (
        f"/moderation/petitions/{waiting}",
        f"/moderation/petitions/{followed}",
        f"/moderation/petitions/{followed}?notice=followed-up",
        f"/moderation/petitions/{uuid.uuid4()}",  # unknown to the catalog
    ):
        await page.goto(path)
        await violations(page, path, found)
    catalog.refusal = {
        "status": 409,
        "type": "urn:paraphe:problem:follow-up-not-allowed",
        "detail": "Le suivi de cette pétition est terminé (« Classée ») : aucune étape ne s'y "
        "ajoute.",
    }
    path = f"/moderation/petitions/{followed}"
    await posted(page, path, "Enregistrer l'étape", step="examined-in-committee")
    await violations(page, f"{path}, a step refused", found)
    await admin.close()
    assert not found


async def test_headings_follow_each_other_on_the_report_form_and_the_errors(
    moderation: Client,
    browser: Browser,
    staff_token: IssueStaffToken,
    set_petition_state: SetState,
    eventually: Eventually,
) -> None:
    petition_id = str(uuid.uuid4())
    await set_petition_state(petition_id, "published")
    citizen = await person(browser, moderation)
    page = await citizen.new_page()
    found: dict[str, list[str]] = {}
    for path in (
        f"/moderation/signaler?petition={petition_id}",
        "/moderation/",  # to a visitor who is not an agent: the sign-in page
        "/moderation/une-adresse-inconnue",
    ):
        await page.goto(path)
        await violations(page, path, found)

    async def reported() -> bool:
        await posted(
            page, f"/moderation/signaler?petition={petition_id}", "Envoyer le signalement",
            reason_code="insulting",
        )  # fmt: skip
        return "Signalement envoyé" in await page.content()

    await eventually(reported)  # once the petition's state reached moderation's view
    await violations(page, "/moderation/signaler, sent", found)
    await citizen.close()
    agent = await person(browser, moderation, staff_token("moderator"))
    found |= await violations_on(
        agent, f"/moderation/items/{uuid.uuid4()}", "/moderation/items/xyz", "/moderation/journal"
    )
    nobody = await person(browser, moderation, staff_token())  # an agent without a role
    found |= await violations_on(nobody, "/moderation/")
    assert not found
