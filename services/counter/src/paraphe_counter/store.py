"""The counter's queries. Parameters are always bound, never interpolated.

A petition's count is the sum of its shards in ``counter.count_shards``; the truth behind it is
the number of its rows in ``counter.signatures``. Batches add to the shards under a shared
advisory lock and reconciliation repairs them under the exclusive one, so a repair never
interleaves with a batch it would undo.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import zlib
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

import asyncpg

from paraphe_counter.signatures import Signature

# The advisory lock key both sides agree on; the migrations lock on the schema's crc32, so this
# one is derived from another name.
COUNT_SHARDS_LOCK: Final = zlib.crc32(b"counter.count_shards")
# The shard a repaired count is written to, alone.
REPAIR_SHARD: Final = 0

if TYPE_CHECKING:
    from typing import TypeAlias

    from asyncpg.pool import PoolConnectionProxy

    _Connection = PoolConnectionProxy[asyncpg.Record]
    # Where a query runs: any connection of the pool, or one held (bounded_connection).
    Queryable: TypeAlias = asyncpg.Pool | _Connection


async def is_migrated(pool: asyncpg.Pool) -> bool:
    """The schema has the newest revision's columns."""
    try:
        await pool.execute(
            "SELECT signatures, published_at FROM counter.thresholds_reached LIMIT 0"
        )
        await pool.execute(
            "SELECT ended_at, marks_forgotten_at FROM counter.ended_petitions LIMIT 0"
        )
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
        return False
    return True


@contextlib.asynccontextmanager
async def bounded_connection(pool: asyncpg.Pool, seconds: float) -> AsyncIterator[_Connection]:
    """A connection whose work must be over within ``seconds``: past them it is closed, and
    whatever waits on it fails at once.

    Cancelling a query is not enough: asyncpg waits for the server to acknowledge the
    cancellation (and the ROLLBACK after it) before it gives the connection back, and a silent
    server (its processes stopped, or an address a failover left behind) never does.
    """
    async with pool.acquire(timeout=seconds) as connection:
        deadline = asyncio.get_running_loop().call_later(seconds, connection.terminate)
        try:
            yield connection
        finally:
            deadline.cancel()


# ---- batches -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """The signatures of a batch stored for the first time, hence counted."""

    keys: frozenset[tuple[str, bytes]]  # (petition id, dedupe key) of each
    per_petition: dict[str, int]

    @property
    def signatures(self) -> int:
        return len(self.keys)


NOTHING_STORED: Final = StoredBatch(frozenset(), {})


async def store_batch(
    connection: _Connection, signatures: Iterable[Signature], shard: int
) -> StoredBatch:
    """Store the signatures not stored yet and add them to ``shard`` of their petitions.

    One transaction: either the rows and the counts are both written, or neither, so a
    redelivered batch finds its rows and adds 0.
    """
    firsts: dict[tuple[str, bytes], Signature] = {}
    for signature in signatures:
        firsts.setdefault((signature.petition_id, signature.dedupe_key), signature)
    # A constant order, shared by every replica, so two batches wanting the same index entries
    # or shard rows take them in the same order and wait for each other instead of deadlocking.
    rows = [firsts[key] for key in sorted(firsts)]
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock_shared($1)", COUNT_SHARDS_LOCK)
        inserted = await connection.fetch(
            """
            INSERT INTO counter.signatures (petition_id, dedupe_key, signed_at)
            SELECT petition_id, dedupe_key, date_trunc('hour', signed_at, 'UTC')
            FROM unnest($1::uuid[], $2::bytea[], $3::timestamptz[])
                AS batch(petition_id, dedupe_key, signed_at)
            ON CONFLICT DO NOTHING
            RETURNING petition_id, dedupe_key
            """,
            [row.petition_id for row in rows],
            [row.dedupe_key for row in rows],
            [row.signed_at for row in rows],
        )
        stored = collections.Counter(str(row["petition_id"]) for row in inserted)
        if stored:
            petitions = sorted(stored)
            await connection.execute(
                """
                INSERT INTO counter.count_shards AS shards (petition_id, shard, signatures)
                SELECT petition_id, $2, added FROM unnest($1::uuid[], $3::bigint[])
                    AS batch(petition_id, added)
                ON CONFLICT (petition_id, shard)
                DO UPDATE SET signatures = shards.signatures + EXCLUDED.signatures
                """,
                petitions,
                shard,
                [stored[petition] for petition in petitions],
            )
    return StoredBatch(
        frozenset((str(row["petition_id"]), bytes(row["dedupe_key"])) for row in inserted),
        dict(stored),
    )


async def counted_totals(db: Queryable, petitions: Collection[str]) -> dict[str, int]:
    """The committed count of each petition (0 for a petition with no signature yet)."""
    rows = await db.fetch(
        """
        SELECT petition_id, coalesce(sum(signatures), 0)::bigint AS signatures
        FROM unnest($1::uuid[]) AS asked(petition_id)
        LEFT JOIN counter.count_shards USING (petition_id)
        GROUP BY petition_id
        """,
        list(petitions),
    )
    return {str(row["petition_id"]): row["signatures"] for row in rows}


async def counted_total(db: Queryable, petition_id: str) -> int:
    total = await db.fetchval(
        "SELECT coalesce(sum(signatures), 0)::bigint FROM counter.count_shards"
        " WHERE petition_id = $1",
        petition_id,
    )
    return int(total)


# ---- thresholds ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdReached:
    petition_id: str
    threshold: int
    signatures: int
    reached_at: datetime


def _threshold(row: asyncpg.Record) -> ThresholdReached:
    return ThresholdReached(
        str(row["petition_id"]), row["threshold"], row["signatures"], row["reached_at"]
    )


async def record_thresholds_reached(
    db: Queryable, thresholds: Sequence[int], petitions: Collection[str]
) -> list[ThresholdReached]:
    """Record each threshold the committed count of a petition has reached and that was not
    recorded yet.

    Only the committed count is read: two batches committed together may each miss the other,
    but the later of them reads after both commits, so no crossing goes unseen. The primary key
    makes this the one place that decides who emits an event, whatever the number of replicas.
    """
    if not thresholds or not petitions:
        return []
    rows = await db.fetch(
        """
        INSERT INTO counter.thresholds_reached (petition_id, threshold, signatures)
        SELECT totals.petition_id, threshold, totals.signatures
        FROM (
            SELECT petition_id, sum(signatures)::bigint AS signatures
            FROM counter.count_shards
            WHERE petition_id = ANY($2::uuid[])
            GROUP BY petition_id
        ) AS totals
        CROSS JOIN unnest($1::integer[]) AS threshold
        WHERE totals.signatures >= threshold
        ORDER BY totals.petition_id, threshold
        ON CONFLICT DO NOTHING
        RETURNING petition_id, threshold, signatures, reached_at
        """,
        list(thresholds),
        list(petitions),
    )
    return [_threshold(row) for row in rows]


async def unpublished_thresholds(db: Queryable) -> list[ThresholdReached]:
    rows = await db.fetch(
        "SELECT petition_id, threshold, signatures, reached_at FROM counter.thresholds_reached"
        " WHERE published_at IS NULL ORDER BY reached_at"
    )
    return [_threshold(row) for row in rows]


async def mark_published(db: Queryable, reached: ThresholdReached) -> None:
    await db.execute(
        "UPDATE counter.thresholds_reached SET published_at = now()"
        " WHERE petition_id = $1 AND threshold = $2 AND published_at IS NULL",
        reached.petition_id,
        reached.threshold,
    )


# ---- reconciliation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    petition_id: str
    stored: int  # rows in counter.signatures: the truth
    counted: int  # sum of the shards: what is served

    @property
    def agrees(self) -> bool:
        return self.stored == self.counted


async def tally_every_petition(pool: asyncpg.Pool) -> list[Tally]:
    """Stored and counted signatures of every petition, from one snapshot.

    A batch writes its rows and its shard in one transaction, so in one snapshot the two agree
    unless a count is wrong; reading without a lock leaves the batches running meanwhile.
    """
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await connection.fetch("""
            SELECT petition_id,
                   coalesce(stored.signatures, 0)::bigint AS stored,
                   coalesce(counted.signatures, 0)::bigint AS counted
            FROM (
                SELECT petition_id, count(*) AS signatures
                FROM counter.signatures GROUP BY petition_id
            ) AS stored
            FULL JOIN (
                SELECT petition_id, sum(signatures) AS signatures
                FROM counter.count_shards GROUP BY petition_id
            ) AS counted USING (petition_id)
        """)
    return [Tally(str(row["petition_id"]), row["stored"], row["counted"]) for row in rows]


async def _tally(connection: _Connection, petitions: Collection[str]) -> list[Tally]:
    rows = await connection.fetch(
        """
        SELECT petition_id,
               (SELECT count(*) FROM counter.signatures s
                WHERE s.petition_id = asked.petition_id) AS stored,
               (SELECT coalesce(sum(signatures), 0)::bigint FROM counter.count_shards c
                WHERE c.petition_id = asked.petition_id) AS counted
        FROM unnest($1::uuid[]) AS asked(petition_id)
        ORDER BY petition_id
        """,
        list(petitions),
    )
    return [Tally(str(row["petition_id"]), row["stored"], row["counted"]) for row in rows]


class CountRepair:
    """Inside the exclusive lock: no batch commits, so the truth cannot move under us."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    async def tally(self, petitions: Collection[str]) -> list[Tally]:
        return await _tally(self._connection, petitions)

    async def replace_shards(self, exact: Mapping[str, int]) -> None:
        """Replace each petition's shards by one shard holding its exact count."""
        petitions = sorted(exact)
        await self._connection.execute(
            "DELETE FROM counter.count_shards WHERE petition_id = ANY($1::uuid[])", petitions
        )
        await self._connection.execute(
            """
            INSERT INTO counter.count_shards (petition_id, shard, signatures)
            SELECT petition_id, $2, signatures
            FROM unnest($1::uuid[], $3::bigint[]) AS exact(petition_id, signatures)
            """,
            petitions,
            REPAIR_SHARD,
            [exact[petition] for petition in petitions],
        )


@contextlib.asynccontextmanager
async def count_repair(pool: asyncpg.Pool) -> AsyncIterator[CountRepair]:
    """A transaction holding the exclusive lock: batches wait until it commits."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", COUNT_SHARDS_LOCK)
        yield CountRepair(connection)
