"""The token endpoint and the ID token: client_secret_post, single-use codes, pairwise subs."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import RelyingParty

from paraphe_franceconnect_sandbox.identities import CAMILLE_DURAND, JEAN_MARTIN

HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


async def test_full_flow_gives_an_id_token_a_relying_party_can_verify(
    citizens: RelyingParty,
) -> None:
    sign_in = await citizens.sign_in(CAMILLE_DURAND, scope="openid birthdate", acr_values="eidas2")
    body = sign_in.token_response
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 60
    assert body["scope"] == "openid birthdate"
    claims = await citizens.verify(sign_in.id_token)
    assert claims["iss"] == citizens.issuer
    assert claims["aud"] == citizens.client_id
    assert claims["nonce"] == citizens.nonce
    assert claims["acr"] == "eidas2"
    assert claims["amr"] == ["pwd"]
    assert HEX_SHA256.match(claims["sub"])
    assert claims["exp"] == claims["iat"] + 60
    assert abs(claims["iat"] - time.time()) < 5
    assert claims["auth_time"] <= claims["iat"]
    # Identity claims are given by userinfo only, as FranceConnect does.
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr"}


async def test_token_answers_are_not_cacheable(citizens: RelyingParty) -> None:
    response = await citizens.redeem(await citizens.code_for(CAMILLE_DURAND))
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_code_cannot_be_used_twice(citizens: RelyingParty) -> None:
    code = await citizens.code_for(CAMILLE_DURAND)
    first = await citizens.redeem(code)
    assert first.status == 200
    access_token = (await first.json())["access_token"]
    second = await citizens.redeem(code)
    assert second.status == 400
    assert (await second.json())["error"] == "invalid_grant"
    # A replayed code reveals a leak: the token it gave is revoked (RFC 6749, section 4.1.2).
    assert (await citizens.userinfo(access_token)).status == 401


@pytest.mark.parametrize(
    "fields",
    [
        {"client_secret": "pas-le-bon-secret"},
        {"client_secret": ""},
        {"client_id": "client-inconnu"},
    ],
    ids=["wrong-secret", "no-secret", "unknown-client"],
)
async def test_a_client_that_cannot_authenticate_is_refused(
    citizens: RelyingParty, fields: dict[str, str]
) -> None:
    code = await citizens.code_for(CAMILLE_DURAND)
    response = await citizens.redeem(code, **fields)
    assert response.status == 401
    body = await response.json()
    assert body["error"] == "invalid_client"
    assert body["error_description"]
    assert "access_token" not in body


async def test_a_code_issued_to_another_client_is_refused(citizens: RelyingParty) -> None:
    code = await citizens.code_for(CAMILLE_DURAND)
    response = await citizens.redeem(
        code, client_id=citizens.other_client_id, redirect_uri=citizens.redirect_uri
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_grant"


async def test_redirect_uri_must_be_the_one_of_the_authorization(citizens: RelyingParty) -> None:
    code = await citizens.code_for(CAMILLE_DURAND)
    response = await citizens.redeem(code, redirect_uri=citizens.redirect_uri + "/autre")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "invalid_request"),
        ({"code": ""}, "invalid_request"),
        ({"code": "un-code-jamais-delivre"}, "invalid_grant"),
    ],
    ids=["client-credentials", "no-grant-type", "no-code", "unknown-code"],
)
async def test_bad_token_requests_get_oauth_errors(
    citizens: RelyingParty, fields: dict[str, str], error: str
) -> None:
    code = await citizens.code_for(CAMILLE_DURAND)
    response = await citizens.redeem(code, **fields)
    assert response.status == 400
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"] == error
    assert body["error_description"].isascii()  # RFC 6749, section 5.2


async def test_token_request_must_be_form_encoded(citizens: RelyingParty) -> None:
    code = await citizens.code_for(CAMILLE_DURAND)
    response = await citizens.http.post(
        "/api/v2/token",
        json={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": citizens.redirect_uri,
            "client_id": citizens.client_id,
            "client_secret": citizens.client_secret,
        },
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_sub_differs_between_clients_and_is_stable_for_one_client(
    citizens: RelyingParty,
) -> None:
    first = await citizens.verify((await citizens.sign_in(CAMILLE_DURAND)).id_token)
    again = await citizens.verify((await citizens.sign_in(CAMILLE_DURAND)).id_token)
    other_client = await citizens.sign_in(
        CAMILLE_DURAND,
        client_id=citizens.other_client_id,
        redirect_uri=citizens.other_redirect_uri,
    )
    elsewhere = await citizens.verify(other_client.id_token, audience=citizens.other_client_id)
    someone_else = await citizens.verify((await citizens.sign_in(JEAN_MARTIN)).id_token)
    assert first["sub"] == again["sub"]
    assert HEX_SHA256.match(elsewhere["sub"])
    assert elsewhere["sub"] != first["sub"]
    assert someone_else["sub"] != first["sub"]
