"""/readyz follows the dependencies: 503 naming the one that went away, 200 once it is back."""

import asyncio
import signal

from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from paraphe_common.app import create_service_app
from paraphe_common.problems import PROBLEM_CONTENT_TYPE
from paraphe_common.resources import nats_connection, redis
from paraphe_common.settings import NatsSettings, RedisSettings, ServiceSettings
from paraphe_devstack.servers import NatsServer, RedisServer

Client = TestClient[web.Request, web.Application]


class Settings(ServiceSettings, RedisSettings, NatsSettings):
    pass


async def start(
    aiohttp_client: AiohttpClient, redis_server: RedisServer, nats_server: NatsServer
) -> Client:
    settings = Settings(redis_url=redis_server.url, nats_url=nats_server.url)
    app = create_service_app(
        "example", settings, [redis(settings), nats_connection(settings, name="example")]
    )
    return await aiohttp_client(app)


async def ready_status(client: Client, want: int, within: float = 10.0) -> int:
    """Poll /readyz until it answers ``want`` (clients reconnect in the background)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status = (await client.get("/readyz")).status
        if status == want or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.1)


async def test_readyz_turns_503_naming_redis_and_recovers_without_restart(
    aiohttp_client: AiohttpClient, redis_server: RedisServer, nats_server: NatsServer
) -> None:
    client = await start(aiohttp_client, redis_server, nats_server)
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["dependencies"] == ["nats", "redis"]

    redis_server.stop()
    response = await client.get("/readyz")
    assert response.status == 503
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert response.headers["Retry-After"] == "5"
    body = await response.json()
    assert body["unavailable"] == ["redis"]
    assert body["type"] == "urn:paraphe:problem:dependency-unavailable"
    assert "redis" in body["detail"]
    metrics = await (await client.get("/metrics")).text()
    assert 'dependency_up{dependency="redis"} 0.0' in metrics
    assert 'dependency_up{dependency="nats"} 1.0' in metrics

    redis_server.start()
    assert await ready_status(client, 200) == 200
    assert (await client.get("/healthz")).status == 200


async def test_readyz_turns_503_naming_nats_and_recovers_without_restart(
    aiohttp_client: AiohttpClient, redis_server: RedisServer, nats_server: NatsServer
) -> None:
    client = await start(aiohttp_client, redis_server, nats_server)
    assert (await client.get("/readyz")).status == 200

    nats_server.stop()
    assert await ready_status(client, 503) == 503
    body = await (await client.get("/readyz")).json()
    assert body["unavailable"] == ["nats"]

    nats_server.start()
    assert await ready_status(client, 200) == 200


async def test_a_hung_dependency_cannot_hold_the_probe(
    aiohttp_client: AiohttpClient, redis_server: RedisServer, nats_server: NatsServer
) -> None:
    client = await start(aiohttp_client, redis_server, nats_server)
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        # Without the readiness timeout this request would wait as long as Redis sleeps.
        async with asyncio.timeout(5):
            response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["unavailable"] == ["redis"]
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
