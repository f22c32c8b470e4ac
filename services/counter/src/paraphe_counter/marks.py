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
``paraphe_counter.forgetting``), are not rebuilt, and any found are removed, bucket by bucket;
a petition forgotten while the command wrote has its buckets removed again at the end.

Whatever Redis says, nobody is counted twice: ``UNIQUE(petition_id, dedupe_key)`` decides.
The command reads and writes in bounded chunks and may run while intake signs and the counter
counts. Intake marks a signature signed once JetStream holds it, so a mark without a stored
signature may be one still on its way: such marks are removed only once the counter has
stored every signature JetStream held when they were found (it waits up to ``grace`` for
that), and only those still without a stored signature then. A counter stopped or behind
keeps them all, and the command ends in failure, to be run again once it has caught up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from paraphe_common.app import create_service_app
from paraphe_common.marks import SIGNED_PREFIX, SIGNED_VALUE, parse_bucket, signed_mark_of
from paraphe_common.resources import JETSTREAM, POSTGRES, REDIS, nats_connection, postgres, redis
from paraphe_common.runner import refuse
from paraphe_common.streams import SIGNATURES
from paraphe_counter.consumer import ACK_WAIT_SECONDS
from paraphe_counter.forgetting import forget_marks_of
from paraphe_counter.settings import CounterSettings

log = logging.getLogger(__name__)

CHUNK: Final = 1000
# The marks of paraphe's first layout, a key per signature.
LEGACY_PATTERN: Final = "sig:*"
# Seconds the command waits at most for the counter to store the signatures JetStream held when
# it found marks without a stored signature: a running counter stores them within a second, a
# batch lost with a replica is delivered again after ACK_WAIT_SECONDS.
COUNTING_GRACE: Final = 4 * ACK_WAIT_SECONDS
_COUNTING_POLL: Final = 0.5


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
    # Marks without a stored signature left in place: the counter had not caught up.
    unfounded_kept: int = 0


@dataclass(frozen=True, slots=True)
class SignedMark:
    bucket: str
    field: bytes
    petition_id: str
    prefix: bytes  # the first bytes of the dedupe keys it stands for


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


async def _unfounded(pool: asyncpg.Pool, marks: Sequence[SignedMark]) -> list[SignedMark]:
    """The marks no stored signature stands behind."""
    rows = await pool.fetch(
        """
        SELECT m.i FROM unnest($1::uuid[], $2::bytea[], $3::bytea[])
            WITH ORDINALITY AS m (petition_id, low, high, i)
        WHERE NOT EXISTS (
            SELECT FROM counter.signatures s WHERE s.petition_id = m.petition_id
            AND s.dedupe_key >= m.low AND s.dedupe_key < m.high
        )
        """,
        [mark.petition_id for mark in marks],
        [mark.prefix for mark in marks],
        [_after(mark.prefix) for mark in marks],
    )
    return [marks[row["i"] - 1] for row in rows]


async def find_unfounded_marks(
    pool: asyncpg.Pool, client: aioredis.Redis, forgotten: set[str]
) -> tuple[list[SignedMark], int]:
    """Every signed mark without a stored signature, left in place; every bucket of a
    forgotten petition removed (how many)."""
    unfounded: list[SignedMark] = []
    buckets_removed = 0
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
        marks = [
            SignedMark(name, field, petition_id, first + field)
            for (name, (petition_id, first)), fields in zip(buckets, fields_of, strict=True)
            for field in fields
        ]
        if marks:
            unfounded += await _unfounded(pool, marks)
        if cursor == 0:
            return unfounded, buckets_removed


async def remove_unfounded_marks(
    pool: asyncpg.Pool, client: aioredis.Redis, marks: Sequence[SignedMark]
) -> int:
    """The marks still without a stored signature removed; returns how many."""
    removed = 0
    for start in range(0, len(marks), CHUNK):
        unfounded = await _unfounded(pool, marks[start : start + CHUNK])
        if unfounded:
            by_bucket: dict[str, list[bytes]] = defaultdict(list)
            for mark in unfounded:
                by_bucket[mark.bucket].append(mark.field)
            async with client.pipeline(transaction=False) as pipe:
                for name, fields in by_bucket.items():
                    pipe.hdel(name, *fields)
                removed += sum(await pipe.execute())
    return removed


async def last_accepted(jetstream: JetStreamContext) -> int:
    """The sequence of the last signature JetStream accepted; 0 when none ever was."""
    try:
        return (await jetstream.stream_info(SIGNATURES)).state.last_seq
    except NotFoundError:
        return 0


async def counted_up_to(jetstream: JetStreamContext, sequence: int, *, within: float) -> bool:
    """Whether every signature JetStream accepted up to ``sequence`` has left it within
    ``within`` seconds: SIGNATURES is a work queue, and the counter acknowledges a signature
    (which removes it) once it is stored."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            state = (await jetstream.stream_info(SIGNATURES)).state
        except NotFoundError:
            return True  # no stream: no signature waits
        if state.messages == 0 or state.first_seq > sequence:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(_COUNTING_POLL)


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


async def rebuild(
    pool: asyncpg.Pool,
    client: aioredis.Redis,
    jetstream: JetStreamContext,
    *,
    kept_days: int,
    grace: float = COUNTING_GRACE,
) -> Rebuilt:
    forgotten = await forgotten_petitions(pool, kept_days)
    marked = await mark_stored_signatures(pool, client, kept_days)
    unfounded, forgotten_buckets = await find_unfounded_marks(pool, client, forgotten)
    removed = kept = 0
    if unfounded:
        # Each mark found was set after JetStream accepted its signature, hence at or before
        # this sequence: once the counter has stored up to it, a mark still unfounded is.
        accepted = await last_accepted(jetstream)
        log.info(
            "%d signed marks without a stored signature; waiting up to %.0f s for the counter"
            " to store the signatures JetStream holds",
            len(unfounded),
            grace,
        )
        if await counted_up_to(jetstream, accepted, within=grace):
            removed = await remove_unfounded_marks(pool, client, unfounded)
        else:
            kept = len(unfounded)
    legacy_removed = await remove_legacy_marks(client)
    # A petition forgotten while the stored signatures were marked may have had marks
    # written back after the forgetting removed its buckets, and is never forgotten again.
    for petition_id in await forgotten_petitions(pool, kept_days) - forgotten:
        forgotten_buckets += await forget_marks_of(client, petition_id)
    return Rebuilt(marked, removed, legacy_removed, forgotten_buckets, kept)


async def rebuild_marks(settings: CounterSettings) -> None:
    """``paraphe-counter rebuild-marks``: connect, rebuild, say how many, close."""
    app = create_service_app(
        "counter",
        settings,
        [postgres(settings), redis(settings), nats_connection(settings, name="counter")],
    )
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        done = await rebuild(
            app[POSTGRES],
            app[REDIS],
            app[JETSTREAM],
            kept_days=settings.marks_kept_days,
            grace=COUNTING_GRACE,
        )
    finally:
        await runner.cleanup()
    log.info(
        "signature marks rebuilt from the stored signatures",
        extra={
            "marked": done.marked,
            "removed": done.removed,
            "legacy_removed": done.legacy_removed,
            "forgotten_buckets": done.forgotten_buckets,
            "unfounded_kept": done.unfounded_kept,
        },
    )
    if done.unfounded_kept:
        # Removing them could tell people whose signature is on its way that they did not
        # sign; kept, they tell those the backup lost that they did: run again, soon.
        refuse(
            "counter",
            f"rebuild-marks kept {done.unfounded_kept} signed marks without a stored signature:"
            " signatures accepted before they were found still wait in JetStream. Start the"
            " counter, wait until counter_consumer_pending_messages and"
            " counter_consumer_ack_pending_messages are 0, then run rebuild-marks again.",
            1,
        )
