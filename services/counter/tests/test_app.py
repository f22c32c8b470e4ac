from pytest_aiohttp import AiohttpClient

from paraphe_counter.app import create_app
from paraphe_counter.settings import CounterSettings
from paraphe_devstack.checks import assert_probes_answer
from paraphe_devstack.servers import NatsServer, RedisServer


async def test_boots_with_postgresql_and_redis_and_nats_and_answers_its_probes(
    aiohttp_client: AiohttpClient,
    database_url: str,
    redis_server: RedisServer,
    nats_server: NatsServer,
) -> None:
    settings = CounterSettings(
        database_url=database_url, redis_url=redis_server.url, nats_url=nats_server.url
    )
    client = await aiohttp_client(create_app(settings))
    await assert_probes_answer(client, ["postgresql", "redis", "nats"])
