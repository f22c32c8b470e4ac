"""What the counter tells the operators: how much waits, since when, and how fresh the count is."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
Sign = Callable[..., Awaitable[bytes]]
Counted = Callable[[str, int], Awaitable[None]]
Until = Callable[..., Awaitable[None]]
Metric = Callable[[Client, str], Awaitable[float]]
MetricReaches = Callable[[Client, str, float], Awaitable[None]]

AGE = "counter_oldest_uncounted_signature_age_seconds"


async def test_signatures_waiting_show_in_the_backlog_and_the_age_of_the_oldest(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    metric: Metric,
    metric_reaches: MetricReaches,
    database: asyncpg.Connection,
) -> None:
    await metric_reaches(counter, AGE, 0)
    await database.execute("ALTER TABLE counter.signatures RENAME TO signatures_away")
    await asyncio.gather(*(sign(petition) for _ in range(5)))

    async def waiting_for_over_a_second() -> bool:
        backlog = await metric(counter, "counter_consumer_pending_messages") + await metric(
            counter, "counter_consumer_ack_pending_messages"
        )
        return backlog == 5 and await metric(counter, AGE) > 1.0

    await until(waiting_for_over_a_second)
    await database.execute("ALTER TABLE counter.signatures_away RENAME TO signatures")

    await counted(petition, 5)
    await metric_reaches(counter, AGE, 0)
    await metric_reaches(counter, "counter_consumer_ack_pending_messages", 0)


async def test_freshness_runs_from_jetstream_accepting_the_signature_to_its_commit(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    metric: Metric,
    database: asyncpg.Connection,
) -> None:
    # Accepted now, counted no sooner than 1.5 s later: the fetch is not where time starts.
    await database.execute("ALTER TABLE counter.signatures RENAME TO signatures_away")
    await asyncio.gather(*(sign(petition) for _ in range(4)))
    await asyncio.sleep(1.5)
    await database.execute("ALTER TABLE counter.signatures_away RENAME TO signatures")
    await counted(petition, 4)

    assert await metric(counter, "counter_count_freshness_seconds_count") == 4
    assert await metric(counter, 'counter_count_freshness_seconds_bucket{le="1.0"}') == 0
    assert await metric(counter, "counter_count_freshness_seconds_sum") >= 4 * 1.5
    assert await metric(counter, 'counter_count_freshness_seconds_bucket{le="60.0"}') == 4
    # Every message taken is in one batch observation or another, each observed once.
    assert await metric(counter, "counter_batch_size_signatures_sum") == 4


async def test_a_signature_already_counted_adds_no_freshness(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    metric: Metric,
    metric_reaches: MetricReaches,
) -> None:
    key = await sign(petition)
    await counted(petition, 1)
    # The same signature again, past JetStream's dedupe (as after a redelivery): stored
    # already, so neither counted nor measured a second time.
    await sign(petition, key, msg_id="published-again-after-the-dedupe-window")
    await metric_reaches(counter, "counter_duplicate_signatures_ignored_total", 1)

    assert await metric(counter, "counter_count_freshness_seconds_count") == 1
    assert await metric(counter, "counter_signatures_stored_total") == 1
