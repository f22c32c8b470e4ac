"""Reconciliation: the stored signatures are the truth; counts are repaired to match them.

At start and then periodically, every petition's stored signatures are counted and compared
with the sum of its shards and with its Redis total. Finding suspects reads one snapshot and
takes no lock, so batches go on meanwhile. Repairing takes the exclusive advisory lock, which
waits for the batches in flight and holds the next ones: inside it the truth cannot move, so
each suspect is counted again and repaired only if it is still wrong. Replicas reconciling at
the same time queue on that lock, and the later ones find nothing left to repair.

It also records the thresholds any count has reached without an event (a crash between a
batch and its follow-up) and publishes the events left unpublished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Final

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from paraphe_common.resources import JETSTREAM, POSTGRES, REDIS, CleanupContext, running
from paraphe_counter import store
from paraphe_counter.metrics import COUNTER_METRICS, CounterMetrics
from paraphe_counter.settings import CounterSettings
from paraphe_counter.store import Tally
from paraphe_counter.thresholds import ThresholdEvents
from paraphe_counter.totals import Totals

log = logging.getLogger(__name__)

# Seconds before trying again after a failed pass, when that is sooner than the interval.
_RETRY_AFTER_FAILURE: Final = 10.0
_POSTGRES_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_REDIS_ERRORS: Final = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True)
class Outcome:
    shards_repaired: int
    redis_totals_repaired: int
    thresholds_recorded: int
    events_all_published: bool


class Reconciliation:
    def __init__(
        self,
        settings: CounterSettings,
        pool: asyncpg.Pool,
        totals: Totals,
        events: ThresholdEvents,
        metrics: CounterMetrics,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._totals = totals
        self._events = events
        self._metrics = metrics
        self.passes = 0  # completed, for operators and tests

    async def reconcile(self) -> Outcome:
        tallies = await store.tally_every_petition(self._pool)
        redis_totals = await self._redis_totals([tally.petition_id for tally in tallies])
        suspects = {tally.petition_id for tally in tallies if not tally.agrees}
        if redis_totals is not None:
            suspects |= {
                tally.petition_id
                for tally in tallies
                if redis_totals.get(tally.petition_id) not in (None, tally.stored)
            }
        shards_repaired = redis_repaired = 0
        # A Redis total ahead of the snapshot is usually a batch committed since: checked
        # again inside the lock, it agrees, and the lock was held for a moment only.
        if suspects:
            shards_repaired, redis_repaired = await self._repair(suspects)
        reached = await store.record_thresholds_reached(
            self._pool, self._settings.thresholds, [tally.petition_id for tally in tallies]
        )
        if reached:
            log.warning("%d thresholds reached without their event; recorded now", len(reached))
        published = await self._events.publish_unpublished(self._pool)
        self.passes += 1
        return Outcome(shards_repaired, redis_repaired, len(reached), published)

    async def run_periodically(self) -> None:
        while True:
            delay = self._settings.reconciliation_interval
            try:
                await self.reconcile()
            except (*_POSTGRES_ERRORS, *_REDIS_ERRORS) as exc:
                log.warning("reconciliation failed (%r); trying again later", exc)
                delay = min(delay, _RETRY_AFTER_FAILURE)
            except Exception:  # the next pass may succeed; this one is logged
                log.exception("reconciliation failed")
            await asyncio.sleep(delay)

    async def _repair(self, suspects: Collection[str]) -> tuple[int, int]:
        async with store.count_repair(self._pool) as repair:
            tallies = await repair.tally(suspects)
            wrong_shards = [tally for tally in tallies if not tally.agrees]
            if wrong_shards:
                await repair.replace_shards({t.petition_id: t.stored for t in wrong_shards})
            # Still inside the lock, so no batch raises a total meanwhile: Redis gets the exact
            # count, lower or higher. Should the commit fail, that count is still the truth.
            redis_repaired = await self._repair_redis(
                tallies, {tally.petition_id for tally in wrong_shards}
            )
        for tally in wrong_shards:
            log.warning(
                "petition %s: %d signatures stored but %d counted; count repaired",
                tally.petition_id,
                tally.stored,
                tally.counted,
            )
        self._metrics.count_discrepancies("shards", len(wrong_shards))
        return len(wrong_shards), redis_repaired

    async def _repair_redis(self, tallies: list[Tally], shards_repaired: set[str]) -> int:
        try:
            served = await self._totals.read_many([tally.petition_id for tally in tallies])
            wrong = {
                tally.petition_id
                for tally in tallies
                if served[tally.petition_id] not in (None, tally.stored)
            }
            await self._totals.replace(
                {
                    tally.petition_id: tally.stored
                    for tally in tallies
                    if tally.petition_id in wrong | shards_repaired
                }
            )
        except _REDIS_ERRORS as exc:
            log.warning("Redis totals not repaired (%r); the next pass will", exc)
            return 0
        for petition_id in sorted(wrong):
            log.warning("petition %s: Redis served a wrong total; repaired", petition_id)
        self._metrics.count_discrepancies("redis", len(wrong))
        return len(wrong)

    async def _redis_totals(self, petitions: Collection[str]) -> dict[str, int | None] | None:
        try:
            return await self._totals.read_many(petitions)
        except _REDIS_ERRORS as exc:
            log.warning("Redis totals not compared (%r)", exc)
            return None


RECONCILIATION = web.AppKey("reconciliation", Reconciliation)


def periodic_reconciliation(settings: CounterSettings) -> CleanupContext:
    """A pass at start, then one every interval; needs PostgreSQL, Redis and NATS."""

    async def reconcile_counts(app: web.Application) -> AsyncIterator[None]:
        pool = app[POSTGRES]
        metrics = app[COUNTER_METRICS]
        reconciliation = Reconciliation(
            settings,
            pool,
            Totals(app[REDIS]),
            ThresholdEvents(app[JETSTREAM], metrics),
            metrics,
        )
        app[RECONCILIATION] = reconciliation
        # Cancelled mid-pass at the end: PostgreSQL rolls the repair back.
        async with running(reconciliation.run_periodically(), "reconcile-counts"):
            yield

    return reconcile_counts
