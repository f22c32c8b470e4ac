"""Rebuild signature-intake's Redis marks from the stored signatures, after a restore.

Intake answers "already signed" from a signed mark in Redis (a field of a bucket, laid out by
``paraphe_common.marks``); the counter's rows are the truth. After PostgreSQL is restored from
a backup, or Redis is lost, the two disagree: marks of signatures the backup does not hold would
tell their signers they signed when nothing counts them, and missing marks cost duplicate
publishes (that PostgreSQL still refuses to count). ``paraphe-counter rebuild-marks`` makes
Redis say what PostgreSQL holds: every stored signature marked signed, every signed mark
without a stored signature removed, and the marks of paraphe's first layout (one key each,
``sig:<petition>:<key>``) removed once their signatures are marked the new way. Pending marks
(a publish in flight) are left to expire by themselves. The marks of a petition ended more than
``PARAPHE_MARKS_KEPT_DAYS`` ago, or already forgotten (``counter.ended_petitions``,
``paraphe_counter.forgetting``), are not rebuilt, and any found are removed, bucket by bucket.

Whatever Redis says, nobody is counted twice: ``UNIQUE(petition_id, dedupe_key)`` decides.
The command reads and writes in bounded chunks and may run while intake signs: a signature
counted meanwhile is marked by intake itself, and one accepted but not yet stored may lose its
mark, which costs a repeat a duplicate publish, never a count.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Final

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_common.marks import SIGNED_PREFIX, SIGNED_VALUE, parse_bucket, signed_mark_of
from paraphe_common.resources import POSTGRES, REDIS, postgres, redis
from paraphe_counter.settings import CounterSettings

log = logging.getLogger(__name__)

CHUNK: Final = 1000
# The marks of paraphe's first layout, a key per signature.
LEGACY_PATTERN: Final = "sig:*"


# The petitions whose marks are no longer kept: forgotten, or due to be ($1: days kept).
_FORGOTTEN: Final = """
    SELECT petition_id::text FROM counter.ended_petitions
    WHERE marks_forgotten_at IS NOT NULL OR ended_at <= now() - make_interval(days => $1)
"""
# Every stored signature but those ($1: days kept).
_KEPT_SIGNATURES: Final = """
    SELECT petition_id::text, dedupe_key FROM counter.signatures s
    WHERE NOT EXISTS (
        SELECT FROM counter.ended_petitions e WHERE e.petition_id = s.petition_id
        AND (e.marks_forgotten_at IS NOT NULL
            OR e.ended_at <= now() - make_interval(days => $1))
    )
"""


@dataclass(frozen=True)
class Rebuilt:
    marked: int
    removed: int
    legacy_removed: int
    forgotten_buckets: int


async def forgotten_petitions(pool: asyncpg.Pool, kept_days: int) -> set[str]:
    rows = await pool.fetch(_FORGOTTEN, kept_days)
    return {row["petition_id"] for row in rows}


async def mark_stored_signatures(pool: asyncpg.Pool, client: aioredis.Redis, kept_days: int) -> int:
    """Every stored signature of a petition whose marks are kept marked signed; returns how
    many."""
    marked = 0

    async def write(chunk: dict[str, dict[bytes, int]]) -> int:
        async with client.pipeline(transaction=False) as pipe:
            for bucket, fields in chunk.items():
                pipe.hset(bucket, mapping=fields)  # type: ignore[arg-type]
            await pipe.execute()
        return sum(len(fields) for fields in chunk.values())

    async with pool.acquire() as connection, connection.transaction(readonly=True):
        rows = connection.cursor(_KEPT_SIGNATURES, kept_days, prefetch=CHUNK)
        chunk: dict[str, dict[bytes, int]] = defaultdict(dict)
        rows_in_chunk = 0
        async for petition_id, key in rows:
            bucket, field = signed_mark_of(petition_id, key)
            chunk[bucket][field] = SIGNED_VALUE
            rows_in_chunk += 1
            if rows_in_chunk >= CHUNK:
                marked += await write(chunk)
                chunk, rows_in_chunk = defaultdict(dict), 0
        if chunk:
            marked += await write(chunk)
    return marked


def _after(prefix: bytes) -> bytes:
    """The least byte string above every key that starts with ``prefix``."""
    value = int.from_bytes(prefix, "big") + 1
    if value >> (8 * len(prefix)):  # all 0xff: above every dedupe key (32 bytes)
        return b"\xff" * 33
    return value.to_bytes(len(prefix), "big")


async def remove_unfounded_marks(
    pool: asyncpg.Pool, client: aioredis.Redis, forgotten: set[str]
) -> tuple[int, int]:
    """Every signed mark without a stored signature removed, and every bucket of a forgotten
    petition; returns how many of each."""
    removed = buckets_removed = 0
    cursor = 0
    while True:
        cursor, found = await client.scan(
            cursor, match=f"{SIGNED_PREFIX}*", count=CHUNK, _type="hash"
        )
        buckets = [
            (name, parsed)
            for name in (b.decode() if isinstance(b, bytes) else str(b) for b in found)
            if (parsed := parse_bucket(name)) is not None
        ]
        stale = [name for name, (petition_id, _) in buckets if petition_id in forgotten]
        if stale:
            buckets_removed += await client.unlink(*stale)
            buckets = [bucket for bucket in buckets if bucket[1][0] not in forgotten]
        async with client.pipeline(transaction=False) as pipe:
            for name, _ in buckets:
                pipe.hkeys(name)
            fields_of: list[list[bytes]] = await pipe.execute()
        # Every mark of the page: its bucket, its field, the keys it stands for.
        marks = [
            (name, field, petition_id, first + field)
            for (name, (petition_id, first)), fields in zip(buckets, fields_of, strict=True)
            for field in fields
        ]
        if marks:
            unfounded = await pool.fetch(
                """
                SELECT m.i FROM unnest($1::uuid[], $2::bytea[], $3::bytea[])
                    WITH ORDINALITY AS m (petition_id, low, high, i)
                WHERE NOT EXISTS (
                    SELECT FROM counter.signatures s WHERE s.petition_id = m.petition_id
                    AND s.dedupe_key >= m.low AND s.dedupe_key < m.high
                )
                """,
                [petition_id for _, _, petition_id, _ in marks],
                [prefix for _, _, _, prefix in marks],
                [_after(prefix) for _, _, _, prefix in marks],
            )
            if unfounded:
                by_bucket: dict[str, list[bytes]] = defaultdict(list)
                for row in unfounded:
                    name, field, _, _ = marks[row["i"] - 1]
                    by_bucket[name].append(field)
                async with client.pipeline(transaction=False) as pipe:
                    for name, fields in by_bucket.items():
                        pipe.hdel(name, *fields)
                    removed += sum(await pipe.execute())
        if cursor == 0:
            return removed, buckets_removed


async def remove_legacy_marks(client: aioredis.Redis) -> int:
    """The marks of the first layout, once their signatures are marked the new way."""
    removed = 0
    cursor = 0
    while True:
        cursor, found = await client.scan(cursor, match=LEGACY_PATTERN, count=CHUNK)
        if found:
            removed += await client.unlink(*found)
        if cursor == 0:
            return removed


async def rebuild(pool: asyncpg.Pool, client: aioredis.Redis, *, kept_days: int) -> Rebuilt:
    forgotten = await forgotten_petitions(pool, kept_days)
    marked = await mark_stored_signatures(pool, client, kept_days)
    removed, forgotten_buckets = await remove_unfounded_marks(pool, client, forgotten)
    legacy_removed = await remove_legacy_marks(client)
    return Rebuilt(marked, removed, legacy_removed, forgotten_buckets)


async def rebuild_marks(settings: CounterSettings) -> None:
    """``paraphe-counter rebuild-marks``: connect, rebuild, say how many, close."""
    app = create_service_app("counter", settings, [postgres(settings), redis(settings)])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        done = await rebuild(app[POSTGRES], app[REDIS], kept_days=settings.marks_kept_days)
    finally:
        await runner.cleanup()
    log.info(
        "signature marks rebuilt from the stored signatures",
        extra={
            "marked": done.marked,
            "removed": done.removed,
            "legacy_removed": done.legacy_removed,
            "forgotten_buckets": done.forgotten_buckets,
        },
    )
