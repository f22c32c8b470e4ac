"""The catalogue on a migrated database holding the demo petitions."""

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from paraphe_common.migrations import upgrade
from paraphe_devstack.keys import SigningKey
from paraphe_devstack.servers import NatsServer
from paraphe_petition_catalog.__main__ import MIGRATIONS
from paraphe_petition_catalog.app import create_app
from paraphe_petition_catalog.demo import DEMO_PETITIONS, load_demo_petitions
from paraphe_petition_catalog.settings import PetitionCatalogSettings

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def catalog(
    aiohttp_client: AiohttpClient,
    database_url: str,
    nats_server: NatsServer,
    signing_key: SigningKey,
) -> Client:
    upgrade(database_url, "catalog", MIGRATIONS)
    assert await load_demo_petitions(database_url) == len(DEMO_PETITIONS)
    settings = PetitionCatalogSettings(
        database_url=database_url,
        nats_url=nats_server.url,
        token_verification_keys=signing_key.public_jwks,
    )
    return await aiohttp_client(create_app(settings))
