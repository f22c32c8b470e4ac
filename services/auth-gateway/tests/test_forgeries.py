"""Every way a sign-in can be forged or replayed fails closed, with a clear answer."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import pytest
from aiohttp import ClientResponse
from jose import jwt

from paraphe_common.auth import COOKIES
from paraphe_common.tokens import SIGNER, STAFF
from paraphe_devstack.keys import SigningKey, new_signing_key
from paraphe_devstack.rogue_provider import Bends, Claims, RogueSetup
from paraphe_devstack.servers import RedisServer

SIGNER_COOKIE = COOKIES[SIGNER]


def b64(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def problem_of(response: ClientResponse) -> str:
    assert response.content_type == "application/problem+json"
    return str((await response.json())["type"]).removeprefix("urn:paraphe:problem:")


async def test_an_honest_provider_lets_an_adult_sign_in(rogue: RogueSetup) -> None:
    answer, _ = await rogue.browser.sign_in("flow=sign&petition=p-1")
    assert answer.status == 302
    assert answer.headers["Location"] == "/petitions/p-1"
    assert rogue.browser.cookie(SIGNER_COOKIE)


async def test_sign_in_answers_503_and_never_500_while_its_state_store_is_down(
    rogue: RogueSetup, redis_server: RedisServer
) -> None:
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    at_provider = await rogue.browser.get(login.headers["Location"])
    redis_server.stop()
    for url in (f"{rogue.gateway_url}/auth/login?flow=sign", at_provider.headers["Location"]):
        answer = await rogue.browser.get(url)
        assert answer.status == 503
        assert await problem_of(answer) == "sign-in-unavailable"
        assert answer.headers["Retry-After"] == "5"


async def test_a_replayed_state_is_refused(rogue: RogueSetup) -> None:
    first, callback_url = await rogue.browser.sign_in("flow=sign")
    assert first.status == 302
    replay = await rogue.browser.get(callback_url)
    assert replay.status == 400
    assert await problem_of(replay) == "invalid-state"


async def test_an_unknown_state_is_refused(rogue: RogueSetup) -> None:
    answer = await rogue.browser.get(f"{rogue.gateway_url}/auth/callback?code=x&state=forged")
    assert answer.status == 400
    assert await problem_of(answer) == "invalid-state"


async def test_a_replayed_authorization_code_is_refused(rogue: RogueSetup) -> None:
    _, first_callback = await rogue.browser.sign_in("flow=sign")
    code = first_callback.split("code=")[1].split("&")[0]
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    state = login.headers["Location"].split("state=")[1].split("&")[0]
    replay = await rogue.browser.get(f"{rogue.gateway_url}/auth/callback?code={code}&state={state}")
    assert replay.status == 401
    assert await problem_of(replay) == "sign-in-refused"


def bend_id_token(change: Callable[[Claims], Claims]) -> Bends:
    return Bends(id_token_claims=change)


def signed_by_unknown_key(claims: Claims, key: SigningKey) -> str:
    other = new_signing_key("not-published")
    return str(jwt.encode(claims, other.private_pem, algorithm="ES256", headers={"kid": "x"}))


def signed_by_another_key_under_the_known_kid(claims: Claims, key: SigningKey) -> str:
    other = new_signing_key(key.kid)
    return str(jwt.encode(claims, other.private_pem, algorithm="ES256", headers={"kid": key.kid}))


def unsigned(claims: Claims, key: SigningKey) -> str:
    return f"{b64({'alg': 'none', 'kid': key.kid})}.{b64(claims)}."


def hs256_with_the_public_key(claims: Claims, key: SigningKey) -> str:
    public = json.loads(key.public_jwks)["keys"][0]
    return str(jwt.encode(claims, json.dumps(public), algorithm="HS256", headers={"kid": key.kid}))


def hour_ago(claims: Claims) -> Claims:
    return claims | {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}


@pytest.mark.parametrize(
    "bends",
    [
        pytest.param(bend_id_token(lambda c: c | {"nonce": "n" * 43}), id="nonce mismatch"),
        pytest.param(Bends(id_token=signed_by_unknown_key), id="unknown key"),
        pytest.param(
            Bends(id_token=signed_by_another_key_under_the_known_kid), id="another key, same kid"
        ),
        pytest.param(Bends(id_token=unsigned), id="alg none"),
        pytest.param(Bends(id_token=hs256_with_the_public_key), id="HS256 keyed with public key"),
        pytest.param(bend_id_token(hour_ago), id="expired"),
        pytest.param(bend_id_token(lambda c: c | {"aud": "someone-else"}), id="wrong aud"),
        pytest.param(bend_id_token(lambda c: c | {"iss": "https://evil.example"}), id="wrong iss"),
        pytest.param(bend_id_token(lambda c: c | {"acr": "eidas0"}), id="acr too weak"),
        pytest.param(
            bend_id_token(lambda c: c | {"iat": int(time.time()) + 3600}), id="issued in future"
        ),
        pytest.param(
            Bends(
                userinfo_token=lambda t: ".".join(
                    [
                        t.split(".")[0],
                        b64(
                            json.loads(base64.urlsafe_b64decode(t.split(".")[1] + "=="))
                            | {"birthdate": "1970-01-01"}
                        ),
                        t.split(".")[2],
                    ]
                )
            ),
            id="tampered userinfo",
        ),
        pytest.param(
            Bends(userinfo_claims=lambda c: c | {"sub": "e" * 64}), id="userinfo of someone else"
        ),
    ],
)
async def test_a_forged_provider_answer_is_refused_and_leaves_no_session(
    rogue: RogueSetup, bends: Bends
) -> None:
    rogue.provider.bends = bends
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 401
    assert await problem_of(answer) == "sign-in-refused"
    assert rogue.browser.cookie(SIGNER_COOKIE) is None


async def test_a_minor_is_refused_with_a_clear_page_and_gets_nothing(rogue: RogueSetup) -> None:
    sixteen = f"{time.gmtime().tm_year - 16}-01-01"
    rogue.provider.bends = Bends(birthdate=sixteen)
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    at_provider = await rogue.browser.get(login.headers["Location"])
    page = await rogue.browser.session.get(
        at_provider.headers["Location"], allow_redirects=False, headers={"Accept": "text/html"}
    )
    assert page.status == 403
    assert "réservé aux personnes majeures" in await page.text()
    assert rogue.browser.cookie(SIGNER_COOKIE) is None


async def test_a_cancelled_sign_in_ends_on_a_clear_page(rogue: RogueSetup) -> None:
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    state = login.headers["Location"].split("state=")[1].split("&")[0]
    answer = await rogue.browser.session.get(
        f"{rogue.gateway_url}/auth/callback?error=access_denied&state={state}",
        headers={"Accept": "text/html"},
    )
    assert answer.status == 400
    assert "Vous avez annulé la connexion" in await answer.text()


@pytest.mark.parametrize(
    "return_to",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "https:evil.example", "evil"],
)
async def test_return_to_outside_the_site_is_refused(rogue: RogueSetup, return_to: str) -> None:
    from urllib.parse import quote

    answer = await rogue.browser.get(
        f"{rogue.gateway_url}/auth/login?flow=sign&return_to={quote(return_to, safe='')}"
    )
    assert answer.status == 400
    assert await problem_of(answer) == "invalid-return-to"


async def test_a_local_return_to_is_honoured(rogue: RogueSetup) -> None:
    answer, _ = await rogue.browser.sign_in("flow=sign&return_to=%2Fpetitions%2Fabc%3Fx%3D1")
    assert answer.headers["Location"] == "/petitions/abc?x=1"


async def test_a_citizen_cannot_claim_a_staff_role(rogue: RogueSetup) -> None:
    # The provider vouches for someone who is on no allowlist; what the browser asks is ignored.
    rogue.provider.bends = Bends(userinfo_claims=lambda c: c | {"email": "citoyen@example.org"})
    answer, _ = await rogue.browser.sign_in("flow=staff&role=admin&roles=moderator")
    assert answer.status == 403
    assert await problem_of(answer) == "no-staff-role"
    assert rogue.browser.cookie(COOKIES[STAFF]) is None


async def test_staff_roles_come_from_the_allowlist_by_email_or_subject(rogue: RogueSetup) -> None:
    rogue.provider.bends = Bends(
        userinfo_claims=lambda c: c | {"email": "Marie.Moderatrice@assemblee.example"}
    )
    answer, _ = await rogue.browser.sign_in("flow=staff")
    assert answer.status == 302
    session = await rogue.browser.session.get(f"{rogue.gateway_url}/auth/session")
    assert (await session.json())["staff"]["roles"] == ["moderator"]


async def test_a_bearer_token_is_given_to_api_clients(rogue: RogueSetup) -> None:
    answer, _ = await rogue.browser.sign_in("flow=sign&response=token")
    assert answer.status == 200
    body = await answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert rogue.browser.cookie(SIGNER_COOKIE) is None
