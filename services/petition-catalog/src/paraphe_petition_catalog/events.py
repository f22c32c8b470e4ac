"""The outbox: lifecycle events published to JetStream after their transaction committed.

Each event was written in the transaction of its transition. Publishing takes the unpublished
rows under a lock (``SKIP LOCKED``: two replicas never publish the same row at once), sends each
to ``petitions.events.<kind>`` with ``Nats-Msg-Id`` = the event id, writes the petition's
current state to the PETITIONS bucket, and marks the row published once both are
acknowledged. A row left behind by a crash or an outage is published again by the periodic
pass; JetStream recognises the message id within its dedupe window, and subscribers recognise
the event id beyond it.

While a row is being published its petition's row is share-locked, so no transition can commit
between reading the state and writing it to the bucket: the bucket never goes back in time. A
petition whose row is locked (a transition in flight, which publishes after its commit; a
session that never ends) is passed over, not waited for: the other petitions' events go on,
and each petition's events still go out in the order they were written.

Neither publishing nor watching the outbox can hang for good. A publishing that takes longer
than its timeout (a lock that is never released, a PostgreSQL that stops answering) is given up
and rolled back, logged and counted, and the next pass tries again. The backlog is read apart
from the publishing, each reading with a timeout of its own, and the age of its oldest event is
worked out when it is scraped, from the last reading: it goes on growing while nothing is
published, even if no reading succeeds meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final

import asyncpg
import nats.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry, Counter, Gauge

from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.streams import petition_event_subject

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT: Final = 2.0
BATCH: Final = 100
# Seconds a reading of the backlog may take before it is given up for the next one.
READ_TIMEOUT: Final = 10.0
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
            "Lifecycle events written and not yet acknowledged, at the last reading of the outbox.",
            registry=registry,
        )
        self.oldest_unpublished_age = Gauge(
            "petition_catalog_events_oldest_unpublished_age_seconds",
            "Time since the oldest event not yet acknowledged at the last reading of the outbox"
            " was written, growing until a reading finds it published, 0 when none waits: how"
            " long intake and counter may have had a petition's state wrong.",
            registry=registry,
        )
        self.oldest_unpublished_age.set_function(self._oldest_age)
        self.timeouts = Counter(
            "petition_catalog_outbox_timeouts_total",
            "Outbox work given up after its timeout, by step: publish (a batch, rolled back and"
            " left to the next pass), read (a reading of the backlog).",
            ["step"],
            registry=registry,
        )
        for step in ("publish", "read"):
            self.timeouts.labels(step)
        # The oldest waiting event's age at the last reading, and when (monotonic) it was read.
        self._oldest_age_read: float | None = None
        self._read_at = 0.0

    def backlog_read(self, events: int, oldest_age: float | None) -> None:
        """What a reading found: how many events wait, and the oldest one's age (None: none)."""
        self.unpublished.set(events)
        self._oldest_age_read = oldest_age
        self._read_at = time.monotonic()

    def _oldest_age(self) -> float:
        if self._oldest_age_read is None:
            return 0.0
        # Measured on PostgreSQL's clock, aged on ours: a clock step changes nothing.
        return self._oldest_age_read + (time.monotonic() - self._read_at)


async def _in_order(connection: Connection, rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
    """The rows of a batch that can go now without passing an earlier event of their petition.

    A row is taken only if its petition's row could be share-locked at once (a transition in
    flight, or a lock never released, holds it), and only if no other publishing holds it. So
    a batch may lack a petition's earliest waiting event and hold a later one: it was locked
    when the scan came to it, or another replica is publishing it. While the batch holds its
    petitions' share locks none of them can gain an event; each keeps, of its waiting events,
    those before the first one the batch does not hold.
    """
    if not rows:
        return rows
    waiting = await connection.fetch(
        """
        SELECT id, petition_id FROM catalog.events
        WHERE published_at IS NULL AND petition_id = ANY($1::uuid[])
        ORDER BY sequence
        """,
        list({row["petition_id"] for row in rows}),
    )
    held = {row["id"] for row in rows}
    stopped: set[object] = set()
    ready: set[object] = set()
    for event in waiting:
        if event["petition_id"] in stopped:
            continue
        if event["id"] in held:
            ready.add(event["id"])
        else:
            stopped.add(event["petition_id"])
    return [row for row in rows if row["id"] in ready]


class EventPublisher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        jetstream: JetStreamContext,
        bucket: KeyValue,
        metrics: OutboxMetrics,
        timeout: float,
    ) -> None:
        self._pool = pool
        self._jetstream = jetstream
        self._bucket = bucket
        self._metrics = metrics
        self._timeout = timeout

    async def publish(self) -> int:
        """Publish the oldest unpublished events, a batch at most; how many were published.

        An event JetStream does not take now stays in the outbox for the next pass. A batch not
        done within the timeout is rolled back (its events, marked published or not, are sent
        again by the next pass: JetStream's dedupe and the event id make them count once) and
        raises TimeoutError.
        """
        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                return await self._publish_batch()
        except TimeoutError:
            if deadline.expired():
                self._metrics.timeouts.labels("publish").inc()
                log.warning("publishing the outbox took more than %.0f s: given up", self._timeout)
            raise

    async def _publish_batch(self) -> int:
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
                FOR SHARE OF p SKIP LOCKED
                """,
                BATCH,
            )
            for row in await _in_order(connection, rows):
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
                return total

    async def read_backlog(self) -> None:
        """Read how many events wait and how old the oldest is, for the gauges.

        Apart from the publishing: a publishing that hangs does not stop the readings.
        """
        deadline = asyncio.timeout(READ_TIMEOUT)
        try:
            async with deadline:
                (waiting,) = await self._pool.fetch(  # an aggregate: always one row
                    """
                    SELECT count(*) AS events,
                        extract(epoch FROM now() - min(created_at))::float8 AS oldest
                    FROM catalog.events WHERE published_at IS NULL
                    """
                )
        except TimeoutError:
            if deadline.expired():
                self._metrics.timeouts.labels("read").inc()
                log.warning("reading the outbox took more than %.0f s: given up", READ_TIMEOUT)
            raise
        self._metrics.backlog_read(waiting["events"], waiting["oldest"])
