"""A relying party (auth-gateway) on a real port, a browser with a cookie jar, redirects by hand."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

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
) -> AuthGatewaySettings:
    return AuthGatewaySettings(
        public_url=f"http://127.0.0.1:{port}",
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
        staff_roles=json.dumps(STAFF_ROLES),
        signer_peppers=json.dumps({"1": new_pepper()}),
        catalog_url=catalog_url,
    )


@pytest.fixture
async def browser_factory() -> AsyncIterator[Callable[[str], Browser]]:
    sessions: list[aiohttp.ClientSession] = []

    def make(gateway: str) -> Browser:
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
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


@pytest.fixture
async def rogue(
    redis_server: RedisServer,
    signing_key: SigningKey,
    signer_key: SignerKey,
    servers: list[TestServer],
    browser_factory: Callable[[str], Browser],
) -> RogueSetup:
    """auth-gateway whose citizens' and agents' provider is the test's rogue provider."""
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
    )
    servers.append(await serve(create_app(settings), gateway_port))
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    return RogueSetup(provider, browser_factory(gateway_url), gateway_url)
