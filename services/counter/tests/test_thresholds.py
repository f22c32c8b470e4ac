"""Reaching a threshold emits one event, once, however many counters are counting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from paraphe_common.streams import PETITION_EVENTS
from paraphe_counter.reconciliation import RECONCILIATION

Client = TestClient[web.Request, web.Application]
Sign = Callable[..., Awaitable[bytes]]
Counted = Callable[[str, int], Awaitable[None]]
Until = Callable[..., Awaitable[None]]
StartCounter = Callable[..., Awaitable[Client]]
Metric = Callable[[Client, str], Awaitable[float]]


async def all_published(database: asyncpg.Connection, rows: int) -> bool:
    published = await database.fetchval(
        "SELECT count(*) FROM counter.thresholds_reached WHERE published_at IS NOT NULL"
    )
    return bool(published == rows)


async def test_each_threshold_is_announced_once_even_with_two_counters(
    start_counter: StartCounter,
    petition: str,
    other_petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    database: asyncpg.Connection,
    intake: JetStreamContext,
    announcements: list[Msg],
    metric: Metric,
) -> None:
    # Small batches, so both replicas get a share of the signatures.
    replicas = [await start_counter(batch_size=10), await start_counter(batch_size=10)]

    async def started() -> bool:
        return all(replica.app[RECONCILIATION].passes >= 1 for replica in replicas)

    await until(started)
    await asyncio.gather(
        *(sign(petition) for _ in range(12)), *(sign(other_petition) for _ in range(400))
    )

    await counted(petition, 12)
    await counted(other_petition, 400)
    await until(lambda: all_published(database, 4))
    stored = [await metric(replica, "counter_signatures_stored_total") for replica in replicas]
    assert all(stored)  # both replicas counted
    assert sum(stored) == 412

    announced = []
    for message in announcements:
        event = json.loads(message.data)
        assert message.headers == {
            "Nats-Msg-Id": f"threshold-reached:{event['petition_id']}:{event['threshold']}"
        }
        assert event["signatures"] >= event["threshold"]
        assert datetime.fromisoformat(event["reached_at"]).tzinfo is not None
        announced.append((event["petition_id"], event["threshold"]))
    assert sorted(announced) == sorted(
        [(petition, 5), (petition, 10), (other_petition, 5), (other_petition, 10)]
    )
    assert (await intake.stream_info(PETITION_EVENTS)).state.messages == 4
    assert sum([await metric(r, "counter_threshold_events_total") for r in replicas]) == 4


async def test_a_count_below_every_threshold_announces_nothing(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    database: asyncpg.Connection,
    announcements: list[Msg],
) -> None:
    for _ in range(4):
        await sign(petition)
    await counted(petition, 4)
    assert await database.fetchval("SELECT count(*) FROM counter.thresholds_reached") == 0
    assert announcements == []
