"""The marks of petitions that ended ``PARAPHE_MARKS_KEPT_DAYS`` ago are forgotten, once."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from nats.js import JetStreamContext
from redis.exceptions import ConnectionError as RedisConnectionError

from paraphe_common.marks import MARKED_BYTES, SIGNED_VALUE, mark_of, signed_marks
from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.streams import petitions_bucket
from paraphe_counter.forgetting import MARKS_FORGETTING, MarksForgetting
from paraphe_devstack.servers import RedisServer

Client = TestClient[web.Request, web.Application]
DAY = 86_400.0
FORGOTTEN_PETITIONS = "counter_marks_forgotten_petitions_total"
FORGOTTEN_BUCKETS = "counter_marks_forgotten_buckets_total"


async def petition_in_state(intake: JetStreamContext, state: PetitionState) -> str:
    petition_id = str(uuid.uuid4())
    await publish_state(await petitions_bucket(intake), petition_id, state)
    return petition_id


async def mark_signatures(client: aioredis.Redis, petition_id: str, n: int = 5) -> set[bytes]:
    """Signed marks as intake leaves them, at both ends of the buckets' range and between."""
    keys = [bytes(32), b"\xff" * 32] + [os.urandom(32) for _ in range(n - 2)]
    for key in keys:
        mark = mark_of(petition_id, key.hex())
        await client.hset(mark.bucket, mark.field, SIGNED_VALUE)
    return {key[:MARKED_BYTES] for key in keys}


def forgetting_of(counter: Client) -> MarksForgetting:
    return counter.app[MARKS_FORGETTING]


async def first_passes_done(until: Callable[..., Awaitable[None]], *counters: Client) -> None:
    async def done() -> bool:
        return all(forgetting_of(counter).passes >= 1 for counter in counters)

    await until(done)


async def test_the_marks_of_petitions_ended_long_ago_are_forgotten_once(
    intake: JetStreamContext,
    start_counter: Callable[..., Awaitable[Client]],
    redis_client: aioredis.Redis,
    database: asyncpg.Connection,
    until: Callable[..., Awaitable[None]],
    metric: Callable[[Client, str], Awaitable[float]],
) -> None:
    now = time.time()
    closed_long_ago = await petition_in_state(intake, PetitionState("closed", now - 31 * DAY))
    past_deadline_long_ago = await petition_in_state(
        intake, PetitionState("published", now - 40 * DAY)
    )
    # Taken down while open: its state does not say when; the counter first saw it 31 days ago.
    hidden_long_ago = await petition_in_state(intake, PetitionState("hidden", now + 9 * DAY))
    await database.execute(
        "INSERT INTO counter.ended_petitions (petition_id, ended_at) VALUES ($1, $2)",
        hidden_long_ago,
        datetime.now(UTC) - timedelta(days=31),
    )
    closed_recently = await petition_in_state(intake, PetitionState("closed", now - 29 * DAY))
    hidden_now = await petition_in_state(intake, PetitionState("hidden", now + 9 * DAY))
    still_open = await petition_in_state(intake, PetitionState("published", now + 9 * DAY))
    forever_open = await petition_in_state(intake, PetitionState("published", None))
    ended = [closed_long_ago, past_deadline_long_ago, hidden_long_ago]
    kept = [closed_recently, hidden_now, still_open, forever_open]
    marks = {petition: await mark_signatures(redis_client, petition) for petition in ended + kept}
    unrelated = {b"limit:sign-in:x", b"count:" + closed_long_ago.encode()}
    for key in unrelated:
        await redis_client.set(key, b"1")

    counter = await start_counter()
    await first_passes_done(until, counter)

    for petition in ended:
        assert await signed_marks(redis_client, petition) == set(), petition
    for petition in kept:
        assert await signed_marks(redis_client, petition) == marks[petition], petition
    assert await redis_client.exists(*unrelated) == len(unrelated)
    assert await metric(counter, FORGOTTEN_PETITIONS) == 3
    assert await metric(counter, FORGOTTEN_BUCKETS) == 3 * 5  # five marks, five buckets each
    rows = await database.fetch(
        "SELECT petition_id::text, marks_forgotten_at IS NOT NULL AS forgotten"
        " FROM counter.ended_petitions"
    )
    assert {row["petition_id"]: row["forgotten"] for row in rows} == {
        **dict.fromkeys(ended, True),
        closed_recently: False,
        hidden_now: False,
    }

    # A second pass, later the same day, finds nothing to do and leaves the kept marks alone.
    again = await forgetting_of(counter).forget(time.time() + 3600)
    assert (again.petitions, again.buckets) == (0, 0)
    assert await metric(counter, FORGOTTEN_PETITIONS) == 3
    for petition in kept:
        assert await signed_marks(redis_client, petition) == marks[petition], petition

    # Two days on, the petition closed 29 days ago is due, the one seen hidden today is not.
    later = await forgetting_of(counter).forget(time.time() + 2 * DAY)
    assert (later.petitions, later.buckets) == (1, 5)
    assert await signed_marks(redis_client, closed_recently) == set()
    assert await signed_marks(redis_client, hidden_now) == marks[hidden_now]


async def test_replicas_forgetting_at_once_forget_each_petition_once(
    intake: JetStreamContext,
    start_counter: Callable[..., Awaitable[Client]],
    redis_client: aioredis.Redis,
    until: Callable[..., Awaitable[None]],
    metric: Callable[[Client, str], Awaitable[float]],
) -> None:
    now = time.time()
    ended = [
        await petition_in_state(intake, PetitionState("closed", now - (31 + n) * DAY))
        for n in range(6)
    ]
    for petition in ended:
        await mark_signatures(redis_client, petition, 3)
    replicas = await asyncio.gather(start_counter(), start_counter(), start_counter())
    await first_passes_done(until, *replicas)
    # And once more, all at the same moment.
    await asyncio.gather(*(forgetting_of(replica).forget(time.time()) for replica in replicas))

    for petition in ended:
        assert await signed_marks(redis_client, petition) == set(), petition
    forgotten = [await metric(replica, FORGOTTEN_PETITIONS) for replica in replicas]
    assert sum(forgotten) == len(ended)
    buckets = [await metric(replica, FORGOTTEN_BUCKETS) for replica in replicas]
    assert sum(buckets) == len(ended) * 3


async def test_a_pass_without_redis_waits_for_it_and_forgets_later(
    intake: JetStreamContext,
    start_counter: Callable[..., Awaitable[Client]],
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    database: asyncpg.Connection,
    until: Callable[..., Awaitable[None]],
    metric: Callable[[Client, str], Awaitable[float]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    counter = await start_counter(reconciliation_interval=0.2)
    forgetting = forgetting_of(counter)
    await first_passes_done(until, counter)
    caplog.set_level(logging.WARNING, logger="paraphe_counter.forgetting")

    redis_server.stop()
    ended = await petition_in_state(intake, PetitionState("closed", time.time() - 31 * DAY))

    async def failed() -> bool:
        return any("not forgotten yet" in record.message for record in caplog.records)

    await until(failed)
    passes = forgetting.passes
    row = "SELECT marks_forgotten_at FROM counter.ended_petitions WHERE petition_id = $1"
    # Recorded, not forgotten: its row rolled back. Held by the test while Redis comes back
    # (empty: this Redis keeps nothing on disk) and gets marks, the next passes skip it.
    async with database.transaction():
        assert await database.fetchval(row + " FOR UPDATE", ended) is None
        redis_server.start()
        await until(lambda: reachable(redis_client), within=15)
        await mark_signatures(redis_client, ended, 4)
        assert await signed_marks(redis_client, ended)

    async def forgotten() -> bool:
        return await metric(counter, FORGOTTEN_PETITIONS) == 1

    await until(forgotten, within=15)
    assert forgetting.passes > passes
    assert await signed_marks(redis_client, ended) == set()
    assert await database.fetchval(row, ended) is not None


async def reachable(client: aioredis.Redis) -> Any:
    try:
        return await client.ping()
    except (OSError, RedisConnectionError):
        return False
