"""Every way a sign-in can be forged or replayed fails closed, with a clear answer."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from jose import jwt

from paraphe_common.auth import COOKIES
from paraphe_common.tokens import SIGNER, STAFF
from paraphe_devstack.browser import Browser, problem_of
from paraphe_devstack.keys import SigningKey, new_signing_key
from paraphe_devstack.rogue_provider import Bends, Claims, RogueSetup
from paraphe_devstack.servers import RedisServer

if TYPE_CHECKING:
    from conftest import RogueFactory

SIGNER_COOKIE = COOKIES[SIGNER]


def b64(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


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
    # The provider says invalid_grant: this sign-in's failure, not the provider's (no 503).
    assert replay.status == 401
    assert await problem_of(replay) == "sign-in-refused"
    assert "merci de recommencer" in (await replay.json())["detail"]
    assert await rogue.sign_ins_counted("sign", "refused") == 1
    assert await rogue.sign_ins_counted("sign", "provider_error") == 0


@pytest.mark.parametrize(
    "query", ["flow=sign", "flow=author", "flow=staff", "flow=sign&response=token"]
)
@pytest.mark.parametrize("victim_signing_in", [False, True], ids=["idle", "signing in"])
async def test_a_sign_in_begun_in_another_browser_is_refused_and_sets_no_session(
    rogue: RogueSetup,
    browser_factory: Callable[[str], Browser],
    query: str,
    victim_signing_in: bool,
) -> None:
    # Login CSRF: someone begins a sign-in with their own account, stops before the callback
    # and has a victim's browser open it; the victim would be signed in as them.
    rogue.provider.bends = Bends(  # an agent with a role: the staff sign-in would succeed
        userinfo_claims=lambda c: c | {"email": "marie.moderatrice@assemblee.example"}
    )
    attacker = rogue.browser
    login = await attacker.get(f"{rogue.gateway_url}/auth/login?{query}")
    at_provider = await attacker.get(login.headers["Location"])
    victim = browser_factory(rogue.gateway_url)
    if victim_signing_in:  # a sign-in of the victim's own under way: its cookie is no pass
        await victim.get(f"{rogue.gateway_url}/auth/login?{query}")
    answer = await victim.get(at_provider.headers["Location"])
    assert answer.status == 400
    assert await problem_of(answer) == "invalid-state"
    assert not set(COOKIES.values()) & {c.key for c in answer.cookies.values()}
    assert "access_token" not in await answer.text()
    assert all(victim.cookie(cookie) is None for cookie in COOKIES.values())
    flow = query.split("&")[0].removeprefix("flow=")
    assert await rogue.sign_ins_counted(flow, "other_browser") == 1
    assert await rogue.sign_ins_counted("unknown", "expired_state") == 0


async def test_a_sign_in_finished_in_another_browser_ends_on_a_clear_page(
    rogue: RogueSetup, browser_factory: Callable[[str], Browser]
) -> None:
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    at_provider = await rogue.browser.get(login.headers["Location"])
    elsewhere = browser_factory(rogue.gateway_url)
    async with elsewhere.session.get(
        at_provider.headers["Location"], allow_redirects=False, headers={"Accept": "text/html"}
    ) as page:
        assert page.status == 400
        assert "commencée dans un autre navigateur" in await page.text()


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


def without(claims: Claims, name: str) -> Claims:
    return {key: value for key, value in claims.items() if key != name}


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
        pytest.param(bend_id_token(lambda c: without(c, "aud")), id="no aud"),
        pytest.param(
            bend_id_token(lambda c: c | {"aud": [c["aud"], "another-client"]}),
            id="several audiences, no azp",
        ),
        pytest.param(
            bend_id_token(
                lambda c: c | {"aud": [c["aud"], "another-client"], "azp": "another-client"}
            ),
            id="several audiences, another azp",
        ),
        pytest.param(bend_id_token(lambda c: c | {"azp": "another-client"}), id="another azp"),
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
        pytest.param(Bends(userinfo_claims=lambda c: without(c, "aud")), id="userinfo, no aud"),
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


@pytest.mark.parametrize(
    "bends",
    [
        pytest.param(bend_id_token(lambda c: c | {"aud": [c["aud"]]}), id="ours alone, in a list"),
        pytest.param(
            bend_id_token(lambda c: c | {"aud": [c["aud"], "another-client"], "azp": c["aud"]}),
            id="several audiences, ours the azp",
        ),
        pytest.param(bend_id_token(lambda c: c | {"azp": c["aud"]}), id="ours, and the azp"),
    ],
)
async def test_an_id_token_for_us_as_its_authorized_party_is_accepted(
    rogue: RogueSetup, bends: Bends
) -> None:
    # OpenID Connect Core 3.1.3.7: other audiences beside ours only with us as the azp.
    rogue.provider.bends = bends
    answer, _ = await rogue.browser.sign_in("flow=sign")
    assert answer.status == 302
    assert rogue.browser.cookie(SIGNER_COOKIE)


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


NOT_A_BIRTH_DATE = [
    pytest.param(Bends(birthdate="1980-13-45"), id="no such day"),
    pytest.param(Bends(birthdate="14/03/1985"), id="another format"),
    pytest.param(Bends(birthdate=""), id="empty"),
    pytest.param(Bends(userinfo_claims=lambda c: without(c, "birthdate")), id="missing"),
    pytest.param(Bends(userinfo_claims=lambda c: c | {"birthdate": 19850314}), id="a number"),
]


@pytest.mark.parametrize("flow", ["sign", "author"])
@pytest.mark.parametrize("bends", NOT_A_BIRTH_DATE)
async def test_an_identity_without_a_valid_birth_date_is_incomplete_not_a_minor(
    rogue: RogueSetup, bends: Bends, flow: str
) -> None:
    # Nothing says this person is a minor: the identity received cannot tell, and says so.
    rogue.provider.bends = bends
    answer, _ = await rogue.browser.sign_in(f"flow={flow}")
    assert answer.status == 400
    assert await problem_of(answer) == "identity-incomplete"
    assert "majeur" not in (await answer.json())["detail"]
    assert all(rogue.browser.cookie(cookie) is None for cookie in COOKIES.values())
    assert await rogue.sign_ins_counted(flow, "identity_incomplete") == 1
    assert await rogue.sign_ins_counted(flow, "minor") == 0


async def test_an_author_without_names_is_told_so_and_counted(rogue: RogueSetup) -> None:
    rogue.provider.bends = Bends(userinfo_claims=lambda c: c | {"given_name": "Camille"})
    answer, _ = await rogue.browser.sign_in("flow=author")
    assert answer.status == 400
    assert await problem_of(answer) == "identity-incomplete"
    assert "nom et prénoms" in (await answer.json())["detail"]
    assert await rogue.sign_ins_counted("author", "identity_incomplete") == 1


async def test_an_identity_without_a_valid_birth_date_ends_on_a_clear_page(
    rogue: RogueSetup,
) -> None:
    rogue.provider.bends = Bends(birthdate="1980-13-45")
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    at_provider = await rogue.browser.get(login.headers["Location"])
    page = await rogue.browser.session.get(
        at_provider.headers["Location"], allow_redirects=False, headers={"Accept": "text/html"}
    )
    assert page.status == 400
    text = await page.text()
    assert "identité transmise par FranceConnect est incomplète" in text
    assert "réservé aux personnes majeures" not in text


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


async def staff_roles_after_sign_in(rogue: RogueSetup) -> list[str] | None:
    answer, _ = await rogue.browser.sign_in("flow=staff")
    if answer.status != 302:
        assert await problem_of(answer) == "no-staff-role"
        return None
    session = await rogue.browser.session.get(f"{rogue.gateway_url}/auth/session")
    roles: list[str] = (await session.json())["staff"]["roles"]
    return roles


async def test_an_allowlisted_email_grants_its_roles_whatever_the_case_of_its_key(
    start_rogue: RogueFactory,
) -> None:
    rogue = await start_rogue(
        staff_roles=json.dumps({" Marie.Moderatrice@Assemblee.EXAMPLE ": ["moderator"]})
    )
    rogue.provider.bends = Bends(
        userinfo_claims=lambda c: c | {"email": "marie.moderatrice@assemblee.example"}
    )
    assert await staff_roles_after_sign_in(rogue) == ["moderator"]


@pytest.mark.parametrize(
    ("subject", "roles"), [("AbC-" + "b" * 60, ["admin"]), ("abc-" + "b" * 60, None)]
)
async def test_an_allowlisted_subject_keeps_its_case(
    start_rogue: RogueFactory, subject: str, roles: list[str] | None
) -> None:
    # A sub is case-sensitive: the provider's AbC… and abc… are two agents.
    rogue = await start_rogue(staff_roles=json.dumps({"AbC-" + "b" * 60: ["admin"]}))
    rogue.provider.bends = Bends(
        id_token_claims=lambda c: c | {"sub": subject},
        userinfo_claims=lambda c: c | {"sub": subject},
    )
    assert await staff_roles_after_sign_in(rogue) == roles


async def test_a_bearer_token_is_given_to_api_clients(rogue: RogueSetup) -> None:
    answer, _ = await rogue.browser.sign_in("flow=sign&response=token")
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"  # RFC 6749 §5.1: no cache keeps it
    body = await answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert rogue.browser.cookie(SIGNER_COOKIE) is None


async def test_a_sign_in_from_another_browser_whose_state_has_expired_is_counted_without_flow(
    rogue: RogueSetup, browser_factory: Callable[[str], Browser], redis_server: RedisServer
) -> None:
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    at_provider = await rogue.browser.get(login.headers["Location"])
    with redis_server.client() as client:
        client.flushdb()  # the state has expired meanwhile
    answer = await browser_factory(rogue.gateway_url).get(at_provider.headers["Location"])
    assert answer.status == 400
    assert await problem_of(answer) == "invalid-state"
    assert await rogue.sign_ins_counted("unknown", "other_browser") == 1


async def test_a_sign_in_from_another_browser_is_refused_while_the_state_store_is_down(
    rogue: RogueSetup, browser_factory: Callable[[str], Browser], redis_server: RedisServer
) -> None:
    login = await rogue.browser.get(f"{rogue.gateway_url}/auth/login?flow=sign")
    at_provider = await rogue.browser.get(login.headers["Location"])
    redis_server.stop()
    answer = await browser_factory(rogue.gateway_url).get(at_provider.headers["Location"])
    assert answer.status == 400
    assert await problem_of(answer) == "invalid-state"
    assert await rogue.sign_ins_counted("unknown", "other_browser") == 1
