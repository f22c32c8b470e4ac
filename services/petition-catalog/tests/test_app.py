from pytest_aiohttp import AiohttpClient

from paraphe_devstack.checks import assert_probes_answer
from paraphe_devstack.keys import SigningKey
from paraphe_devstack.servers import NatsServer
from paraphe_petition_catalog.app import create_app
from paraphe_petition_catalog.settings import PetitionCatalogSettings


async def test_boots_with_postgresql_and_nats_and_answers_its_probes(
    aiohttp_client: AiohttpClient,
    database_url: str,
    nats_server: NatsServer,
    signing_key: SigningKey,
) -> None:
    settings = PetitionCatalogSettings(
        database_url=database_url,
        nats_url=nats_server.url,
        token_verification_keys=signing_key.public_jwks,
    )
    client = await aiohttp_client(create_app(settings))
    await assert_probes_answer(client, ["postgresql", "nats"])
