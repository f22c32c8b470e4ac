"""Reaching a threshold emits one event, once, however many counters are counting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from asyncpg.pool import PoolConnectionProxy
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from redis.exceptions import ConnectionError as RedisConnectionError

from paraphe_common.streams import PETITION_EVENTS
from paraphe_counter import store
from paraphe_counter.consumer import CONSUMER, SETTLE_TIMEOUT
from paraphe_counter.reconciliation import RECONCILIATION
from paraphe_counter.signatures import Signature

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


def fail_once(failure: Exception) -> Callable[[], None]:
    """Raises ``failure`` the first time it is called, then nothing."""
    failures = [failure]

    def maybe_fail() -> None:
        if failures:
            raise failures.pop()

    return maybe_fail


@pytest.mark.parametrize("blip", ["redis", "postgresql"])
async def test_a_threshold_crossed_during_a_blip_is_announced_without_waiting_for_reconciliation(
    blip: str,
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    database: asyncpg.Connection,
    announcements: list[Msg],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reconciliation (at start, then hourly in these settings) has done its first pass: what
    # announces the threshold below is the counting loop.
    await until(lambda: _passed(counter))
    consumer = counter.app[CONSUMER]
    # The first settle to see 5 signatures records the threshold, then loses Redis (raising
    # the total) or PostgreSQL (reading the totals) for a moment.
    if blip == "redis":
        blip_once = fail_once(RedisConnectionError("Redis went away for a moment"))
        raise_to = consumer._totals.raise_to

        async def flaky_raise_to(totals: Mapping[str, int]) -> None:
            if totals.get(petition, 0) >= 5:
                blip_once()
            await raise_to(totals)

        monkeypatch.setattr(consumer._totals, "raise_to", flaky_raise_to)
    else:
        blip_once = fail_once(asyncpg.ConnectionDoesNotExistError("PostgreSQL went away"))
        counted_totals = store.counted_totals

        async def flaky_counted_totals(
            db: store.Queryable, petitions: Collection[str]
        ) -> dict[str, int]:
            totals = await counted_totals(db, petitions)
            if totals.get(petition, 0) >= 5:
                blip_once()
            return totals

        monkeypatch.setattr(store, "counted_totals", flaky_counted_totals)

    for _ in range(5):  # the first threshold in these settings
        await sign(petition)

    await counted(petition, 5)
    await until(lambda: all_published(database, 1))
    assert [json.loads(message.data)["threshold"] for message in announcements] == [5]


async def test_a_batch_whose_commit_went_through_unseen_is_settled_when_stored_again(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    database: asyncpg.Connection,
    announcements: list[Msg],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The commit of the batch that brings the petition to 5 goes through, but the counter does
    # not see it (STORE_TIMEOUT expiring as PostgreSQL commits; a crash before the settle is
    # the same for the batch delivered again): the batch is stored again and adds nothing.
    await until(lambda: _passed(counter))
    store_batch = store.store_batch
    timed_out = fail_once(TimeoutError())

    async def committed_unseen(
        connection: PoolConnectionProxy[asyncpg.Record],
        signatures: Iterable[Signature],
        shard: int,
    ) -> store.StoredBatch:
        stored = await store_batch(connection, signatures, shard)
        if await store.counted_total(connection, petition) >= 5:
            timed_out()
        return stored

    monkeypatch.setattr(store, "store_batch", committed_unseen)
    for _ in range(5):
        await sign(petition)

    # Its petition is settled all the same: total served, threshold recorded and announced.
    await counted(petition, 5)
    await until(lambda: all_published(database, 1))
    assert [json.loads(message.data)["threshold"] for message in announcements] == [5]


async def _passed(counter: Client) -> bool:
    return counter.app[RECONCILIATION].passes >= 1


async def test_a_threshold_recorded_unseen_is_announced_without_waiting_for_reconciliation(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    database: asyncpg.Connection,
    announcements: list[Msg],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The threshold row is committed, then the connection drops before its answer arrives: no
    # later insert returns the row, so only the rows left unpublished can announce it.
    await until(lambda: _passed(counter))
    record_thresholds_reached = store.record_thresholds_reached
    answer_lost = fail_once(asyncpg.ConnectionDoesNotExistError("connection was closed"))

    async def committed_answer_lost(
        db: store.Queryable, thresholds: Sequence[int], petitions: Collection[str]
    ) -> list[store.ThresholdReached]:
        reached = await record_thresholds_reached(db, thresholds, petitions)
        if reached:
            answer_lost()
        return reached

    monkeypatch.setattr(store, "record_thresholds_reached", committed_answer_lost)
    for _ in range(5):
        await sign(petition)

    await counted(petition, 5)
    await until(lambda: all_published(database, 1))
    assert [json.loads(message.data)["threshold"] for message in announcements] == [5]


class _SlowJetStream:
    """A JetStream that takes each threshold event's publish long, then gives up on it."""

    async def publish(self, *_: object, **__: object) -> None:
        await asyncio.sleep(SETTLE_TIMEOUT / 2 + 1)
        raise TimeoutError


async def test_threshold_events_slow_to_publish_hold_no_total_back(
    counter: Client,
    petition: str,
    sign: Sign,
    tally: Callable[[str], Awaitable[dict[str, int | None]]],
    until: Until,
    database: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await until(lambda: _passed(counter))
    monkeypatch.setattr(counter.app[CONSUMER]._events, "_jetstream", _SlowJetStream())
    for _ in range(10):  # both thresholds in these settings: two events waiting, each slow
        await sign(petition)

    async def recorded_both() -> bool:
        return bool(await database.fetchval("SELECT count(*) = 2 FROM counter.thresholds_reached"))

    await until(recorded_both, within=30)
    await sign(petition)

    async def raised() -> bool:
        return (await tally(petition))["redis"] == 11

    # Each settle now spends longer publishing than a settle may hold PostgreSQL: the totals
    # still rise, once the publishing has given up.
    await until(raised, within=45)
