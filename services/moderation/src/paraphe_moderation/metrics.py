"""Moderation's metrics for the operators: how much waits, for how long, what is decided.

The queue gauges are read from PostgreSQL every ``PARAPHE_QUEUE_METRICS_INTERVAL`` seconds, so
every replica reports the same shared queue (use ``max`` across replicas, not ``sum``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Final

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from paraphe_common.resources import POSTGRES, CleanupContext, running
from paraphe_moderation.store import KINDS, queue_depths

log = logging.getLogger(__name__)

DECISION_KINDS: Final = ("publish", "reject", "take-down", "follow-up", "dismiss")


class ModerationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_items = Gauge(
            "moderation_queue_items",
            "Open items in the moderation queue, by kind.",
            ["kind"],
            registry=registry,
        )
        self.queue_oldest_age = Gauge(
            "moderation_queue_oldest_age_seconds",
            "Age of the oldest open item of each kind (0 when none waits).",
            ["kind"],
            registry=registry,
        )
        self.decisions = Counter(
            "moderation_decisions",
            "Decisions recorded in the audit log, by decision.",
            ["decision"],
            registry=registry,
        )
        self.catalog_failures = Counter(
            "moderation_catalog_failures",
            "Decisions answered 503 because the catalog did not answer.",
            registry=registry,
        )
        self.events = Counter(
            "moderation_events",
            "Petition events read from JetStream, by kind and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.reports_limited = Counter(
            "moderation_reports_rate_limited",
            "Public reports refused because their client sent too many.",
            registry=registry,
        )
        for kind in KINDS:
            self.queue_items.labels(kind).set(0)
            self.queue_oldest_age.labels(kind).set(0)
        for decision in DECISION_KINDS:
            self.decisions.labels(decision)

    async def read_queue(self, pool: asyncpg.Pool) -> None:
        for kind, (items, oldest) in (await queue_depths(pool)).items():
            self.queue_items.labels(kind).set(items)
            self.queue_oldest_age.labels(kind).set(oldest)


MODERATION_METRICS = web.AppKey("moderation_metrics", ModerationMetrics)


def queue_metrics(interval: float) -> CleanupContext:
    """Read the queue's depth and age now and then; needs PostgreSQL before it."""

    async def watch_queue(app: web.Application) -> AsyncIterator[None]:
        metrics, pool = app[MODERATION_METRICS], app[POSTGRES]

        async def loop() -> None:
            while True:
                try:
                    await metrics.read_queue(pool)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                    log.warning("cannot read the queue for the metrics: %r", exc)
                await asyncio.sleep(interval)

        async with running(loop(), "queue-metrics"):
            yield

    return watch_queue
