import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from paraphe_common.resources import DependencyUnavailable
from paraphe_counter.app import create_app
from paraphe_counter.settings import CounterSettings
from paraphe_devstack.checks import assert_probes_answer
from paraphe_devstack.servers import NatsServer, RedisServer

Client = TestClient[web.Request, web.Application]


async def test_boots_with_its_dependencies_and_answers_its_probes(counter: Client) -> None:
    await assert_probes_answer(
        counter, ["consumer", "nats", "petition-states", "postgresql", "redis"]
    )


async def test_refuses_to_start_on_a_database_not_migrated(
    database_url: str, redis_server: RedisServer, nats_server: NatsServer
) -> None:
    settings = CounterSettings(
        database_url=database_url, redis_url=redis_server.url, nats_url=nats_server.url
    )
    runner = web.AppRunner(create_app(settings))
    try:
        with pytest.raises(DependencyUnavailable, match="run `paraphe-counter migrate` first"):
            await runner.setup()
    finally:
        await runner.cleanup()
