"""Web security through the whole stack, as a browser meets it behind the proxy: headers on
every page, no inline script or style for the Content-Security-Policy to forbid, cookies
HttpOnly and SameSite, CSRF refused, and the per-client limit of sign-in keyed by the
address the proxy saw."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import aiohttp
import pytest

from paraphe_common.security import PAGE_POLICY
from paraphe_devstack.browser import Browser
from paraphe_devstack.petitions import open_petition
from paraphe_devstack.stack import Stack

pytestmark = pytest.mark.stack

PAGE = {"Accept": "text/html"}


class InlineCode(HTMLParser):
    """What a strict Content-Security-Policy would refuse to run or apply."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {name}=" for name in names if name == "style"]
        self.found += [f"{tag} {name}=" for name in names if name.startswith("on")]
        for name, value in attrs:
            if name in {"href", "src", "action"} and (value or "").startswith("javascript:"):
                self.found.append(f"{tag} {name}=javascript:")


@pytest.fixture
async def browser(stack: Stack) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browser(session, stack.public_url)


async def test_every_page_has_the_security_headers_and_no_inline_code(
    stack: Stack, browser: Browser
) -> None:
    petition = await open_petition(stack, "Une pétition dont la page est inspectée")
    pages = [
        "/",
        "/petitions",
        f"/petitions/{petition}",
        "/mon-espace/",
        "/moderation/",
        "/une-page-qui-n-existe-pas",
    ]
    for path in pages:
        # A client claiming https to our proxy is not believed: the proxy says what it saw.
        headers = {**PAGE, "X-Forwarded-Proto": "https"}
        async with browser.session.get(
            stack.public_url + path, headers=headers, allow_redirects=False
        ) as page:
            assert page.status < 500, path
            assert page.headers["Content-Security-Policy"] == PAGE_POLICY, path
            assert page.headers["X-Content-Type-Options"] == "nosniff"
            assert page.headers["Referrer-Policy"] == "same-origin"
            assert page.headers["X-Frame-Options"] == "DENY"
            assert "Strict-Transport-Security" not in page.headers  # local http
            if page.content_type == "text/html":
                parser = InlineCode()
                parser.feed(await page.text())
                assert parser.found == [], (path, parser.found)
    async with browser.session.get(f"{stack.public_url}/api/petitions") as api:
        assert (
            api.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        )


async def test_session_cookies_are_httponly_and_samesite(browser: Browser) -> None:
    answer, _ = await browser.sign_in("flow=sign&login_hint=generated:cookie-flags")
    assert answer.status == 302
    set_cookies = answer.headers.getall("Set-Cookie")
    assert set_cookies
    for cookie in set_cookies:
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert "httponly" in attributes, cookie
        assert "samesite=lax" in cookie.lower(), cookie
        assert "secure" not in attributes, cookie  # local http: a Secure cookie would be lost


async def test_a_cross_site_signature_with_the_cookie_is_refused(
    stack: Stack, browser: Browser
) -> None:
    petition = await open_petition(stack, "Une pétition qu'un autre site voudrait faire signer")
    answer, _ = await browser.sign_in("flow=sign&login_hint=generated:csrf-victim")
    assert answer.status == 302
    url = f"{stack.public_url}/api/petitions/{petition}/signatures"
    async with browser.session.post(url, headers={"Origin": "https://evil.example"}) as forged:
        assert forged.status == 403
        assert (await forged.json())["type"] == "urn:paraphe:problem:cross-site-form"
    assert (await browser.post(url)).status == 202


async def test_sign_in_is_limited_per_client_address_behind_the_proxy(stack: Stack) -> None:
    # The proxy appends the address it saw (here 127.0.0.1, itself trusted locally, so the
    # client's own header is read one step further left, as if it came from the Internet).
    client = {"X-Forwarded-For": f"203.0.113.{uuid.uuid4().int % 250 + 1}"}
    url = f"{stack.public_url}/auth/login?flow=sign"
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(65):
            async with session.get(url, headers=client, allow_redirects=False) as answer:
                statuses.append(answer.status)
                if answer.status == 429:
                    assert int(answer.headers["Retry-After"]) >= 1
                    assert (await answer.json())["type"] == "urn:paraphe:problem:rate-limited"
        async with session.get(url, allow_redirects=False) as local:
            assert local.status == 302  # another client (the machine itself) is not affected
    assert statuses[:60] == [302] * 60
    assert set(statuses[60:]) == {429}
