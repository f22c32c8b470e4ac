"""The providers' signing keys: a key withdrawn from a JWKS stops being trusted in time, and
nothing a token names makes the gateway fetch the JWKS again and again."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from jose import jwt

from paraphe_common.auth import COOKIES
from paraphe_common.tokens import SIGNER
from paraphe_devstack.browser import problem_of
from paraphe_devstack.keys import SigningKey, new_signing_key
from paraphe_devstack.rogue_provider import Bends, Claims, RogueSetup

if TYPE_CHECKING:
    from conftest import BrowserFactory, RogueFactory

KEYS_MAX_AGE = 1  # seconds: the tests wait it out


async def keys_too_old() -> None:
    await asyncio.sleep(KEYS_MAX_AGE + 0.2)


async def test_a_key_the_provider_withdrew_stops_working_within_the_keys_max_age(
    start_rogue: RogueFactory,
) -> None:
    rogue = await start_rogue(provider_keys_max_age=KEYS_MAX_AGE)
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 302  # its keys are known now
    # The provider withdraws its key after a leak; whoever holds it signs on with it.
    rogue.provider.published = [new_signing_key("rogue-2")]
    await keys_too_old()
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 401
    assert await problem_of(answer) == "sign-in-refused"
    assert COOKIES[SIGNER] not in answer.cookies


async def test_sign_in_is_refused_with_a_503_while_old_keys_cannot_be_fetched_again(
    start_rogue: RogueFactory,
) -> None:
    rogue = await start_rogue(provider_keys_max_age=KEYS_MAX_AGE)
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 302
    rogue.provider.bends = Bends(jwks_unavailable=True)
    await keys_too_old()
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    at_provider = await rogue.browser.get(login.headers["Location"])
    answer = await rogue.browser.get(at_provider.headers["Location"])
    assert answer.status == 503
    assert await problem_of(answer) == "provider-unavailable"
    assert answer.headers["Retry-After"] == "30"
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    at_provider = await rogue.browser.get(login.headers["Location"])
    async with rogue.browser.session.get(
        at_provider.headers["Location"], allow_redirects=False, headers={"Accept": "text/html"}
    ) as page:
        assert page.status == 503
        assert "momentanément indisponible" in await page.text()
        assert COOKIES[SIGNER] not in page.cookies
    # Back, the keys are fetched again and sign-ins go through.
    rogue.provider.bends = Bends()
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 302


async def test_sign_ins_at_once_after_the_keys_max_age_fetch_the_keys_once(
    start_rogue: RogueFactory, browser_factory: BrowserFactory
) -> None:
    rogue = await start_rogue(provider_keys_max_age=KEYS_MAX_AGE)
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 302
    fetched = rogue.provider.jwks_fetches
    rogue.provider.bends = Bends(jwks_delay=0.5)  # long enough for all to want the keys
    await keys_too_old()
    browsers = [browser_factory(rogue.gateway_url) for _ in range(5)]
    answers = await asyncio.gather(*(browser.sign_in("flow=sign") for browser in browsers))
    assert [answer.status for answer, _ in answers] == [302] * 5
    assert rogue.provider.jwks_fetches == fetched + 1


async def test_sign_ins_at_once_while_the_keys_cannot_be_fetched_ask_the_provider_once(
    start_rogue: RogueFactory, browser_factory: BrowserFactory
) -> None:
    rogue = await start_rogue(provider_keys_max_age=KEYS_MAX_AGE)
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 302
    fetched = rogue.provider.jwks_fetches
    rogue.provider.bends = Bends(jwks_unavailable=True, jwks_delay=0.5)
    await keys_too_old()
    browsers = [browser_factory(rogue.gateway_url) for _ in range(5)]
    answers = await asyncio.gather(*(browser.sign_in("flow=sign") for browser in browsers))
    assert [answer.status for answer, _ in answers] == [503] * 5
    assert rogue.provider.jwks_fetches == fetched + 1


def signed_under_a_made_up_kid(claims: Claims, key: SigningKey) -> str:
    made_up = new_signing_key()
    return str(
        jwt.encode(claims, made_up.private_pem, algorithm="ES256", headers={"kid": made_up.kid})
    )


async def test_tokens_naming_made_up_keys_do_not_make_the_gateway_hammer_the_provider(
    rogue: RogueSetup,
) -> None:
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 302
    fetched = rogue.provider.jwks_fetches
    rogue.provider.bends = Bends(id_token=signed_under_a_made_up_kid)
    for _ in range(5):
        answer, _ = await rogue.browser.sign_in("flow=sign")
        assert answer.status == 401
    # At most once per 30 seconds, for a kid that might be a new key of the provider's.
    assert rogue.provider.jwks_fetches <= fetched + 1
