"""Rebuild signature-intake's Redis marks from the stored signatures, after a restore.

Intake answers "already signed" from a mark ``sig:<petition>:<dedupe key>`` = ``s`` in Redis;
the counter's rows are the truth. After PostgreSQL is restored from a backup, or Redis is lost,
the two disagree: marks of signatures the backup does not hold would tell their signers they
signed when nothing counts them, and missing marks cost duplicate publishes (that PostgreSQL
still refuses to count). ``paraphe-counter rebuild-marks`` makes Redis say what PostgreSQL
holds: every stored signature marked ``s``, every ``s`` mark without a stored signature
removed. Pending marks (``p``, a publish in flight) are left to expire by themselves.

Whatever Redis says, nobody is counted twice: ``UNIQUE(petition_id, dedupe_key)`` decides.
The command reads and writes in bounded chunks and may run while intake signs: a signature
counted meanwhile is marked by intake itself, and one accepted but not yet stored may lose its
mark, which costs a repeat a duplicate publish, never a count.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Final

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_common.resources import POSTGRES, REDIS, postgres, redis
from paraphe_counter.settings import CounterSettings

log = logging.getLogger(__name__)

# signature-intake's mark (paraphe_signature_intake.signatures.mark_key): its format is the
# contract between the two services, proven by tests/test_backup_restore.py.
MARK_PREFIX: Final = "sig:"
SIGNED: Final = b"s"
CHUNK: Final = 1000


def mark_of(petition_id: str, dedupe_key: str) -> str:
    return f"{MARK_PREFIX}{petition_id}:{dedupe_key}"


@dataclass(frozen=True)
class Rebuilt:
    marked: int
    removed: int


async def mark_stored_signatures(pool: asyncpg.Pool, client: aioredis.Redis) -> int:
    """Every stored signature marked signed; returns how many."""
    marked = 0
    async with pool.acquire() as connection, connection.transaction(readonly=True):
        rows = connection.cursor(
            "SELECT petition_id::text, encode(dedupe_key, 'hex') FROM counter.signatures",
            prefetch=CHUNK,
        )
        chunk: dict[str, bytes] = {}
        async for petition_id, key in rows:
            chunk[mark_of(petition_id, key)] = SIGNED
            if len(chunk) >= CHUNK:
                await client.mset(chunk)
                marked += len(chunk)
                chunk = {}
        if chunk:
            await client.mset(chunk)
            marked += len(chunk)
    return marked


def _parse(mark: str) -> tuple[uuid.UUID, bytes] | None:
    _, petition_id, key = mark.split(":", 2) if mark.count(":") == 2 else ("", "", "")
    try:
        return uuid.UUID(petition_id), bytes.fromhex(key)
    except ValueError:
        return None


async def remove_unfounded_marks(pool: asyncpg.Pool, client: aioredis.Redis) -> int:
    """Every signed mark without a stored signature removed; returns how many."""
    removed = 0
    cursor = 0
    while True:
        cursor, found = await client.scan(cursor, match=f"{MARK_PREFIX}*", count=CHUNK)
        marks = [m.decode() if isinstance(m, bytes) else str(m) for m in found]
        values = await client.mget(marks) if marks else []
        signed = {
            mark: parsed
            for mark, value in zip(marks, values, strict=True)
            if value == SIGNED and (parsed := _parse(mark)) is not None
        }
        if signed:
            stored = await pool.fetch(
                """
                SELECT petition_id::text, encode(dedupe_key, 'hex') FROM counter.signatures
                WHERE (petition_id, dedupe_key) IN (SELECT * FROM unnest($1::uuid[], $2::bytea[]))
                """,
                [p for p, _ in signed.values()],
                [k for _, k in signed.values()],
            )
            kept = {mark_of(petition_id, key) for petition_id, key in stored}
            unfounded = [mark for mark in signed if mark not in kept]
            if unfounded:
                removed += await client.unlink(*unfounded)
        if cursor == 0:
            return removed


async def rebuild(pool: asyncpg.Pool, client: aioredis.Redis) -> Rebuilt:
    marked = await mark_stored_signatures(pool, client)
    removed = await remove_unfounded_marks(pool, client)
    return Rebuilt(marked, removed)


async def rebuild_marks(settings: CounterSettings) -> None:
    """``paraphe-counter rebuild-marks``: connect, rebuild, say how many, close."""
    app = create_service_app("counter", settings, [postgres(settings), redis(settings)])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        done = await rebuild(app[POSTGRES], app[REDIS])
    finally:
        await runner.cleanup()
    log.info(
        "signature marks rebuilt from the stored signatures",
        extra={"marked": done.marked, "removed": done.removed},
    )
