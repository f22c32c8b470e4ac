"""A provider that fails is the provider unavailable, not the citizen refused: 503
provider-unavailable with Retry-After, counted provider_error (which the sign-in alert watches),
never a 500. Its documents are checked at the door: a discovery document or JWKS of another
shape than OpenID Connect's is a provider that does not work, said in a warning naming what is
wrong."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, get_args

import pytest
from aiohttp import ClientResponse

from paraphe_common.auth import COOKIES
from paraphe_devstack.browser import problem_of
from paraphe_devstack.rogue_provider import Bends, Claims, Failure, NotJson, RogueSetup

if TYPE_CHECKING:
    from conftest import RogueFactory

Bend = Callable[[Claims], object]


def an_agent(claims: Claims) -> Claims:
    """A moderator's identity: for the staff flow to go through (a signer's ignores it)."""
    return claims | {"email": "marie.moderatrice@assemblee.example"}


def without(document: Claims, name: str) -> Claims:
    return {key: value for key, value in document.items() if key != name}


def first_key(jwks: Claims, change: Callable[[Claims], Claims]) -> Claims:
    return {"keys": [change(jwks["keys"][0]), *jwks["keys"][1:]]}


async def sign_in_as_far_as_it_goes(rogue: RogueSetup, flow: str = "sign") -> ClientResponse:
    """Login's answer when it does not send the browser to the provider, else the callback's."""
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow={flow}")
    if login.status != 302:
        return login
    at_provider = await rogue.browser.get(login.headers["Location"])
    return await rogue.browser.get(at_provider.headers["Location"])


async def assert_provider_unavailable(rogue: RogueSetup, answer: ClientResponse, flow: str) -> None:
    assert answer.status == 503
    assert await problem_of(answer) == "provider-unavailable"
    assert answer.headers["Retry-After"] == "30"
    assert all(rogue.browser.cookie(cookie) is None for cookie in COOKIES.values())
    assert await rogue.sign_ins_counted(flow, "provider_error") == 1
    assert await rogue.sign_ins_counted(flow, "refused") == 0


def warnings_of_oidc(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name == "paraphe_auth_gateway.oidc" and record.levelno == logging.WARNING
    )


MALFORMED_DISCOVERY = [
    pytest.param(lambda d: NotJson(), "JSON", id="not JSON"),
    pytest.param(lambda d: [d], "document", id="JSON, not an object"),
    pytest.param(lambda d: without(d, "jwks_uri"), "jwks_uri", id="no jwks_uri"),
    pytest.param(lambda d: d | {"jwks_uri": 42}, "jwks_uri", id="jwks_uri a number"),
    pytest.param(lambda d: d | {"jwks_uri": [d["jwks_uri"]]}, "jwks_uri", id="jwks_uri a list"),
    pytest.param(lambda d: d | {"jwks_uri": "jwks"}, "jwks_uri", id="jwks_uri not a URL"),
    pytest.param(
        lambda d: without(d, "authorization_endpoint"),
        "authorization_endpoint",
        id="no authorization endpoint",
    ),
    pytest.param(lambda d: without(d, "token_endpoint"), "token_endpoint", id="no token endpoint"),
    pytest.param(
        lambda d: d | {"userinfo_endpoint": None}, "userinfo_endpoint", id="userinfo endpoint null"
    ),
    pytest.param(lambda d: d | {"issuer": {}}, "issuer", id="issuer an object"),
]

MALFORMED_JWKS = [
    pytest.param(lambda j: NotJson(), "JSON", id="not JSON"),
    pytest.param(lambda j: j["keys"], "document", id="JSON, not an object"),
    pytest.param(lambda j: {}, "keys", id="no keys"),
    pytest.param(lambda j: {"keys": j["keys"][0]}, "keys", id="keys an object"),
    pytest.param(lambda j: {"keys": "rogue-1"}, "keys", id="keys a string"),
    pytest.param(lambda j: {"keys": ["rogue-1"]}, "keys.0", id="an entry a string"),
    pytest.param(lambda j: {"keys": [list(j["keys"][0].items())]}, "keys.0", id="an entry a list"),
    pytest.param(lambda j: first_key(j, lambda k: without(k, "kty")), "kty", id="no kty"),
    pytest.param(lambda j: first_key(j, lambda k: without(k, "kid")), "kid", id="no kid"),
    pytest.param(lambda j: first_key(j, lambda k: k | {"kid": 1}), "kid", id="kid a number"),
    pytest.param(lambda j: first_key(j, lambda k: without(k, "x")), "rogue-1", id="no key in it"),
]


@pytest.mark.parametrize("flow", ["sign", "staff"])
@pytest.mark.parametrize(("bend", "named"), MALFORMED_DISCOVERY)
async def test_a_discovery_document_of_another_shape_is_the_provider_unavailable(
    rogue: RogueSetup, caplog: pytest.LogCaptureFixture, flow: str, bend: Bend, named: str
) -> None:
    rogue.provider.bends = Bends(discovery=bend, userinfo_claims=an_agent)
    answer = await sign_in_as_far_as_it_goes(rogue, flow)
    await assert_provider_unavailable(rogue, answer, flow)
    assert named in warnings_of_oidc(caplog)
    # Nothing of it was kept: once the provider answers as it should, sign-ins go through.
    rogue.provider.bends = Bends(userinfo_claims=an_agent)
    answer, _ = await rogue.browser.sign_in(f"flow={flow}")
    assert answer.status == 302


@pytest.mark.parametrize(("bend", "named"), MALFORMED_JWKS)
async def test_a_jwks_of_another_shape_is_the_provider_unavailable(
    rogue: RogueSetup, caplog: pytest.LogCaptureFixture, bend: Bend, named: str
) -> None:
    rogue.provider.bends = Bends(jwks=bend)
    answer = await sign_in_as_far_as_it_goes(rogue)
    await assert_provider_unavailable(rogue, answer, "sign")
    assert named in warnings_of_oidc(caplog)
    rogue.provider.bends = Bends()
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 302


async def test_keys_of_other_kinds_beside_the_providers_own_are_passed_over(
    rogue: RogueSetup,
) -> None:
    # An encryption key, an Ed25519 key (not an algorithm we verify with), an RSA-PSS one.
    others = [
        {"kty": "RSA", "kid": "enc-1", "use": "enc", "n": "AQAB", "e": "AQAB"},
        {
            "kty": "OKP",
            "kid": "ed-1",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        },
        {"kty": "RSA", "kid": "ps-1", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
    ]
    rogue.provider.bends = Bends(jwks=lambda j: {"keys": [*others, *j["keys"]]})
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 302


# The gateway's wait for a provider's answer, shorter than a "slow" endpoint's.
PROVIDER_TIMEOUT = 0.5


@pytest.mark.parametrize("failure", get_args(Failure))
@pytest.mark.parametrize("endpoint", ["token", "userinfo"])
async def test_a_failing_token_or_userinfo_endpoint_is_the_provider_unavailable(
    start_rogue: RogueFactory, endpoint: str, failure: Failure
) -> None:
    rogue = await start_rogue(provider_timeout=PROVIDER_TIMEOUT)
    slowness = PROVIDER_TIMEOUT + 0.5
    rogue.provider.bends = (
        Bends(token_failure=failure, slowness=slowness)
        if endpoint == "token"
        else Bends(userinfo_failure=failure, slowness=slowness)
    )
    answer, _ = await rogue.browser.sign_in("flow=sign")
    await assert_provider_unavailable(rogue, answer, "sign")


async def test_a_failing_provider_is_said_on_a_french_page(rogue: RogueSetup) -> None:
    rogue.provider.bends = Bends(token_failure="error")
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    at_provider = await rogue.browser.get(login.headers["Location"])
    async with rogue.browser.session.get(
        at_provider.headers["Location"], allow_redirects=False, headers={"Accept": "text/html"}
    ) as page:
        assert page.status == 503
        assert page.headers["Retry-After"] == "30"
        assert "momentanément indisponible" in await page.text()


async def test_the_provider_refusing_our_client_is_not_the_citizens_doing(
    start_rogue: RogueFactory,
) -> None:
    # A client secret rotated on one side only: every sign-in fails until we mend it, and the
    # alert on provider errors must see it.
    rogue = await start_rogue(client_secret="a-secret-the-provider-does-not-know")
    answer, _ = await rogue.browser.sign_in("flow=sign")
    await assert_provider_unavailable(rogue, answer, "sign")
