"""``rebuild-marks``: after a restore, Redis's signed marks say what PostgreSQL holds."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import redis.asyncio as aioredis

from paraphe_common.marks import MARKED_BYTES, SIGNED_VALUE, mark_of, signed_marks
from paraphe_counter.marks import rebuild
from paraphe_counter.settings import CounterSettings


async def test_the_marks_are_rebuilt_from_the_stored_signatures(
    settings: CounterSettings, database: asyncpg.Connection, redis_client: aioredis.Redis
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
        done = await rebuild(pool, redis_client, kept_days=30)
    finally:
        await pool.close()

    assert (done.marked, done.removed, done.legacy_removed) == (len(stored) + 1, 3, 1)
    assert done.forgotten_buckets == 0
    assert await signed_marks(redis_client, petition) == {k[:MARKED_BYTES] for k in stored}
    assert await signed_marks(redis_client, other) == {stored[3][:MARKED_BYTES]}
    assert await redis_client.get(in_flight) == b"p"  # left to expire by itself
    assert await redis_client.exists(legacy) == 0


async def test_the_marks_of_petitions_past_their_keeping_are_not_rebuilt(
    settings: CounterSettings, database: asyncpg.Connection, redis_client: aioredis.Redis
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
        done = await rebuild(pool, redis_client, kept_days=30)
    finally:
        await pool.close()

    assert (done.marked, done.removed, done.forgotten_buckets) == (100, 0, 4)
    assert await signed_marks(redis_client, forgotten) == set()
    assert await signed_marks(redis_client, due) == set()
    for petition in (recent, never_ended):
        assert await signed_marks(redis_client, petition) == {
            key[:MARKED_BYTES] for key in stored[petition]
        }
