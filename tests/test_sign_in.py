"""FranceConnect sign-in through the whole stack: the proxy, auth-gateway, the sandbox,
the catalogue and moderation, with real redirects and cookies."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import expect

from paraphe_devstack.browser import Browser
from paraphe_devstack.playwright import assert_accessible, chromium, csp_violations, screenshot
from paraphe_devstack.servers import RedisServer
from paraphe_devstack.stack import FRANCECONNECT_CLIENT_ID, Stack
from paraphe_franceconnect_sandbox.identities import generated_citizen

pytestmark = pytest.mark.stack

SIGNER_COOKIE = "paraphe_signer"


@pytest.fixture
async def browser(stack: Stack) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browser(session, stack.public_url)


def fc_subject(identity: str) -> str:
    """The pairwise sub FranceConnect (here, its sandbox) gives our client for a person."""
    return hashlib.sha256(f"{FRANCECONNECT_CLIENT_ID}:{identity}".encode()).hexdigest()


async def open_petition(browser: Browser) -> str:
    async with browser.session.get(f"{browser.gateway}/api/petitions") as response:
        return str((await response.json())["items"][0]["id"])


async def test_an_adult_signs_in_then_signs_a_petition(browser: Browser) -> None:
    petition = await open_petition(browser)
    answer, _ = await browser.sign_in(f"flow=sign&petition={petition}&login_hint=jean-martin")
    assert answer.status == 302
    assert answer.headers["Location"] == f"/petitions/{petition}"
    assert browser.cookie(SIGNER_COOKIE)
    signed = await browser.post(f"{browser.gateway}/api/petitions/{petition}/signatures")
    assert signed.status == 202


@pytest.mark.parametrize("minor", ["lea-petit", "majeur-demain"])
async def test_a_minor_is_refused_with_a_clear_page_and_receives_nothing(
    browser: Browser, minor: str
) -> None:
    petition = await open_petition(browser)
    login = await browser.get(
        f"{browser.gateway}/auth/login?flow=sign&petition={petition}&login_hint={minor}"
    )
    at_sandbox = await browser.get(login.headers["Location"])
    async with browser.session.get(
        at_sandbox.headers["Location"], allow_redirects=False, headers={"Accept": "text/html"}
    ) as page:
        assert page.status == 403
        text = await page.text()
    assert "réservé aux personnes majeures" in text
    # In the site's layout, leading back to the petition.
    assert '<header role="banner" class="fr-header">' in text
    assert f'<a class="fr-btn" href="/petitions/{petition}">Revenir à la pétition</a>' in text
    assert browser.cookie(SIGNER_COOKIE) is None


async def test_a_minor_reads_the_refusal_in_the_sites_layout_and_goes_back_to_the_petition(
    stack: Stack,
) -> None:
    async with chromium() as chromium_browser:
        context = await chromium_browser.new_context(base_url=stack.public_url, locale="fr-FR")
        broken_csp = csp_violations(context)
        page = await context.new_page()
        await page.goto("/petitions")
        await page.get_by_role("link", name=re.compile("premiers secours")).click()
        petition = page.url
        await page.get_by_role("button", name=re.compile("FranceConnect")).click()
        await page.locator("#identite-lea-petit").check()
        async with page.expect_response(re.compile("/auth/callback")) as callback:
            await page.get_by_role("button", name="Se connecter").click()
        assert (await callback.value).status == 403
        await expect(page.get_by_text("réservé aux personnes majeures")).to_be_visible()
        await expect(page.locator("header.fr-header")).to_be_visible()
        await assert_accessible(page)
        await screenshot(page, "connexion-mineur-refusee")
        await page.get_by_role("link", name="Revenir à la pétition").click()
        await expect(page).to_have_url(petition)
        await expect(page.get_by_role("heading", level=1)).to_contain_text("premiers secours")
        await context.close()
    assert broken_csp == []


async def test_someone_turning_18_today_may_sign(browser: Browser) -> None:
    answer, _ = await browser.sign_in("flow=sign&login_hint=majeur-aujourdhui")
    assert answer.status == 302
    assert browser.cookie(SIGNER_COOKIE)


async def test_an_author_signs_in_and_the_catalogue_receives_the_identity(
    browser: Browser, stack: Stack
) -> None:
    answer, _ = await browser.sign_in("flow=author&login_hint=camille-durand")
    assert answer.status == 302
    assert browser.cookie("paraphe_author")
    rows = stack.postgres.psql(
        "SELECT given_names || '|' || family_name || '|' || birthdate || '|' || email"
        " FROM catalog.authors WHERE email = 'camille.durand@example.org'",
        database="paraphe",
    )
    assert rows == "Camille|Durand|1985-03-14|camille.durand@example.org"


@pytest.mark.parametrize(
    ("agent", "roles"),
    [
        ("marie-moderatrice", ["moderator"]),
        ("paul-secretariat", ["committee-secretariat"]),
        ("ines-admin", ["admin", "moderator"]),
    ],
)
async def test_a_staff_member_gets_the_role_configured_for_them(
    browser: Browser, agent: str, roles: list[str]
) -> None:
    answer, _ = await browser.sign_in(f"flow=staff&login_hint={agent}")
    assert answer.status == 302
    async with browser.session.get(f"{browser.gateway}/api/moderation/me") as me:
        assert me.status == 200
        assert (await me.json())["roles"] == roles


async def test_an_agent_without_a_configured_role_is_refused(browser: Browser) -> None:
    answer, _ = await browser.sign_in("flow=staff&login_hint=hugo-sans-role")
    assert answer.status == 403
    async with browser.session.get(f"{browser.gateway}/api/moderation/me") as me:
        assert me.status == 401


async def test_a_signer_cannot_use_the_staff_api(browser: Browser) -> None:
    await browser.sign_in("flow=sign&login_hint=jean-martin")
    async with browser.session.get(f"{browser.gateway}/api/moderation/me") as me:
        assert me.status == 401


async def test_logout_ends_the_franceconnect_session_too(browser: Browser, stack: Stack) -> None:
    await browser.sign_in("flow=sign&login_hint=jean-martin")
    logout = await browser.get(f"{browser.gateway}/auth/logout?return_to=/petitions")
    assert logout.status == 302
    end_session = logout.headers["Location"]
    assert end_session.startswith(f"{stack.sandbox_url}/api/v2/session/end?")
    assert "id_token_hint=" in end_session
    assert "post_logout_redirect_uri=" in end_session
    back = await browser.get(end_session)
    assert back.headers["Location"].startswith(f"{stack.public_url}/auth/logged-out?state=")
    home = await browser.get(back.headers["Location"])
    assert home.headers["Location"] == "/petitions"
    assert browser.cookie(SIGNER_COOKIE) is None


async def test_a_sign_in_finished_in_another_browser_signs_nobody_in(
    browser: Browser, stack: Stack
) -> None:
    # Someone begins a sign-in and has another person's browser open its way back (login CSRF).
    login = await browser.get(f"{browser.gateway}/auth/login?flow=sign&login_hint=jean-martin")
    at_sandbox = await browser.get(login.headers["Location"])
    callback_url = at_sandbox.headers["Location"]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        victim = Browser(session, stack.public_url)
        refused = await victim.get(callback_url)
        assert refused.status == 400
        assert (await refused.json())["type"] == "urn:paraphe:problem:invalid-state"
        assert victim.cookie(SIGNER_COOKIE) is None
    # The browser that began it still finishes it.
    finished = await browser.get(callback_url)
    assert finished.status == 302
    assert browser.cookie(SIGNER_COOKIE)


async def redis_contents(server: RedisServer) -> str:
    client = server.async_client()
    found: list[str] = []
    try:
        async for key in client.scan_iter(count=1000):
            found.append(repr(key))
            kind = (await client.type(key)).decode()  # type: ignore[union-attr]
            if kind == "string":
                found.append(repr(await client.get(key)))
            elif kind == "hash":
                found.append(repr(await client.hgetall(key)))
            elif kind in {"list", "set", "zset"}:
                found.append(repr(await client.dump(key)))
            elif kind == "stream":
                found.append(repr(await client.xrange(key)))
    finally:
        await client.aclose()
    return "\n".join(found)


async def test_after_signing_nothing_personal_remains_anywhere(
    browser: Browser, stack: Stack
) -> None:
    petition = await open_petition(browser)
    # A person of this test alone: the demo people also deposit petitions in other tests, and
    # an author's identity is rightly kept by the catalogue.
    hint = f"generated:privacy-{uuid.uuid4().hex}"
    person = generated_citizen(hint)
    answer, _ = await browser.sign_in(f"flow=sign&login_hint={hint}&petition={petition}")
    assert answer.status == 302
    signed = await browser.post(f"{browser.gateway}/api/petitions/{petition}/signatures")
    assert signed.status == 202
    # Every generated person's given name is "Citoyen": the family name is theirs alone.
    needles = [
        person.family_name,
        person.birthdate.isoformat(),
        person.email,
        person.email.split("@")[0],
        fc_subject(hint),
    ]

    token = browser.cookie(SIGNER_COOKIE) or ""
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert set(payload) == {"iss", "aud", "sub", "iat", "exp", "jti", "pv"}

    database = subprocess.run(
        [
            str(stack.binaries.postgres_bin / "pg_dump"),
            "--data-only",
            "-h", "127.0.0.1", "-p", str(stack.ports.postgres), "-U", "postgres",
            "paraphe",
        ],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    logs = "\n".join(
        path.read_text(errors="replace") for path in (stack.state_dir / "logs").glob("*.log")
    )
    jetstream_files = b"".join(
        path.read_bytes() for path in (stack.state_dir / "nats").rglob("*") if path.is_file()
    ).decode(errors="replace")
    metrics = ""
    for service in stack.services:
        async with browser.session.get(f"{browser.gateway}/_/{service}/metrics") as response:
            metrics += await response.text()
    places = {
        "redis": await redis_contents(stack.redis),
        "postgresql": database,
        "logs": logs,
        "jetstream": jetstream_files,
        "metrics": metrics,
        "signer token": json.dumps(payload),
    }
    # Positive controls: each search reads real content (the demo author's published name).
    assert "Camille" in database
    assert '"route": "/api/petitions/{petition_id}/signatures"' in logs
    assert "signature_intake_signatures_total" in metrics
    leaks = {
        (place, needle) for place, text in places.items() for needle in needles if needle in text
    }
    assert leaks == set()
