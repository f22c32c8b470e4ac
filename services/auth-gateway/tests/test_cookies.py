"""The cookies sign-in sets, as production sets them: its public URL is https.

Served here over plain http (TLS ends at the proxy in production); the test's browser is told
to treat the gateway as a secure origin, so it sends back the Secure cookies a real browser
would send to the https site. The local-http case (no Secure flag, or the cookies would be
lost) is tests/test_security_stack.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from aiohttp import ClientResponse

from paraphe_common.auth import COOKIES
from paraphe_common.tokens import SIGNER, STAFF
from paraphe_devstack.rogue_provider import Bends, RogueSetup

if TYPE_CHECKING:
    from conftest import RogueFactory

PROVIDER_SESSION_COOKIE = "paraphe_provider_session"
SIGN_IN_COOKIE = "__Host-paraphe_sign_in"


def set_cookies(answer: ClientResponse) -> dict[str, set[str]]:
    """Each cookie an answer sets (or clears), by name: its attributes, lowercased."""
    found = {}
    for header in answer.headers.getall("Set-Cookie", []):
        pair, *attributes = header.split(";")
        found[pair.split("=", 1)[0].strip()] = {a.strip().lower() for a in attributes}
    return found


def assert_secure_httponly_samesite(answer: ClientResponse) -> None:
    for name, attributes in set_cookies(answer).items():
        assert "secure" in attributes, name
        assert "httponly" in attributes, name
        assert "samesite=lax" in attributes, name


async def sign_in_behind_https(rogue: RogueSetup, query: str) -> ClientResponse:
    """/auth/login → provider → /auth/callback, the provider sending the browser back to the
    https redirect URI; the browser reaches it over this test's plain http."""
    browser = rogue.browser
    login = await browser.get(f"{rogue.gateway_url}/auth/login?{query}")
    assert login.status == 302, await login.text()
    # What binds the sign-in to this browser: __Host- (Secure, path /, no domain) on https.
    binding = set_cookies(login)[SIGN_IN_COOKIE]
    assert {"path=/", "secure", "httponly", "samesite=lax"} <= binding
    assert not any(attribute.startswith("domain") for attribute in binding)
    at_provider = await browser.get(login.headers["Location"])
    callback_url = at_provider.headers["Location"]
    assert callback_url.startswith("https://"), callback_url
    return await browser.get("http://" + callback_url.removeprefix("https://"))


@pytest.fixture
async def behind_https(start_rogue: RogueFactory) -> RogueSetup:
    return await start_rogue(scheme="https")


@pytest.mark.parametrize(
    ("query", "session_cookie"),
    [("flow=sign", COOKIES[SIGNER]), ("flow=staff", COOKIES[STAFF])],
)
async def test_over_https_every_cookie_of_a_sign_in_is_secure_httponly_and_samesite(
    behind_https: RogueSetup, query: str, session_cookie: str
) -> None:
    behind_https.provider.bends = Bends(
        userinfo_claims=lambda c: c | {"email": "marie.moderatrice@assemblee.example"}
    )
    answer = await sign_in_behind_https(behind_https, query)
    assert answer.status == 302
    # The session's cookies set, the sign-in's binding cleared: each Secure, or lost.
    assert {session_cookie, PROVIDER_SESSION_COOKIE, SIGN_IN_COOKIE} <= set(set_cookies(answer))
    assert_secure_httponly_samesite(answer)
    assert behind_https.browser.cookie(session_cookie)
    assert behind_https.browser.cookie(SIGN_IN_COOKIE) is None
    logout = await behind_https.browser.get(f"{behind_https.gateway_url}/auth/logout")
    assert {session_cookie, PROVIDER_SESSION_COOKIE} <= set(set_cookies(logout))
    assert_secure_httponly_samesite(logout)
