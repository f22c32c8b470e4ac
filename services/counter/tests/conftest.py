"""A counter on real PostgreSQL, Redis and NATS, fed the way signature-intake feeds it.

Fixtures give standard types or plain callables: test modules cannot import from each other or
from this file (pytest imports them with importlib).
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import nats
import nats.errors
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pytest_aiohttp import AiohttpClient
from redis.exceptions import ConnectionError as RedisConnectionError

from paraphe_common.app import install_fast_route
from paraphe_common.migrations import upgrade
from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.streams import (
    ensure_signatures_stream,
    petition_event_subject,
    petitions_bucket,
    signature_subject,
)
from paraphe_counter.__main__ import MIGRATIONS
from paraphe_counter.app import create_app
from paraphe_counter.settings import CounterSettings
from paraphe_devstack.servers import NatsServer, RedisServer

Client = TestClient[web.Request, web.Application]
Sign = Callable[..., Awaitable[bytes]]
Tally = Callable[[str], Awaitable[dict[str, int | None]]]
StartCounter = Callable[..., Awaitable[Client]]


@pytest.fixture
def settings(
    database_url: str, redis_server: RedisServer, nats_server: NatsServer
) -> CounterSettings:
    """A migrated database, and intervals short enough for tests to watch them."""
    upgrade(database_url, "counter", MIGRATIONS)
    return CounterSettings(
        database_url=database_url,
        redis_url=redis_server.url,
        nats_url=nats_server.url,
        thresholds=(5, 10),
        fetch_timeout=0.05,
        count_refresh_interval=0.05,
        count_stream_heartbeat=0.2,
        backlog_interval=0.1,
        reconciliation_interval=3600,
    )


@pytest.fixture
async def intake(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    """JetStream as signature-intake sees it: it publishes signatures and nothing else."""
    connection: NatsClient = await nats.connect(
        nats_server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1
    )
    jetstream = connection.jetstream()
    await ensure_signatures_stream(jetstream)
    yield jetstream
    await connection.close()


async def open_petition(jetstream: JetStreamContext) -> str:
    petition_id = str(uuid.uuid4())
    bucket = await petitions_bucket(jetstream)
    await publish_state(bucket, petition_id, PetitionState("published", None))
    return petition_id


@pytest.fixture
async def petition(intake: JetStreamContext) -> str:
    """An open petition, published to the petition states before any counter starts."""
    return await open_petition(intake)


@pytest.fixture
async def other_petition(intake: JetStreamContext) -> str:
    return await open_petition(intake)


@pytest.fixture
def sign(intake: JetStreamContext) -> Sign:
    """Publish one signature exactly as intake does; returns its dedupe key."""

    async def sign(petition_id: str, key: bytes | None = None, msg_id: str | None = None) -> bytes:
        key = key if key is not None else os.urandom(32)
        # Like intake, publish again until JetStream acknowledges (it recognises the repeat).
        async with asyncio.timeout(15):
            while True:
                try:
                    await intake.publish(
                        signature_subject(petition_id),
                        key.hex().encode(),
                        timeout=1,
                        headers={"Nats-Msg-Id": msg_id or key.hex()},
                    )
                except nats.errors.Error:
                    await asyncio.sleep(0.1)
                else:
                    return key

    return sign


@pytest.fixture
async def start_counter(
    settings: CounterSettings, intake: JetStreamContext, aiohttp_client: AiohttpClient
) -> StartCounter:
    """Start a counter replica (a test may start several on the same stores).

    Asked after the servers and the intake connection, so replicas stop before them.
    """

    async def start(**overrides: Any) -> Client:
        client = await aiohttp_client(create_app(settings.model_copy(update=overrides)))
        # As the service runs it (paraphe_common.runner): fresh counts answered before routing.
        assert isinstance(client.server.runner, web.AppRunner)
        install_fast_route(client.server.runner)
        return client

    return start


@pytest.fixture
async def counter(start_counter: StartCounter, petition: str, other_petition: str) -> Client:
    return await start_counter()


@pytest.fixture
async def database(settings: CounterSettings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(settings.database_url.get_secret_value())
    yield connection
    await connection.close()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def tally(database: asyncpg.Connection, redis_client: aioredis.Redis) -> Tally:
    """A petition's stored signatures, the sum of its shards and its Redis total."""

    async def tally(petition_id: str) -> dict[str, int | None]:
        stored = await database.fetchval(
            "SELECT count(*) FROM counter.signatures WHERE petition_id = $1", petition_id
        )
        counted = await database.fetchval(
            "SELECT sum(signatures)::bigint FROM counter.count_shards WHERE petition_id = $1",
            petition_id,
        )
        try:
            served = await redis_client.get(f"count:{petition_id}")
        except RedisConnectionError:
            served = None  # a test restarted Redis; the next look reconnects
        return {
            "stored": stored,
            "counted": counted,
            "redis": int(served) if served is not None else None,
        }

    return tally


async def wait_until(probe: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not await probe():
            await asyncio.sleep(0.02)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    """Poll a condition until it holds, failing the test past a deadline."""
    return wait_until


@pytest.fixture
def counted(tally: Tally) -> Callable[[str, int], Awaitable[None]]:
    """Wait until a petition's signatures are stored, counted and served, all equal to n."""

    async def counted(petition_id: str, signatures: int) -> None:
        expected = {"stored": signatures, "counted": signatures, "redis": signatures}
        last: dict[str, int | None] = {}

        async def settled() -> bool:
            nonlocal last
            last = await tally(petition_id)
            return last == expected

        try:
            await wait_until(settled)
        except TimeoutError:
            pytest.fail(f"expected {expected}, still {last}")

    return counted


async def read_metric(client: Client, sample: str) -> float:
    """The value of one sample on /metrics, 0 when absent."""
    text = await (await client.get("/metrics")).text()
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def metric() -> Callable[[Client, str], Awaitable[float]]:
    return read_metric


@pytest.fixture
def metric_reaches(until: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Wait until a sample on /metrics has the given value."""

    async def metric_reaches(client: Client, sample: str, value: float) -> None:
        async def reached() -> bool:
            return await read_metric(client, sample) == value

        await until(reached)

    return metric_reaches


@pytest.fixture
async def announcements(nats_server: NatsServer) -> AsyncIterator[list[Msg]]:
    """Every threshold event as published, before JetStream's dedupe could hide a repeat."""
    connection = await nats.connect(nats_server.url)
    received: list[Msg] = []

    async def receive(message: Msg) -> None:
        received.append(message)

    await connection.subscribe(petition_event_subject("threshold-reached"), cb=receive)
    await connection.flush()
    yield received
    await connection.close()
