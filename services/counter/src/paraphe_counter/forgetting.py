"""Forget intake's marks of the petitions that ended ``PARAPHE_MARKS_KEPT_DAYS`` ago.

A signed mark (``paraphe_common.marks``) answers "already signed" fast while a petition may be
signed; PostgreSQL's unique key is what counts. Once a petition ended (closed at its deadline,
or taken down) nobody can sign it, and its marks only tell a signer, for a while, that they
signed. Kept for ever they would fill Redis (``maxmemory``, ``noeviction``: full, it refuses
sign-ins), so each pass of every counter replica, at start and every
``PARAPHE_RECONCILIATION_INTERVAL``:

1. records in ``counter.ended_petitions`` when each petition ended, from the petition states
   (its deadline; for a take-down, which the state does not date, the moment it was first
   seen hidden: late, never early), the earliest seen kept;
2. for each petition ended more than ``PARAPHE_MARKS_KEPT_DAYS`` ago whose marks are still
   kept, and which its current state still says ended, takes its row under
   ``FOR UPDATE SKIP LOCKED`` (two replicas never work on one petition), UNLINKs its 65,536
   possible buckets (names known in advance: no SCAN of the keyspace) in pipelined batches,
   then records the marks forgotten and commits.

Pending marks (``pending:<petition>:<key>``) need nothing: intake sets them only while signing
an open petition, and they expire after a minute. A pass with nothing to do reads the states in
memory and makes one indexed query. Redis or PostgreSQL down: the petition's row stays as it
was (its transaction rolls back), the pass says so in a log line, and the next one, sooner,
takes it up; UNLINK of buckets already gone does nothing, so a repeated petition costs only
time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from paraphe_common.marks import buckets_of
from paraphe_common.petition_states import PETITION_STATES, PetitionStates
from paraphe_common.resources import POSTGRES, REDIS, CleanupContext, running
from paraphe_counter.metrics import COUNTER_METRICS, CounterMetrics
from paraphe_counter.settings import CounterSettings

log = logging.getLogger(__name__)

# Buckets named in one UNLINK, and UNLINKs sent in one round trip: 65,536 buckets are 8 round
# trips, each command a short one for Redis, so signing goes on between them.
UNLINK_KEYS: Final = 1024
UNLINKS_A_ROUND_TRIP: Final = 8
# Seconds one petition's buckets may take (well under one when Redis answers).
FORGET_TIMEOUT: Final = 60.0
_RETRY_AFTER_FAILURE: Final = 10.0
_ERRORS: Final = (
    RedisError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)


@dataclass(frozen=True)
class Forgotten:
    petitions: int
    buckets: int


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def forget_marks_of(client: aioredis.Redis, petition_id: str) -> int:
    """UNLINK every bucket of a petition's signed marks; how many existed."""
    removed = 0
    names = buckets_of(petition_id)
    while batch := list(itertools.islice(names, UNLINK_KEYS * UNLINKS_A_ROUND_TRIP)):
        async with client.pipeline(transaction=False) as pipe:
            for start in range(0, len(batch), UNLINK_KEYS):
                pipe.unlink(*batch[start : start + UNLINK_KEYS])
            removed += sum(await pipe.execute())
    return removed


class MarksForgetting:
    def __init__(
        self,
        settings: CounterSettings,
        pool: asyncpg.Pool,
        client: aioredis.Redis,
        states: PetitionStates,
        metrics: CounterMetrics,
    ) -> None:
        self._kept = timedelta(days=settings.marks_kept_days)
        self._interval = settings.reconciliation_interval
        self._pool = pool
        self._client = client
        self._states = states
        self._metrics = metrics
        # When each petition ended as this process last recorded it (or found it recorded):
        # a pass sends PostgreSQL only what is new. None until read once.
        self._recorded: dict[str, float] | None = None
        self.passes = 0  # completed, for operators and tests

    async def forget(self, now: float) -> Forgotten:
        """One pass at ``now`` (seconds since the epoch)."""
        await self._record_ended(now)
        due = await self._pool.fetch(
            """
            SELECT petition_id::text FROM counter.ended_petitions
            WHERE marks_forgotten_at IS NULL AND ended_at <= $1
            ORDER BY ended_at
            """,
            _moment(now) - self._kept,
        )
        petitions = buckets = 0
        for row in due:
            petition_id = row["petition_id"]
            state = self._states.get(petition_id)
            if state is None or state.ended_at(now) is None:
                continue  # not known as ended now (cannot happen today): left alone
            removed = await self._forget_one(petition_id)
            if removed is not None:
                petitions += 1
                buckets += removed
        self.passes += 1
        return Forgotten(petitions, buckets)

    async def _record_ended(self, now: float) -> None:
        if self._recorded is None:
            rows = await self._pool.fetch(
                "SELECT petition_id::text, extract(epoch FROM ended_at)::float8 AS ended_at"
                " FROM counter.ended_petitions"
            )
            self._recorded = {row["petition_id"]: row["ended_at"] for row in rows}
        recorded = self._recorded
        new = [
            (petition_id, ended_at)
            for petition_id, state in self._states.items()
            if (ended_at := state.ended_at(now)) is not None
            and ended_at < recorded.get(petition_id, float("inf"))
            and _is_uuid(petition_id)
        ]
        if not new:
            return
        # The earliest moment seen wins, whichever replica saw it.
        await self._pool.execute(
            """
            INSERT INTO counter.ended_petitions (petition_id, ended_at)
            SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
            ON CONFLICT (petition_id) DO UPDATE SET ended_at = excluded.ended_at
                WHERE excluded.ended_at < ended_petitions.ended_at
            """,
            [petition_id for petition_id, _ in new],
            [_moment(ended_at) for _, ended_at in new],
        )
        recorded.update(new)

    async def _forget_one(self, petition_id: str) -> int | None:
        """Forget one petition's marks under its row's lock; None when another replica holds
        it or did it."""
        async with self._pool.acquire() as connection, connection.transaction():
            taken = await connection.fetchval(
                """
                SELECT true FROM counter.ended_petitions
                WHERE petition_id = $1 AND marks_forgotten_at IS NULL
                FOR UPDATE SKIP LOCKED
                """,
                petition_id,
            )
            if not taken:
                return None
            # A Redis that hangs (a stopped process, a partition) holds the row no longer.
            async with asyncio.timeout(FORGET_TIMEOUT):
                removed = await forget_marks_of(self._client, petition_id)
            await connection.execute(
                "UPDATE counter.ended_petitions SET marks_forgotten_at = now()"
                " WHERE petition_id = $1",
                petition_id,
            )
        self._metrics.marks_forgotten_petitions.inc()
        self._metrics.marks_forgotten_buckets.inc(removed)
        log.info(
            "petition %s ended over %d days ago: its signature marks forgotten",
            petition_id,
            self._kept.days,
            extra={"petition_id": petition_id, "buckets": removed},
        )
        return removed

    async def run_periodically(self) -> None:
        while True:
            delay = self._interval
            try:
                await self.forget(datetime.now(UTC).timestamp())
            except _ERRORS as exc:
                log.warning("signature marks not forgotten yet (%r); trying again later", exc)
                delay = min(delay, _RETRY_AFTER_FAILURE)
            except Exception:  # the next pass may succeed; this one is logged
                log.exception("forgetting signature marks failed")
                delay = min(delay, _RETRY_AFTER_FAILURE)
            await asyncio.sleep(delay)


MARKS_FORGETTING = web.AppKey("marks_forgetting", MarksForgetting)


def marks_forgetting(settings: CounterSettings) -> CleanupContext:
    """A pass at start, then one every interval; needs PostgreSQL, Redis and the states."""

    async def forget_ended_petitions_marks(app: web.Application) -> AsyncIterator[None]:
        forgetting = MarksForgetting(
            settings, app[POSTGRES], app[REDIS], app[PETITION_STATES], app[COUNTER_METRICS]
        )
        app[MARKS_FORGETTING] = forgetting
        # Cancelled mid-petition at the end: its row rolls back, the next pass takes it up.
        async with running(forgetting.run_periodically(), "forget-marks"):
            yield

    return forget_ended_petitions_marks
