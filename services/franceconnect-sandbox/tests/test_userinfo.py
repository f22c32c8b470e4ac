"""Userinfo: a JWT signed like the ID token, holding exactly what the scopes allow."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import RelyingParty

from paraphe_franceconnect_sandbox.identities import AMINA_BENALI, CAMILLE_DURAND

TOKEN_CLAIMS = {"iss", "aud", "iat", "exp", "sub"}


async def test_userinfo_is_a_signed_jwt_with_only_the_scoped_claims(
    citizens: RelyingParty,
) -> None:
    sign_in = await citizens.sign_in(CAMILLE_DURAND, scope="openid birthdate")
    claims = await citizens.verify_userinfo(sign_in)
    assert set(claims) == TOKEN_CLAIMS | {"birthdate"}
    assert claims["birthdate"] == "1985-03-14"
    assert claims["iss"] == citizens.issuer
    assert claims["aud"] == citizens.client_id
    id_token = await citizens.verify(sign_in.id_token)
    assert claims["sub"] == id_token["sub"]


async def test_author_scopes_give_names_birthdate_and_email(citizens: RelyingParty) -> None:
    sign_in = await citizens.sign_in(
        CAMILLE_DURAND, scope="openid given_name family_name birthdate email"
    )
    claims = await citizens.verify_userinfo(sign_in)
    assert {name: claims[name] for name in ("given_name", "family_name", "birthdate", "email")} == {
        "given_name": "Camille",
        "family_name": "Durand",
        "birthdate": "1985-03-14",
        "email": "camille.durand@example.org",
    }
    assert "gender" not in claims


async def test_every_citizen_scope_releases_its_claim(citizens: RelyingParty) -> None:
    scopes = (
        "given_name family_name birthdate email gender birthplace birthcountry preferred_username"
    )
    sign_in = await citizens.sign_in(AMINA_BENALI, scope=f"openid {scopes}")
    claims = await citizens.verify_userinfo(sign_in)
    assert set(claims) == TOKEN_CLAIMS | set(scopes.split())
    assert claims["gender"] == "female"
    assert claims["birthplace"] == ""  # born abroad: FranceConnect gives no commune
    assert claims["birthcountry"] == "99350"


async def test_openid_alone_releases_no_identity_claim(citizens: RelyingParty) -> None:
    claims = await citizens.verify_userinfo(await citizens.sign_in(CAMILLE_DURAND))
    assert set(claims) == TOKEN_CLAIMS


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer ", "Bearer jeton-inconnu", "Basic dXNlcjpwYXNz"],
    ids=["none", "empty", "unknown", "basic"],
)
async def test_userinfo_without_a_valid_token_is_401(
    citizens: RelyingParty, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await citizens.http.get("/api/v2/userinfo", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"] == "invalid_token"


async def test_unknown_token_is_named_invalid_token_in_the_challenge(
    citizens: RelyingParty,
) -> None:
    response = await citizens.userinfo("jeton-inconnu")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_an_access_token_works_only_at_the_provider_that_issued_it(
    citizens: RelyingParty, agents: RelyingParty
) -> None:
    sign_in = await citizens.sign_in(CAMILLE_DURAND)
    assert (await agents.userinfo(sign_in.access_token)).status == 401
