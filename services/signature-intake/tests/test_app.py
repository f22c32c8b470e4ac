from pytest_aiohttp import AiohttpClient

from paraphe_devstack.checks import assert_probes_answer
from paraphe_devstack.servers import NatsServer, RedisServer
from paraphe_signature_intake.app import create_app
from paraphe_signature_intake.settings import SignatureIntakeSettings


async def test_boots_with_redis_and_nats_and_answers_its_probes(
    aiohttp_client: AiohttpClient, redis_server: RedisServer, nats_server: NatsServer
) -> None:
    settings = SignatureIntakeSettings(redis_url=redis_server.url, nats_url=nats_server.url)
    client = await aiohttp_client(create_app(settings))
    await assert_probes_answer(client, ["redis", "nats"])
