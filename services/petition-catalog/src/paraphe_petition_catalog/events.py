"""The outbox: lifecycle events published to JetStream after their transaction committed.

Each event was written in the transaction of its transition. Publishing takes the unpublished
rows under a lock (``SKIP LOCKED``: two replicas never publish the same row at once), sends each
to ``petitions.events.<kind>`` with ``Nats-Msg-Id`` = the event id, writes the petition's
current state to the PETITIONS bucket, and marks the row published once both are
acknowledged. A row left behind by a crash or an outage is published again by the periodic
pass; JetStream recognises the message id within its dedupe window, and subscribers recognise
the event id beyond it.

While a row is being published its petition's row is share-locked, so no transition can commit
between reading the state and writing it to the bucket: the bucket never goes back in time.
"""

from __future__ import annotations

import logging
from typing import Final

import asyncpg
import nats.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry, Counter, Gauge

from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.streams import petition_event_subject

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT: Final = 2.0
BATCH: Final = 100
_NATS_ERRORS: Final = (nats.errors.Error, OSError, TimeoutError)


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "petition_catalog_events_published_total",
            "Lifecycle events acknowledged by JetStream, by kind.",
            ["kind"],
            registry=registry,
        )
        self.unpublished = Gauge(
            "petition_catalog_events_unpublished",
            "Lifecycle events written and not yet acknowledged, at the last outbox pass.",
            registry=registry,
        )
        self.oldest_unpublished_age = Gauge(
            "petition_catalog_events_oldest_unpublished_age_seconds",
            "Time since the oldest event not yet acknowledged was written, at the last outbox"
            " pass, 0 when none waits: how long intake and counter may have had a petition's"
            " state wrong.",
            registry=registry,
        )


class EventPublisher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        jetstream: JetStreamContext,
        bucket: KeyValue,
        metrics: OutboxMetrics,
    ) -> None:
        self._pool = pool
        self._jetstream = jetstream
        self._bucket = bucket
        self._metrics = metrics

    async def publish(self) -> int:
        """Publish the oldest unpublished events, a batch at most; how many were published.

        An event JetStream does not take now stays in the outbox for the next pass.
        """
        published = 0
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                """
                SELECT e.id, e.kind, e.body::text AS body, e.petition_id, p.status,
                    extract(epoch FROM p.closes_at)::float8 AS closes_at
                FROM catalog.events e JOIN catalog.petitions p ON p.id = e.petition_id
                WHERE e.published_at IS NULL
                ORDER BY e.sequence
                LIMIT $1
                FOR UPDATE OF e SKIP LOCKED
                FOR SHARE OF p
                """,
                BATCH,
            )
            for row in rows:
                try:
                    await self._jetstream.publish(
                        petition_event_subject(row["kind"]),
                        row["body"].encode(),
                        timeout=PUBLISH_TIMEOUT,
                        headers={"Nats-Msg-Id": str(row["id"])},
                    )
                    await publish_state(
                        self._bucket,
                        str(row["petition_id"]),
                        PetitionState(row["status"], row["closes_at"]),
                    )
                except _NATS_ERRORS as exc:
                    # The rest waits too, so a petition's events keep their order.
                    log.warning("event %s not published yet: %r", row["id"], exc)
                    break
                await connection.execute(
                    "UPDATE catalog.events SET published_at = now() WHERE id = $1", row["id"]
                )
                self._metrics.published.labels(row["kind"]).inc()
                published += 1
        return published

    async def publish_unpublished(self) -> int:
        """Publish everything left behind, batch after batch; how many were published."""
        total = 0
        while True:
            published = await self.publish()
            total += published
            if published < BATCH:
                break
        (waiting,) = await self._pool.fetch(  # an aggregate: always one row
            """
            SELECT count(*) AS events,
                coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest
            FROM catalog.events WHERE published_at IS NULL
            """
        )
        self._metrics.unpublished.set(waiting["events"])
        self._metrics.oldest_unpublished_age.set(waiting["oldest"])
        return total
