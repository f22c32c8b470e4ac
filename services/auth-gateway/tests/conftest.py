"""A relying party (auth-gateway) on a real port, a browser with a cookie jar, redirects by hand."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from paraphe_auth_gateway.app import create_app
from paraphe_auth_gateway.settings import AuthGatewaySettings
from paraphe_devstack.browser import Browser
from paraphe_devstack.keys import SignerKey, SigningKey, new_pepper
from paraphe_devstack.rogue_provider import RogueProvider, RogueSetup
from paraphe_devstack.servers import RedisServer, free_port

CLIENT_ID = "paraphe-test"
CLIENT_SECRET = "a-client-secret-for-tests-only"
STAFF_ROLES = {"marie.moderatrice@assemblee.example": ["moderator"], "b" * 64: ["admin"]}

ServerFactory = Callable[..., "TestServer"]


def gateway_settings(
    *,
    port: int,
    redis_url: str,
    signing_key: SigningKey,
    signer_key: SignerKey,
    franceconnect_issuer: str,
    staff_issuer: str,
    catalog_url: str,
    client_secret: str = CLIENT_SECRET,
    scheme: str = "http",
    **overrides: Any,
) -> AuthGatewaySettings:
    return AuthGatewaySettings(
        public_url=f"{scheme}://127.0.0.1:{port}",
        redis_url=redis_url,
        token_signing_key=signing_key.private_pem,
        token_signing_key_id=signing_key.kid,
        token_verification_keys=signing_key.public_jwks,
        signer_token_keys=signer_key.secret_jwks,
        signer_token_key_id=signer_key.kid,
        franceconnect_issuer=franceconnect_issuer,
        franceconnect_client_id=CLIENT_ID,
        franceconnect_client_secret=client_secret,
        staff_issuer=staff_issuer,
        staff_client_id=CLIENT_ID,
        staff_client_secret=client_secret,
        signer_peppers=json.dumps({"1": new_pepper()}),
        catalog_url=catalog_url,
        **{"staff_roles": json.dumps(STAFF_ROLES)} | overrides,
    )


SettingsFactory = Callable[..., AuthGatewaySettings]


@pytest.fixture
def settings_with(signing_key: SigningKey, signer_key: SignerKey) -> SettingsFactory:
    """Settings of a gateway that is not started, with the test's ``overrides``."""

    def make(**overrides: Any) -> AuthGatewaySettings:
        return gateway_settings(
            port=8080,
            redis_url="redis://127.0.0.1:1",
            signing_key=signing_key,
            signer_key=signer_key,
            franceconnect_issuer="https://franceconnect.example",
            staff_issuer="https://agents.example",
            catalog_url="http://127.0.0.1:1",
            **overrides,
        )

    return make


BrowserFactory = Callable[..., Browser]


@pytest.fixture
async def browser_factory() -> AsyncIterator[BrowserFactory]:
    """Browsers for a gateway; ``behind_https``: the gateway is served over plain http here
    but its public URL is https (TLS ends at the proxy), so the browser sends it its Secure
    cookies, as a real browser sends them to the https site."""
    sessions: list[aiohttp.ClientSession] = []

    def make(gateway: str, *, behind_https: bool = False) -> Browser:
        jar = aiohttp.CookieJar(
            unsafe=True, treat_as_secure_origin=gateway if behind_https else None
        )
        session = aiohttp.ClientSession(cookie_jar=jar)
        sessions.append(session)
        return Browser(session, gateway)

    yield make
    for session in sessions:
        await session.close()


async def serve(app: web.Application, port: int) -> TestServer:
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    return server


@pytest.fixture
async def servers() -> AsyncIterator[list[TestServer]]:
    """Servers started by a test, closed after it in reverse order."""
    started: list[TestServer] = []
    yield started
    for server in reversed(started):
        await server.close()


RogueFactory = Callable[..., Awaitable[RogueSetup]]


@pytest.fixture
def start_rogue(
    redis_server: RedisServer,
    signing_key: SigningKey,
    signer_key: SignerKey,
    servers: list[TestServer],
    browser_factory: BrowserFactory,
) -> RogueFactory:
    """Starts auth-gateway whose citizens' and agents' provider is the test's rogue provider;
    ``scheme`` is its public URL's (https: production's cookies); ``overrides``, other settings.
    """

    async def start(*, scheme: str = "http", **overrides: Any) -> RogueSetup:
        provider_port, gateway_port = free_port(), free_port()
        issuer = f"http://127.0.0.1:{provider_port}"
        provider = RogueProvider(issuer, CLIENT_ID, CLIENT_SECRET)
        servers.append(await serve(provider.app(), provider_port))
        settings = gateway_settings(
            port=gateway_port,
            redis_url=redis_server.url,
            signing_key=signing_key,
            signer_key=signer_key,
            franceconnect_issuer=issuer,
            staff_issuer=issuer,
            catalog_url="http://127.0.0.1:1",
            scheme=scheme,
            **overrides,
        )
        servers.append(await serve(create_app(settings), gateway_port))
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        browser = browser_factory(gateway_url, behind_https=scheme == "https")
        return RogueSetup(provider, browser, gateway_url)

    return start


@pytest.fixture
async def rogue(start_rogue: RogueFactory) -> RogueSetup:
    """auth-gateway whose citizens' and agents' provider is the test's rogue provider."""
    return await start_rogue()
