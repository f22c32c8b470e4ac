"""A sandbox on a real HTTP server, and a relying party that talks to it as auth-gateway would.

Test modules cannot import this file (pytest imports it by path), so what they need travels
in fixtures: :class:`RelyingParty` carries the registration its requests use. They import its
name for type checking only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from jose import jwt
from pytest_aiohttp import AiohttpClient

from paraphe_franceconnect_sandbox.app import AGENTS_PROVIDER, CITIZENS_PROVIDER, create_app
from paraphe_franceconnect_sandbox.provider import Provider
from paraphe_franceconnect_sandbox.settings import FranceconnectSandboxSettings

Client = TestClient[web.Request, web.Application]

# The issuer is what relying parties are told, not where the test server listens: routes do
# not depend on the host, and every URL a provider publishes must start with the issuer.
ISSUER = "http://localhost:8106"

CLIENT_ID = "paraphe-auth-gateway"
CLIENT_SECRET = "un-secret-de-demonstration-assez-long"
REDIRECT_URI = "http://localhost:8080/auth/callback"
POST_LOGOUT_REDIRECT_URI = "http://localhost:8080/auth/logged-out"
OTHER_CLIENT_ID = "paraphe-moderation"
OTHER_CLIENT_SECRET = "un-autre-secret-de-demonstration"
OTHER_REDIRECT_URI = "http://localhost:8080/moderation/callback"

STATE = "etat-de-la-demande-0123456789"
NONCE = "nonce-de-la-demande-0123456789"

CLIENTS = [
    {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [REDIRECT_URI],
        "post_logout_redirect_uris": [POST_LOGOUT_REDIRECT_URI],
    },
    {
        "client_id": OTHER_CLIENT_ID,
        "client_secret": OTHER_CLIENT_SECRET,
        "redirect_uris": [OTHER_REDIRECT_URI],
    },
]
SECRETS = {CLIENT_ID: CLIENT_SECRET, OTHER_CLIENT_ID: OTHER_CLIENT_SECRET}
REDIRECT_URIS = {CLIENT_ID: REDIRECT_URI, OTHER_CLIENT_ID: OTHER_REDIRECT_URI}


def sandbox_settings() -> FranceconnectSandboxSettings:
    return FranceconnectSandboxSettings(
        sandbox_issuer=ISSUER, sandbox_clients=json.dumps(CLIENTS), access_log=False
    )


def query_of(location: str) -> dict[str, str]:
    """The query of a redirection, one value per name (a repeated name fails the test)."""
    parsed = parse_qs(urlsplit(location).query, keep_blank_values=True, strict_parsing=False)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {name: values[0] for name, values in parsed.items()}


class Picker(HTMLParser):
    """What a browser sees of the identity picker: its form, its choices, its text."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page
        self.action = ""
        self.method = ""
        self.fields: dict[str, str] = {}
        self.identities: list[str] = []
        self.labelled: set[str] = set()
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action, self.method = attributes["action"], attributes["method"]
        elif tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes["name"]] = attributes["value"]
        elif tag == "input" and attributes.get("type") == "radio":
            self.identities.append(attributes["value"])
        elif tag == "label":
            self.labelled.add(attributes["for"].removeprefix("identite-"))


@dataclass(frozen=True)
class SignIn:
    client_id: str
    access_token: str
    id_token: str
    token_response: dict[str, Any]


class RelyingParty:
    """Drives the authorization code flow against one provider of the sandbox."""

    client_id = CLIENT_ID
    client_secret = CLIENT_SECRET
    redirect_uri = REDIRECT_URI
    post_logout_redirect_uri = POST_LOGOUT_REDIRECT_URI
    other_client_id = OTHER_CLIENT_ID
    other_redirect_uri = OTHER_REDIRECT_URI
    state = STATE
    nonce = NONCE

    def __init__(self, http: Client, prefix: str = "") -> None:
        self.http = http
        self.prefix = prefix
        self.issuer = ISSUER + prefix

    @property
    def provider(self) -> Provider:
        """The provider object itself, for the few tests that need its signing key."""
        app = self.http.app
        assert app is not None
        return app[AGENTS_PROVIDER] if self.prefix else app[CITIZENS_PROVIDER]

    async def authorize(self, **params: str) -> ClientResponse:
        """GET the authorization endpoint with valid defaults, without following redirects."""
        query = {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": "openid",
            "state": STATE,
            "nonce": NONCE,
            "acr_values": "eidas1",
            "prompt": "login consent",
        }
        query.update(params)
        query = {name: value for name, value in query.items() if value != "<absent>"}
        return await self.http.get(
            f"{self.prefix}/api/v2/authorize", params=query, allow_redirects=False
        )

    async def open_picker(self, **params: str) -> Picker:
        response = await self.authorize(**params)
        assert response.status == 200, await response.text()
        assert response.content_type == "text/html"
        return Picker(await response.text())

    async def choose(self, picker: Picker, **form: str) -> ClientResponse:
        return await self.http.post(
            picker.action, data={**picker.fields, **form}, allow_redirects=False
        )

    async def code_for(self, login_hint: str, **params: str) -> str:
        response = await self.authorize(login_hint=login_hint, **params)
        assert response.status == 302, await response.text()
        location = response.headers["Location"]
        redirect_uri = REDIRECT_URIS[params.get("client_id", CLIENT_ID)]
        assert location.startswith(redirect_uri + "?")
        answer = query_of(location)
        assert answer["state"] == params.get("state", STATE)
        assert answer["iss"] == self.issuer
        return answer["code"]

    async def redeem(self, code: str, /, **fields: str) -> ClientResponse:
        """POST the token endpoint as a registered client would; ``fields`` override the form."""
        client_id = fields.get("client_id", CLIENT_ID)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URIS.get(client_id, REDIRECT_URI),
            "client_id": client_id,
            "client_secret": SECRETS.get(client_id, ""),
        }
        form.update(fields)
        return await self.http.post(f"{self.prefix}/api/v2/token", data=form)

    async def sign_in(self, login_hint: str, *, scope: str = "openid", **params: str) -> SignIn:
        """The whole non-interactive dance: authorize, then redeem the code."""
        client_id = params.get("client_id", CLIENT_ID)
        code = await self.code_for(login_hint, scope=scope, **params)
        response = await self.redeem(code, client_id=client_id)
        assert response.status == 200, await response.text()
        body = await response.json()
        return SignIn(client_id, body["access_token"], body["id_token"], body)

    async def jwks(self) -> dict[str, Any]:
        response = await self.http.get(f"{self.prefix}/api/v2/jwks")
        assert response.status == 200
        jwks: dict[str, Any] = await response.json()
        return jwks

    async def verify(self, token: str, *, audience: str = CLIENT_ID) -> dict[str, Any]:
        """Check a JWT as a relying party must: ES256, key from the JWKS by kid, iss, aud, exp."""
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "ES256"
        assert header["typ"] == "JWT"
        keys = {key["kid"]: key for key in (await self.jwks())["keys"]}
        claims: dict[str, Any] = jwt.decode(
            token,
            keys[header["kid"]],
            algorithms=["ES256"],
            audience=audience,
            issuer=self.issuer,
        )
        return claims

    async def userinfo(self, access_token: str) -> ClientResponse:
        return await self.http.get(
            f"{self.prefix}/api/v2/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )

    async def verify_userinfo(self, sign_in: SignIn) -> dict[str, Any]:
        response = await self.userinfo(sign_in.access_token)
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "application/jwt"
        return await self.verify(await response.text(), audience=sign_in.client_id)


@pytest.fixture
async def sandbox(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(create_app(sandbox_settings()))


@pytest.fixture
def citizens(sandbox: Client) -> RelyingParty:
    return RelyingParty(sandbox)


@pytest.fixture
def agents(sandbox: Client) -> RelyingParty:
    return RelyingParty(sandbox, "/agents")


@pytest.fixture(params=["", "/agents"], ids=["citizens", "agents"])
def each_provider(sandbox: Client, request: pytest.FixtureRequest) -> RelyingParty:
    """Each provider in turn, for what both must do alike."""
    return RelyingParty(sandbox, request.param)
