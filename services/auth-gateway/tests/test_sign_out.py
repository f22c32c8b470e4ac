"""Sign-out: the cookies cleared, the provider's session ended, and a way back to the site,
even while Redis (which keeps the way back) does not answer."""

from __future__ import annotations

from paraphe_common.auth import COOKIES
from paraphe_common.tokens import SIGNER
from paraphe_devstack.rogue_provider import RogueSetup
from paraphe_devstack.servers import RedisServer

SIGNER_COOKIE = COOKIES[SIGNER]


async def test_sign_out_ends_both_sessions_and_comes_back_to_the_page_asked(
    rogue: RogueSetup,
) -> None:
    await rogue.browser.sign_in("flow=sign")
    logout = await rogue.browser.get(f"{rogue.gateway_url}/auth/logout?return_to=/petitions")
    assert logout.headers["Location"].startswith(f"{rogue.provider.issuer}/session/end?")
    assert rogue.browser.cookie(SIGNER_COOKIE) is None
    back = await rogue.browser.get(logout.headers["Location"])
    home = await rogue.browser.get(back.headers["Location"])
    assert home.status == 302
    assert home.headers["Location"] == "/petitions"


async def test_sign_out_still_signs_out_while_redis_is_down(
    rogue: RogueSetup, redis_server: RedisServer
) -> None:
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 302
    redis_server.stop()
    logout = await rogue.browser.get(f"{rogue.gateway_url}/auth/logout?return_to=/petitions")
    assert logout.status == 302
    # The provider's session ends all the same; only the way back to /petitions is lost.
    assert logout.headers["Location"].startswith(f"{rogue.provider.issuer}/session/end?")
    assert rogue.browser.cookie(SIGNER_COOKIE) is None
    assert rogue.browser.cookie("paraphe_provider_session") is None
    back = await rogue.browser.get(logout.headers["Location"])
    home = await rogue.browser.get(back.headers["Location"])
    assert home.status == 302
    assert home.headers["Location"] == "/"


async def test_the_return_from_the_provider_never_answers_500_while_redis_is_down(
    rogue: RogueSetup, redis_server: RedisServer
) -> None:
    redis_server.stop()
    home = await rogue.browser.get(f"{rogue.gateway_url}/auth/logged-out?state=a-state")
    assert home.status == 302
    assert home.headers["Location"] == "/"
