"""The authorization endpoint: the identity picker, login_hint, and every refusal."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

if TYPE_CHECKING:
    from conftest import RelyingParty

from paraphe_franceconnect_sandbox.identities import (
    ADULT_CITIZENS,
    CAMILLE_DURAND,
    LEA_PETIT,
    MAJEUR_DEMAIN,
    MINOR_CITIZENS,
)


def redirect_query(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def test_login_hint_authorizes_at_once_with_code_state_and_issuer(
    citizens: RelyingParty,
) -> None:
    response = await citizens.authorize(login_hint=CAMILLE_DURAND)
    assert response.status == 302
    assert response.headers["Cache-Control"] == "no-store"
    location = response.headers["Location"]
    assert location.startswith(citizens.redirect_uri + "?")
    answer = redirect_query(location)
    assert set(answer) == {"code", "state", "iss"}
    assert answer["state"] == citizens.state
    assert answer["iss"] == citizens.issuer
    assert len(answer["code"]) >= 32


async def test_picker_page_lists_demo_identities_and_marks_minors(citizens: RelyingParty) -> None:
    picker = await citizens.open_picker()
    assert '<html lang="fr">' in picker.page
    assert picker.method == "post"
    assert picker.action == "/api/v2/authorize/choose"
    assert set(picker.identities) == ADULT_CITIZENS | MINOR_CITIZENS
    assert set(picker.labelled) == set(picker.identities)  # every choice has its label
    assert "Camille Durand" in picker.page
    assert picker.page.count("Personne mineure") == len(MINOR_CITIZENS)
    assert "Annuler" in picker.page


async def test_picker_page_has_no_inline_script_or_style(citizens: RelyingParty) -> None:
    response = await citizens.authorize()
    page = await response.text()
    assert "<script" not in page
    assert "style=" not in page
    assert "<style" not in page
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert (await citizens.http.get("/static/sandbox.css")).status == 200


async def test_choosing_an_identity_redirects_with_a_code_for_that_identity(
    citizens: RelyingParty,
) -> None:
    picker = await citizens.open_picker(scope="openid given_name")
    response = await citizens.choose(picker, identity=CAMILLE_DURAND, action="choose")
    assert response.status == 302
    answer = redirect_query(response.headers["Location"])
    assert answer["state"] == citizens.state
    tokens = await citizens.redeem(answer["code"])
    assert tokens.status == 200
    userinfo = await citizens.userinfo((await tokens.json())["access_token"])
    claims = await citizens.verify(await userinfo.text())
    assert claims["given_name"] == "Camille"


async def test_a_picker_transaction_serves_one_choice_only(citizens: RelyingParty) -> None:
    picker = await citizens.open_picker()
    assert (await citizens.choose(picker, identity=LEA_PETIT)).status == 302
    again = await citizens.choose(picker, identity=MAJEUR_DEMAIN)
    assert again.status == 400
    assert "Location" not in again.headers
    assert "expiré ou a déjà abouti" in await again.text()


async def test_choosing_no_identity_shows_the_picker_again(citizens: RelyingParty) -> None:
    picker = await citizens.open_picker()
    response = await citizens.choose(picker, identity="personne-inconnue")
    assert response.status == 400
    assert "Choisissez une identité." in await response.text()
    # The transaction is still usable.
    assert (await citizens.choose(picker, identity=CAMILLE_DURAND)).status == 302


async def test_cancel_redirects_with_access_denied_and_the_state(citizens: RelyingParty) -> None:
    picker = await citizens.open_picker()
    response = await citizens.choose(picker, action="cancel")
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(citizens.redirect_uri + "?")
    answer = redirect_query(location)
    assert answer["error"] == "access_denied"
    assert answer["state"] == citizens.state
    assert "code" not in answer
    # Cancelling ends the transaction.
    assert (await citizens.choose(picker, identity=CAMILLE_DURAND)).status == 400


@pytest.mark.parametrize(
    "params",
    [
        {"redirect_uri": "https://attaquant.example/callback"},
        {"redirect_uri": "http://localhost:8080/auth/callback/../../ailleurs"},
        {"redirect_uri": "<absent>"},
        {"client_id": "client-inconnu"},
        {"client_id": "<absent>"},
    ],
    ids=["foreign", "path-trick", "missing", "unknown-client", "no-client"],
)
async def test_unregistered_redirect_uri_or_client_gets_a_page_and_no_redirect(
    citizens: RelyingParty, params: dict[str, str]
) -> None:
    response = await citizens.authorize(login_hint=CAMILLE_DURAND, **params)
    assert response.status == 400
    assert "Location" not in response.headers
    assert response.content_type == "text/html"
    page = await response.text()
    assert '<html lang="fr">' in page
    assert "Demande refusée" in page


async def test_a_redirect_uri_registered_for_another_client_is_refused(
    citizens: RelyingParty,
) -> None:
    response = await citizens.authorize(redirect_uri=citizens.other_redirect_uri)
    assert response.status == 400
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"state": "trop-court"}, "invalid_request"),
        ({"nonce": "trop-court"}, "invalid_request"),
        ({"nonce": "<absent>"}, "invalid_request"),
        ({"acr_values": "eidas9"}, "invalid_request"),
        ({"prompt": "none"}, "invalid_request"),
        ({"login_hint": "personne-inconnue"}, "invalid_request"),
        ({"response_type": "<absent>"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "given_name"}, "invalid_scope"),
        ({"scope": "openid usual_name"}, "invalid_scope"),
    ],
    ids=[
        "short-state", "short-nonce", "no-nonce", "unknown-acr", "prompt-none",
        "unknown-hint", "no-response-type", "implicit", "no-openid", "agent-scope",
    ],
)  # fmt: skip
async def test_invalid_parameters_are_refused_on_the_redirect_uri_with_the_state(
    citizens: RelyingParty, params: dict[str, str], error: str
) -> None:
    response = await citizens.authorize(**{"login_hint": CAMILLE_DURAND, **params})
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(citizens.redirect_uri + "?")
    answer = redirect_query(location)
    assert answer["error"] == error
    assert answer["error_description"]
    assert answer["error_description"].isascii()  # RFC 6749, section 4.1.2.1
    assert answer["state"] == params.get("state", citizens.state)
    assert "code" not in answer


async def test_short_state_is_refused_even_without_login_hint(citizens: RelyingParty) -> None:
    response = await citizens.authorize(state="court")
    assert response.status == 302
    assert redirect_query(response.headers["Location"])["error"] == "invalid_request"


async def test_a_repeated_parameter_is_refused(citizens: RelyingParty) -> None:
    query = (
        f"client_id={citizens.client_id}&redirect_uri={citizens.redirect_uri}"
        f"&response_type=code&scope=openid&state={citizens.state}&state={citizens.state}"
        f"&nonce={citizens.nonce}&login_hint={CAMILLE_DURAND}"
    )
    response = await citizens.http.get(f"/api/v2/authorize?{query}", allow_redirects=False)
    assert response.status == 302
    assert redirect_query(response.headers["Location"])["error"] == "invalid_request"


async def test_acr_values_defaults_to_eidas1(citizens: RelyingParty) -> None:
    sign_in = await citizens.sign_in(CAMILLE_DURAND, acr_values="<absent>")
    assert (await citizens.verify(sign_in.id_token))["acr"] == "eidas1"
