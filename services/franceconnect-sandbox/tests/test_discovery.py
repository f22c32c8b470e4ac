"""Discovery documents and JWK sets: all a relying party needs to configure itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import RelyingParty

CITIZEN_CLAIMS = (
    "given_name", "family_name", "birthdate", "email", "gender", "birthplace", "birthcountry",
    "preferred_username",
)  # fmt: skip
ENDPOINTS = {
    "authorization_endpoint": "/api/v2/authorize",
    "token_endpoint": "/api/v2/token",
    "userinfo_endpoint": "/api/v2/userinfo",
    "end_session_endpoint": "/api/v2/session/end",
    "jwks_uri": "/api/v2/jwks",
}


async def test_discovery_document_is_consistent_with_its_issuer(
    each_provider: RelyingParty,
) -> None:
    rp = each_provider
    response = await rp.http.get(f"{rp.prefix}/.well-known/openid-configuration")
    assert response.status == 200
    document = await response.json()
    assert document["issuer"] == rp.issuer
    for name, path in ENDPOINTS.items():
        assert document[name] == rp.issuer + path
    for name, path in ENDPOINTS.items():
        # Every published endpoint answers where the document says, under the same prefix.
        assert (await rp.http.get(rp.prefix + path, allow_redirects=False)).status != 404, name
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code"]
    assert document["subject_types_supported"] == ["pairwise"]
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    assert document["userinfo_signing_alg_values_supported"] == ["ES256"]
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_post"]
    assert document["acr_values_supported"] == ["eidas1", "eidas2", "eidas3"]
    assert "openid" in document["scopes_supported"]


async def test_citizens_and_agents_providers_have_their_own_issuer_and_claims(
    citizens: RelyingParty, agents: RelyingParty
) -> None:
    citizen_document = await (await citizens.http.get("/.well-known/openid-configuration")).json()
    agent_document = await (
        await agents.http.get("/agents/.well-known/openid-configuration")
    ).json()
    assert citizen_document["issuer"] == "http://localhost:8106"
    assert agent_document["issuer"] == "http://localhost:8106/agents"
    assert set(CITIZEN_CLAIMS) <= set(citizen_document["claims_supported"])
    assert set(CITIZEN_CLAIMS) <= set(citizen_document["scopes_supported"])
    assert {"given_name", "usual_name", "email", "uid", "organizational_unit"} <= set(
        agent_document["scopes_supported"]
    )
    assert "birthdate" not in agent_document["scopes_supported"]


async def test_each_provider_publishes_its_own_p256_key(
    citizens: RelyingParty, agents: RelyingParty
) -> None:
    citizen_keys, agent_keys = (await citizens.jwks())["keys"], (await agents.jwks())["keys"]
    assert len(citizen_keys) == len(agent_keys) == 1
    for key in (citizen_keys[0], agent_keys[0]):
        assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
        assert "d" not in key
    assert citizen_keys[0]["kid"] != agent_keys[0]["kid"]
    assert citizen_keys[0]["x"] != agent_keys[0]["x"]
