"""The public agents' provider: its own issuer, key, people and claims."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from jose import jwt

if TYPE_CHECKING:
    from conftest import RelyingParty

from paraphe_franceconnect_sandbox.identities import (
    AGENTS,
    CAMILLE_DURAND,
    HUGO_SANS_ROLE,
    MARIE_MODERATRICE,
)

AGENT_SCOPES = "openid given_name usual_name email uid organizational_unit"


async def test_agents_provider_serves_agent_claims(agents: RelyingParty) -> None:
    sign_in = await agents.sign_in(MARIE_MODERATRICE, scope=AGENT_SCOPES)
    id_token = await agents.verify(sign_in.id_token)
    assert id_token["iss"] == "http://localhost:8106/agents"
    assert re.fullmatch(r"[0-9a-f]{64}", id_token["sub"])
    claims = await agents.verify_userinfo(sign_in)
    assert claims["sub"] == id_token["sub"]
    assert claims["email"] == "marie.moderatrice@assemblee.example"
    assert claims["given_name"] == "Marie"
    assert {"usual_name", "uid", "organizational_unit"} <= set(claims)
    assert "birthdate" not in claims
    assert "family_name" not in claims


async def test_agents_tokens_are_signed_by_the_agents_key_only(
    agents: RelyingParty, citizens: RelyingParty
) -> None:
    sign_in = await agents.sign_in(HUGO_SANS_ROLE, scope="openid email")
    agent_kids = {key["kid"] for key in (await agents.jwks())["keys"]}
    citizen_kids = {key["kid"] for key in (await citizens.jwks())["keys"]}
    kid = jwt.get_unverified_header(sign_in.id_token)["kid"]
    assert kid in agent_kids
    assert kid not in citizen_kids
    assert (await agents.verify_userinfo(sign_in))["email"] == "hugo.sansrole@assemblee.example"


async def test_agents_picker_lists_the_agents(agents: RelyingParty) -> None:
    picker = await agents.open_picker(scope=AGENT_SCOPES)
    assert picker.action == "/agents/api/v2/authorize/choose"
    assert picker.identities == list(AGENTS)
    assert "Personne mineure" not in picker.page
    response = await agents.choose(picker, identity=MARIE_MODERATRICE)
    assert response.status == 302
    assert "code=" in response.headers["Location"]


async def test_agents_provider_knows_neither_citizens_nor_generated_people(
    agents: RelyingParty,
) -> None:
    for hint in (CAMILLE_DURAND, "generated:charge-1"):
        response = await agents.authorize(login_hint=hint)
        assert response.status == 302
        assert "error=invalid_request" in response.headers["Location"]


async def test_citizen_scopes_are_refused_by_the_agents_provider(agents: RelyingParty) -> None:
    response = await agents.authorize(login_hint=MARIE_MODERATRICE, scope="openid birthdate")
    assert "error=invalid_scope" in response.headers["Location"]


async def test_a_code_of_one_provider_is_worthless_at_the_other(
    agents: RelyingParty, citizens: RelyingParty
) -> None:
    code = await agents.code_for(MARIE_MODERATRICE)
    response = await citizens.redeem(code)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_grant"
