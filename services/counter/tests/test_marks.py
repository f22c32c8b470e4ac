"""``rebuild-marks``: after a restore, Redis's signed marks say what PostgreSQL holds."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from nats.js import JetStreamContext
from redis.asyncio.client import Pipeline

from paraphe_common.marks import MARKED_BYTES, SIGNED_VALUE, mark_of, signed_marks
from paraphe_counter import marks
from paraphe_counter.forgetting import forget_marks_of
from paraphe_counter.marks import rebuild, rebuild_marks
from paraphe_counter.settings import CounterSettings

Client = TestClient[web.Request, web.Application]
Sign = Callable[..., Awaitable[bytes]]
Counted = Callable[[str, int], Awaitable[None]]
StartCounter = Callable[..., Awaitable[Client]]


@pytest.fixture
async def pool(settings: CounterSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        settings.database_url.get_secret_value(), min_size=1, max_size=2
    )
    yield pool
    await pool.close()


async def mark_signed(client: aioredis.Redis, petition_id: str, key: bytes) -> None:
    """As intake does once JetStream has accepted the signature."""
    mark = mark_of(petition_id, key.hex())
    await client.hset(mark.bucket, mark.field, SIGNED_VALUE)


async def test_the_marks_are_rebuilt_from_the_stored_signatures(
    settings: CounterSettings,
    database: asyncpg.Connection,
    redis_client: aioredis.Redis,
    intake: JetStreamContext,
) -> None:
    petition, other = str(uuid.uuid4()), str(uuid.uuid4())
    # Keys at both ends of the buckets' range, and many more in between.
    stored = [bytes(32), b"\xff" * 32, b"\xff\xff" + os.urandom(30)]
    stored += [os.urandom(32) for _ in range(2_500)]
    await database.executemany(
        "INSERT INTO counter.signatures (petition_id, dedupe_key, signed_at)"
        " VALUES ($1, $2, date_trunc('hour', now(), 'UTC'))",
        [(petition, key) for key in stored] + [(other, stored[3])],
    )
    # What Redis holds after a loss and a restore: a mark for nothing stored, beside a stored
    # one in the same bucket and at the last bucket's end; a publish in flight; a mark of the
    # first layout (a key each).
    unfounded = [stored[3][:2] + os.urandom(30), b"\xff\xff" + bytes(30), os.urandom(32)]
    for key in [stored[3], *unfounded]:
        mark = mark_of(petition, key.hex())
        await redis_client.hset(mark.bucket, mark.field, SIGNED_VALUE)
    in_flight = mark_of(petition, os.urandom(32).hex()).pending
    await redis_client.set(in_flight, b"p", ex=60)
    legacy = f"sig:{petition}:{stored[4].hex()}"
    await redis_client.set(legacy, b"s")

    pool = await asyncpg.create_pool(
        settings.database_url.get_secret_value(), min_size=1, max_size=2
    )
    try:
        done = await rebuild(pool, redis_client, intake, kept_days=30)
    finally:
        await pool.close()

    assert (done.marked, done.removed, done.legacy_removed) == (len(stored) + 1, 3, 1)
    assert done.forgotten_buckets == 0
    assert await signed_marks(redis_client, petition) == {k[:MARKED_BYTES] for k in stored}
    assert await signed_marks(redis_client, other) == {stored[3][:MARKED_BYTES]}
    assert await redis_client.get(in_flight) == b"p"  # left to expire by itself
    assert await redis_client.exists(legacy) == 0


async def test_the_marks_of_petitions_past_their_keeping_are_not_rebuilt(
    settings: CounterSettings,
    database: asyncpg.Connection,
    redis_client: aioredis.Redis,
    intake: JetStreamContext,
) -> None:
    """Forgotten (or due to be, ``PARAPHE_MARKS_KEPT_DAYS`` after they ended): a rebuild
    neither brings their marks back nor keeps any a restored Redis still had."""
    forgotten, due, recent, never_ended = (str(uuid.uuid4()) for _ in range(4))
    await database.executemany(
        "INSERT INTO counter.ended_petitions (petition_id, ended_at, marks_forgotten_at)"
        " VALUES ($1, now() - make_interval(days => $2), $3)",
        [
            (forgotten, 40, datetime.now(UTC) - timedelta(days=10)),
            (due, 31, None),
            (recent, 29, None),
        ],
    )
    stored = {
        petition: [os.urandom(32) for _ in range(50)]
        for petition in (forgotten, due, recent, never_ended)
    }
    await database.executemany(
        "INSERT INTO counter.signatures (petition_id, dedupe_key, signed_at)"
        " VALUES ($1, $2, date_trunc('hour', now(), 'UTC'))",
        [(petition, key) for petition, keys in stored.items() for key in keys],
    )
    # A Redis restored from an old snapshot: marks of the forgotten petition, one unfounded.
    for key in [*stored[forgotten][:3], os.urandom(32)]:
        mark = mark_of(forgotten, key.hex())
        await redis_client.hset(mark.bucket, mark.field, SIGNED_VALUE)

    pool = await asyncpg.create_pool(
        settings.database_url.get_secret_value(), min_size=1, max_size=2
    )
    try:
        done = await rebuild(pool, redis_client, intake, kept_days=30)
    finally:
        await pool.close()

    assert (done.marked, done.removed, done.forgotten_buckets) == (100, 0, 4)
    assert await signed_marks(redis_client, forgotten) == set()
    assert await signed_marks(redis_client, due) == set()
    for petition in (recent, never_ended):
        assert await signed_marks(redis_client, petition) == {
            key[:MARKED_BYTES] for key in stored[petition]
        }


async def test_a_petition_forgotten_while_the_marks_are_written_stays_forgotten(
    database: asyncpg.Connection,
    redis_client: aioredis.Redis,
    intake: JetStreamContext,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    petition = str(uuid.uuid4())
    await database.execute(
        "INSERT INTO counter.ended_petitions (petition_id, ended_at)"
        " VALUES ($1, now() - make_interval(days => 29))",
        petition,
    )
    await database.executemany(
        "INSERT INTO counter.signatures (petition_id, dedupe_key, signed_at)"
        " VALUES ($1, $2, date_trunc('hour', now(), 'UTC'))",
        [(petition, os.urandom(32)) for _ in range(50)],
    )
    # The rebuild has read the signatures to mark (the petition's among them) when the
    # forgetting pass, a day later for it, removes the petition's buckets and records them
    # forgotten: then the rebuild writes its marks.
    execute = Pipeline.execute
    forgetting: list[str] = []

    async def forgotten_before_the_first_write(self: Pipeline, *args: Any) -> Any:
        if not forgetting:
            forgetting.append(petition)
            await database.execute(
                "UPDATE counter.ended_petitions SET ended_at = now() - make_interval(days => 31),"
                " marks_forgotten_at = now() WHERE petition_id = $1",
                petition,
            )
            await forget_marks_of(redis_client, petition)
        return await execute(self, *args)

    monkeypatch.setattr(Pipeline, "execute", forgotten_before_the_first_write)

    done = await rebuild(pool, redis_client, intake, kept_days=30)

    assert forgetting == [petition]
    assert done.marked == 50
    assert await signed_marks(redis_client, petition) == set()
    assert done.forgotten_buckets >= 1


async def test_a_mark_whose_signature_waits_in_jetstream_stays_once_the_counter_stores_it(
    redis_client: aioredis.Redis,
    intake: JetStreamContext,
    pool: asyncpg.Pool,
    petition: str,
    sign: Sign,
    start_counter: StartCounter,
    counted: Counted,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waiting = await sign(petition)  # answered 202, not stored yet: no counter runs
    await mark_signed(redis_client, petition, waiting)
    # The rebuild has found the mark without a stored signature when the counter starts and
    # stores the signature.
    last_accepted = marks.last_accepted

    async def counter_started_meanwhile(jetstream: JetStreamContext) -> int:
        accepted = await last_accepted(jetstream)
        await start_counter()
        await counted(petition, 1)
        return accepted

    monkeypatch.setattr(marks, "last_accepted", counter_started_meanwhile)

    done = await rebuild(pool, redis_client, intake, kept_days=30, grace=30)

    assert (done.removed, done.unfounded_kept) == (0, 0)
    assert await signed_marks(redis_client, petition) == {waiting[:MARKED_BYTES]}


async def test_rebuild_marks_with_the_counter_stopped_keeps_the_marks_and_fails(
    settings: CounterSettings,
    redis_client: aioredis.Redis,
    petition: str,
    sign: Sign,
    start_counter: StartCounter,
    counted: Counted,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(marks, "COUNTING_GRACE", 0.2)
    waiting = await sign(petition)
    await mark_signed(redis_client, petition, waiting)
    lost = os.urandom(32)  # a signature the restored backup does not hold
    await mark_signed(redis_client, petition, lost)

    # The counter stopped, the signature waits in JetStream: which mark is unfounded for good
    # cannot be told yet, so both stay and the command fails.
    with pytest.raises(SystemExit) as refused:
        await rebuild_marks(settings)
    assert refused.value.code == 1
    assert await signed_marks(redis_client, petition) == {
        waiting[:MARKED_BYTES],
        lost[:MARKED_BYTES],
    }

    # As the procedure says: the counter started and caught up, the command run again.
    await start_counter()
    await counted(petition, 1)
    await rebuild_marks(settings)
    assert await signed_marks(redis_client, petition) == {waiting[:MARKED_BYTES]}
