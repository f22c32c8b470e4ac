"""Moderation through the whole stack: an author deposits, a moderator publishes it with a
committee and a citizen signs it; reported, it is taken down and signing stops; another is
rejected and its author reads the reason; after a threshold the committee secretariat records
the follow-up the public reads; the staff pages pass axe-core in a real browser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from paraphe_devstack.browser import Browser
from paraphe_devstack.playwright import assert_accessible, chromium, screenshot
from paraphe_devstack.stack import Stack

pytestmark = pytest.mark.stack


@pytest.fixture
async def browsers(stack: Stack) -> AsyncIterator[Callable[[], Browser]]:
    """A fresh browser (cookie jar) per person."""
    sessions: list[aiohttp.ClientSession] = []

    def new_browser() -> Browser:
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        return Browser(session, stack.public_url)

    yield new_browser
    for session in sessions:
        await session.close()


async def call(browser: Browser, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    # As the site's own pages would send it: changes with a session cookie need the Origin.
    headers = {"Origin": browser.gateway} if method != "GET" else {}
    async with browser.session.request(
        method, browser.gateway + path, json=body, headers=headers
    ) as answer:
        return answer.status, await answer.json(content_type=None)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.1)
        return result


async def deposit(author: Browser, title: str, body: str) -> str:
    status, draft = await call(
        author, "POST", "/api/author/petitions", {"title": title, "body": body}
    )
    assert status == 201, draft
    status, submitted = await call(author, "POST", f"/api/author/petitions/{draft['id']}/submit")
    assert status == 200, submitted
    return str(draft["id"])


async def claimed_review(moderator: Browser, petition_id: str) -> dict[str, Any]:
    async def item() -> dict[str, Any] | None:
        status, queue = await call(
            moderator, "GET", f"/api/moderation/queue?kind=review&petition_id={petition_id}"
        )
        assert status == 200, queue
        return queue["items"][0] if queue["items"] else None

    found: dict[str, Any] = await eventually(item)
    status, claimed = await call(moderator, "POST", f"/api/moderation/items/{found['id']}/claim")
    assert status == 200, claimed
    return found


async def staff_page(agent: Browser, path: str) -> str:
    """A staff page's HTML, as the agent's browser receives it through the proxy."""
    async with agent.session.get(f"{agent.gateway}{path}", headers={"Accept": "text/html"}) as page:
        assert page.status == 200, path
        return await page.text()


async def test_deposited_reviewed_published_signed_and_rejected_with_a_reason(
    browsers: Callable[[], Browser],
) -> None:
    author, moderator, citizen = browsers(), browsers(), browsers()
    assert (await author.sign_in("flow=author&login_hint=camille-durand"))[0].status == 302
    assert (await moderator.sign_in("flow=staff&login_hint=marie-moderatrice"))[0].status == 302

    published_id = await deposit(
        author,
        "Rouvrir les petites lignes de train",
        "Les lignes ferroviaires de desserte fine du territoire disparaissent. Le train est le "
        "transport le moins émetteur de carbone : relançons-le pour le climat.",
    )
    item = await claimed_review(moderator, published_id)
    assert item["suggested_committee"] == "developpement-durable"
    status, outcome = await call(
        moderator,
        "POST",
        f"/api/moderation/items/{item['id']}/decision",
        {"decision": "publish", "committee": item["suggested_committee"]},
    )
    assert status == 200, outcome
    assert outcome["petition"]["status"] == "published"
    assert outcome["petition"]["committee"]["id"] == "developpement-durable"

    # Public now, and intake takes signatures once the state reached its view.
    status, public = await call(citizen, "GET", f"/api/petitions/{published_id}")
    assert status == 200
    assert public["status"] == "published"
    answer, _ = await citizen.sign_in(f"flow=sign&petition={published_id}&login_hint=jean-martin")
    assert answer.status == 302

    async def signed() -> bool:
        status, _ = await call(citizen, "POST", f"/api/petitions/{published_id}/signatures")
        return status == 202

    await eventually(signed)

    # Someone reports it; a moderator takes it down; signing stops and the public sees why.
    reporter = browsers()
    status, _ = await call(
        reporter,
        "POST",
        "/api/moderation/reports",
        {"petition_id": published_id, "reason_code": "insulting", "message": "Propos injurieux."},
    )
    assert status == 202

    async def report_item() -> dict[str, Any] | None:
        status, queue = await call(
            moderator, "GET", f"/api/moderation/queue?kind=report&petition_id={published_id}"
        )
        return queue["items"][0] if status == 200 and queue["items"] else None

    reported = await report_item()
    assert reported is not None
    status, _ = await call(moderator, "POST", f"/api/moderation/items/{reported['id']}/claim")
    assert status == 200
    status, outcome = await call(
        moderator,
        "POST",
        f"/api/moderation/items/{reported['id']}/decision",
        {"decision": "take-down", "reason_code": "insulting", "reason": "Propos injurieux."},
    )
    assert status == 200, outcome
    status, public = await call(citizen, "GET", f"/api/petitions/{published_id}")
    assert (status, public["status"]) == (200, "hidden")
    assert public["decision"]["reason"] == "Propos injurieux."

    async def refused() -> bool:
        status, _ = await call(citizen, "POST", f"/api/petitions/{published_id}/signatures")
        return status == 409

    await eventually(refused)

    rejected_id = await deposit(
        author,
        "Achetez les chaussures de notre marque",
        "Nos chaussures sont les meilleures du marché, profitez de notre promotion exceptionnelle.",
    )
    item = await claimed_review(moderator, rejected_id)
    status, outcome = await call(
        moderator,
        "POST",
        f"/api/moderation/items/{item['id']}/decision",
        {"decision": "reject", "reason_code": "advertising"},
    )
    assert status == 200, outcome
    status, mine = await call(author, "GET", f"/api/author/petitions/{rejected_id}")
    assert status == 200
    assert mine["status"] == "rejected"
    assert mine["decision"]["reason_code"] == "advertising"
    assert mine["decision"]["reason"] == "La pétition a un caractère publicitaire ou commercial."
    # Intake refuses to sign a petition that was never published.
    status, _ = await call(citizen, "POST", f"/api/petitions/{rejected_id}/signatures")
    assert status in (404, 409)
    # The staff pages answer through the proxy; the internal API does not.
    assert "File de modération" in await staff_page(moderator, "/moderation/")
    async with moderator.session.get(
        f"{moderator.gateway}/internal/petitions/{published_id}"
    ) as internal:
        assert internal.status == 404


async def test_the_staff_pages_are_accessible_in_a_real_browser(
    stack: Stack, browsers: Callable[[], Browser]
) -> None:
    """Queue, review, petition, journal and report pages: no serious or critical axe finding."""
    author = browsers()
    assert (await author.sign_in("flow=author&login_hint=majeur-aujourdhui"))[0].status == 302
    title = "Des pistes cyclables sûres autour des collèges"
    petition_id = await deposit(
        author,
        title,
        "Les élèves qui vont au collège à vélo partagent la route avec les camions.\n\n"
        "Nous demandons des pistes cyclables séparées autour de chaque collège.",
    )
    async with chromium() as chrome:
        context = await chrome.new_context(base_url=stack.public_url, locale="fr-FR")
        context.set_default_timeout(15_000)
        try:
            page = await context.new_page()
            await page.goto("/moderation/")
            await assert_accessible(page)
            await page.get_by_role("link", name="Se connecter avec son compte d'agent").click()
            await expect(page.get_by_role("heading", name="Choisir une identité")).to_be_visible()
            await page.locator("#identite-ines-admin").check()
            await page.get_by_role("button", name="Se connecter").click()
            claim = page.get_by_role("button", name=f"Prendre en charge : {title}")
            for _ in range(30):  # the review item arrives with the submitted event
                if await claim.count():
                    break
                await page.wait_for_timeout(500)
                await page.reload()
            await assert_accessible(page)
            await screenshot(page, "moderation-file")
            await claim.click()
            await expect(page.get_by_role("heading", level=1)).to_have_text(title)
            await expect(page.get_by_text("Nous demandons des pistes cyclables")).to_be_visible()
            await assert_accessible(page)
            await page.get_by_role("link", name="Fiche de la pétition").click()
            # Submitted, not past a threshold: no follow-up step is offered yet.
            await expect(page.get_by_text("Pas d'étape de suivi à enregistrer")).to_be_visible()
            await assert_accessible(page)
            await screenshot(page, "moderation-fiche-petition")
            await page.goto("/moderation/journal")
            await assert_accessible(page)
            await page.goto(f"/moderation/signaler?petition={petition_id}")
            await assert_accessible(page)
            await screenshot(page, "signaler")
        finally:
            await context.close()


async def test_after_a_threshold_the_secretariat_records_the_follow_up_the_public_reads(
    stack: Stack, browsers: Callable[[], Browser]
) -> None:
    author, moderator, secretariat = browsers(), browsers(), browsers()
    assert (await author.sign_in("flow=author&login_hint=amina-benali"))[0].status == 302
    assert (await moderator.sign_in("flow=staff&login_hint=marie-moderatrice"))[0].status == 302
    assert (await secretariat.sign_in("flow=staff&login_hint=paul-secretariat"))[0].status == 302
    petition_id = await deposit(
        author,
        "Revaloriser les retraites agricoles",
        "Les pensions de retraite des anciens exploitants restent sous le seuil de pauvreté.",
    )
    text = "sous le seuil de pauvreté"
    # Before publication the text is the moderators' alone: the catalogue refuses it to the
    # secretariat, whose page says why.
    page = await staff_page(secretariat, f"/moderation/petitions/{petition_id}")
    assert text not in page
    assert "une fois publiée" in page
    item = await claimed_review(moderator, petition_id)
    status, _ = await call(
        moderator,
        "POST",
        f"/api/moderation/items/{item['id']}/decision",
        {"decision": "publish", "committee": "affaires-sociales"},
    )
    assert status == 200
    assert text in await staff_page(secretariat, f"/moderation/petitions/{petition_id}")
    # Before any threshold, the committee's follow-up has not begun.
    status, refused = await call(
        secretariat,
        "POST",
        f"/api/moderation/petitions/{petition_id}/decisions",
        {"decision": "follow-up", "step": "debated-in-public-session"},
    )
    assert status == 409, refused
    assert refused["type"] == "urn:paraphe:problem:follow-up-not-allowed"
    # The counter announces the committee threshold, as it does at 100,000 signatures.
    connection = await stack.nats.admin_connection()
    try:
        await connection.jetstream().publish(
            "petitions.events.threshold-reached",
            json.dumps(
                {"petition_id": petition_id, "threshold": 100_000, "signatures": 100_000,
                 "reached_at": datetime.now(UTC).isoformat()}
            ).encode(),
            headers={"Nats-Msg-Id": f"threshold-reached:{petition_id}:100000"},
        )  # fmt: skip
    finally:
        await connection.close()

    async def follow_up_item() -> dict[str, Any] | None:
        status, queue = await call(
            secretariat, "GET", f"/api/moderation/queue?kind=follow-up&petition_id={petition_id}"
        )
        return queue["items"][0] if status == 200 and queue["items"] else None

    found = await eventually(follow_up_item)
    assert found["title"] == "Revaloriser les retraites agricoles"

    async def threshold_flagged() -> bool:
        # The catalogue follows the same event on its own consumer.
        status, petition = await call(author, "GET", f"/api/petitions/{petition_id}")
        return status == 200 and bool(petition["thresholds"])

    await eventually(threshold_flagged)
    for step, note in (
        ("rapporteur-appointed", "Mme Dupont est nommée rapporteure."),
        ("examined-in-committee", None),
    ):
        status, outcome = await call(
            secretariat,
            "POST",
            f"/api/moderation/petitions/{petition_id}/decisions",
            {"decision": "follow-up", "step": step, "note": note},
        )
        assert status == 200, outcome
    status, public = await call(author, "GET", f"/api/petitions/{petition_id}")
    assert status == 200
    assert [s["step"] for s in public["follow_up"]] == [
        "rapporteur-appointed",
        "examined-in-committee",
    ]
    assert public["follow_up"][0]["note"] == "Mme Dupont est nommée rapporteure."
    # A moderator may not record a follow-up step.
    status, _ = await call(
        moderator,
        "POST",
        f"/api/moderation/petitions/{petition_id}/decisions",
        {"decision": "follow-up", "step": "classified"},
    )
    assert status == 403
