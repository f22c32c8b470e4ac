"""Logout (session/end): honoured for an ID token this provider issued, refused otherwise."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwt
from jose.backends.cryptography_backend import CryptographyECKey

if TYPE_CHECKING:
    from conftest import RelyingParty

from paraphe_franceconnect_sandbox.identities import CAMILLE_DURAND, MARIE_MODERATRICE

LOGOUT_STATE = "etat-de-la-deconnexion-0123456789"


async def end_session(rp: RelyingParty, **params: str) -> tuple[int, str, str]:
    """Status, Location (or "") and body of a logout request."""
    response = await rp.http.get(
        f"{rp.prefix}/api/v2/session/end", params=params, allow_redirects=False
    )
    return response.status, response.headers.get("Location", ""), await response.text()


async def test_logout_redirects_with_the_state_for_an_id_token_it_issued(
    citizens: RelyingParty,
) -> None:
    sign_in = await citizens.sign_in(CAMILLE_DURAND)
    status, location, _ = await end_session(
        citizens,
        id_token_hint=sign_in.id_token,
        state=LOGOUT_STATE,
        post_logout_redirect_uri=citizens.post_logout_redirect_uri,
    )
    assert status == 302
    assert location.startswith(citizens.post_logout_redirect_uri + "?")
    assert parse_qs(urlsplit(location).query) == {"state": [LOGOUT_STATE]}


async def test_logout_accepts_an_expired_id_token(citizens: RelyingParty) -> None:
    sign_in = await citizens.sign_in(CAMILLE_DURAND)
    claims = jwt.get_unverified_claims(sign_in.id_token)
    long_ago = int(time.time()) - 3600
    expired = citizens.provider.key.sign(claims | {"iat": long_ago, "exp": long_ago + 60})
    status, location, _ = await end_session(
        citizens,
        id_token_hint=expired,
        state=LOGOUT_STATE,
        post_logout_redirect_uri=citizens.post_logout_redirect_uri,
    )
    assert status == 302
    assert location.startswith(citizens.post_logout_redirect_uri)


async def test_logout_refuses_a_forged_id_token(citizens: RelyingParty) -> None:
    sign_in = await citizens.sign_in(CAMILLE_DURAND)
    claims = jwt.get_unverified_claims(sign_in.id_token)
    header = jwt.get_unverified_header(sign_in.id_token)
    # Same claims, same kid, signed by a key the sandbox never held.
    forger = CryptographyECKey(ec.generate_private_key(ec.SECP256R1()), "ES256")
    forged = jwt.encode(claims, forger, algorithm="ES256", headers={"kid": header["kid"]})
    status, location, page = await end_session(
        citizens,
        id_token_hint=forged,
        state=LOGOUT_STATE,
        post_logout_redirect_uri=citizens.post_logout_redirect_uri,
    )
    assert (status, location) == (400, "")
    assert '<html lang="fr">' in page
    assert "n&#39;a pas été émis par ce fournisseur" in page


async def test_logout_refuses_an_unsigned_id_token(citizens: RelyingParty) -> None:
    sign_in = await citizens.sign_in(CAMILLE_DURAND)
    header, claims, _ = sign_in.id_token.split(".")
    status, location, _ = await end_session(
        citizens,
        id_token_hint=f"{header}.{claims}.",
        state=LOGOUT_STATE,
        post_logout_redirect_uri=citizens.post_logout_redirect_uri,
    )
    assert (status, location) == (400, "")


async def test_logout_refuses_a_userinfo_jwt_as_id_token_hint(citizens: RelyingParty) -> None:
    sign_in = await citizens.sign_in(CAMILLE_DURAND)
    userinfo = await (await citizens.userinfo(sign_in.access_token)).text()
    status, location, _ = await end_session(
        citizens,
        id_token_hint=userinfo,
        state=LOGOUT_STATE,
        post_logout_redirect_uri=citizens.post_logout_redirect_uri,
    )
    assert (status, location) == (400, "")


async def test_logout_refuses_an_id_token_of_the_other_provider(
    citizens: RelyingParty, agents: RelyingParty
) -> None:
    agent_sign_in = await agents.sign_in(MARIE_MODERATRICE)
    status, location, _ = await end_session(
        citizens,
        id_token_hint=agent_sign_in.id_token,
        state=LOGOUT_STATE,
        post_logout_redirect_uri=citizens.post_logout_redirect_uri,
    )
    assert (status, location) == (400, "")


@pytest.mark.parametrize(
    "params",
    [
        {"post_logout_redirect_uri": "https://attaquant.example/"},
        {"post_logout_redirect_uri": "<absent>"},
        {"state": "<absent>"},
        {"id_token_hint": "<absent>"},
        {"id_token_hint": "pas-un-jeton"},
    ],
    ids=["unregistered-uri", "no-uri", "no-state", "no-hint", "garbage-hint"],
)
async def test_logout_refuses_incomplete_or_unregistered_requests(
    citizens: RelyingParty, params: dict[str, str]
) -> None:
    sign_in = await citizens.sign_in(CAMILLE_DURAND)
    query = {
        "id_token_hint": sign_in.id_token,
        "state": LOGOUT_STATE,
        "post_logout_redirect_uri": citizens.post_logout_redirect_uri,
    } | params
    status, location, page = await end_session(
        citizens, **{name: value for name, value in query.items() if value != "<absent>"}
    )
    assert (status, location) == (400, "")
    assert "Demande refusée" in page


async def test_logout_uri_of_one_client_is_refused_for_another_clients_token(
    citizens: RelyingParty,
) -> None:
    sign_in = await citizens.sign_in(
        CAMILLE_DURAND,
        client_id=citizens.other_client_id,
        redirect_uri=citizens.other_redirect_uri,
    )
    status, location, _ = await end_session(
        citizens,
        id_token_hint=sign_in.id_token,
        state=LOGOUT_STATE,
        post_logout_redirect_uri=citizens.post_logout_redirect_uri,
    )
    assert (status, location) == (400, "")
