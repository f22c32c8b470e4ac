"""Reconciliation repairs counts from the stored signatures and publishes forgotten events."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from nats.aio.msg import Msg

from paraphe_counter.reconciliation import RECONCILIATION, Reconciliation

Client = TestClient[web.Request, web.Application]
Sign = Callable[..., Awaitable[bytes]]
Counted = Callable[[str, int], Awaitable[None]]
Until = Callable[..., Awaitable[None]]
Tally = Callable[[str], Awaitable[dict[str, int | None]]]
Metric = Callable[[Client, str], Awaitable[float]]
StartCounter = Callable[..., Awaitable[Client]]


async def first_pass_done(client: Client, until: Until) -> Reconciliation:
    """The pass made at start, so a test's corruption is found by the pass it runs itself."""
    reconciliation = client.app[RECONCILIATION]

    async def done() -> bool:
        return reconciliation.passes >= 1

    await until(done)
    return reconciliation


async def store_signatures(database: asyncpg.Connection, petition_id: str, count: int) -> None:
    """Signatures as a batch stores them, without the follow-up a crash would have prevented."""
    await database.executemany(
        "INSERT INTO counter.signatures (petition_id, dedupe_key, signed_at)"
        " VALUES ($1, $2, date_trunc('hour', now(), 'UTC'))",
        [(petition_id, os.urandom(32)) for _ in range(count)],
    )
    await database.execute(
        "INSERT INTO counter.count_shards (petition_id, shard, signatures) VALUES ($1, 3, $2)",
        petition_id,
        count,
    )


async def test_a_corrupted_shard_and_wrong_redis_totals_are_repaired_and_reported(
    counter: Client,
    petition: str,
    other_petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    tally: Tally,
    metric: Metric,
    database: asyncpg.Connection,
    redis_client: aioredis.Redis,
) -> None:
    reconciliation = await first_pass_done(counter, until)
    await asyncio.gather(*(sign(petition) for _ in range(6)))
    await asyncio.gather(*(sign(other_petition) for _ in range(3)))
    await counted(petition, 6)
    await counted(other_petition, 3)

    await database.execute(
        "UPDATE counter.count_shards SET signatures = signatures + 100 WHERE petition_id = $1",
        petition,
    )
    await redis_client.set(f"count:{petition}", 999)
    await redis_client.set(f"count:{other_petition}", 1)

    outcome = await reconciliation.reconcile()

    assert (outcome.shards_repaired, outcome.redis_totals_repaired) == (1, 2)
    assert await tally(petition) == {"stored": 6, "counted": 6, "redis": 6}
    assert await tally(other_petition) == {"stored": 3, "counted": 3, "redis": 3}
    shards = await database.fetch(
        "SELECT shard, signatures FROM counter.count_shards WHERE petition_id = $1", petition
    )
    assert [tuple(shard) for shard in shards] == [(0, 6)]
    sample = "counter_reconciliation_discrepancies_total"
    assert await metric(counter, f'{sample}{{store="shards"}}') == 1
    assert await metric(counter, f'{sample}{{store="redis"}}') == 2
    # Repaired counts agree: a second pass finds nothing.
    again = await reconciliation.reconcile()
    assert (again.shards_repaired, again.redis_totals_repaired) == (0, 0)
    # Counting goes on from the repaired shard.
    await sign(petition)
    await counted(petition, 7)


async def test_replicas_reconciling_at_once_repair_once(
    start_counter: StartCounter,
    petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    tally: Tally,
    database: asyncpg.Connection,
) -> None:
    replicas = [await start_counter(), await start_counter()]
    reconciliations = [await first_pass_done(replica, until) for replica in replicas]
    for _ in range(4):
        await sign(petition)
    await counted(petition, 4)
    await database.execute(
        "INSERT INTO counter.count_shards (petition_id, shard, signatures) VALUES ($1, 15, 40)"
        " ON CONFLICT (petition_id, shard) DO UPDATE SET signatures = 40",
        petition,
    )

    outcomes = await asyncio.gather(*(r.reconcile() for r in reconciliations))

    assert sorted(outcome.shards_repaired for outcome in outcomes) == [0, 1]
    assert await tally(petition) == {"stored": 4, "counted": 4, "redis": 4}


async def test_a_threshold_left_unannounced_by_a_crash_is_announced_at_start(
    start_counter: StartCounter,
    petition: str,
    other_petition: str,
    until: Until,
    database: asyncpg.Connection,
    announcements: list[Msg],
) -> None:
    # Crashed after committing the threshold row, before publishing its event.
    await store_signatures(database, petition, 6)
    await database.execute(
        "INSERT INTO counter.thresholds_reached (petition_id, threshold, signatures)"
        " VALUES ($1, 5, 6)",
        petition,
    )
    # Crashed after committing a batch, before recording the thresholds it reached.
    await store_signatures(database, other_petition, 12)

    counter = await start_counter()
    await first_pass_done(counter, until)

    async def all_announced() -> bool:
        return len(announcements) >= 3

    await until(all_announced)
    announced = sorted(
        (event["petition_id"], event["threshold"], event["signatures"])
        for event in (json.loads(message.data) for message in announcements)
    )
    assert announced == sorted(
        [(petition, 5, 6), (other_petition, 5, 12), (other_petition, 10, 12)]
    )
    unpublished = await database.fetchval(
        "SELECT count(*) FROM counter.thresholds_reached WHERE published_at IS NULL"
    )
    assert unpublished == 0
