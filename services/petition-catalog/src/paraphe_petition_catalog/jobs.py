"""The catalogue's background work, one task each, started after the resources it needs.

- the outbox pass: events a crash or an outage left unpublished, at start and periodically;
- the outbox reading: the backlog and its oldest event's age, apart from the pass so that a
  pass that hangs does not freeze them;
- the deadline pass: petitions whose deadline passed are closed, their events published;
- the count pass: counter's totals copied for the "most signed" sort;
- the threshold follower: counter's threshold events become flags on the petitions.

Every replica runs them all: each pass is safe to run concurrently (row locks, SKIP LOCKED,
idempotent writes), so no leader is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import asyncpg
import nats.errors
from aiohttp import web
from redis.exceptions import RedisError

from paraphe_common.metrics import METRICS
from paraphe_common.resources import (
    JETSTREAM,
    POSTGRES,
    REDIS,
    CleanupContext,
    DependencyUnavailable,
)
from paraphe_common.streams import ensure_petition_events_stream
from paraphe_petition_catalog import lifecycle
from paraphe_petition_catalog.counts import refresh_signature_counts
from paraphe_petition_catalog.events import EventPublisher, OutboxMetrics
from paraphe_petition_catalog.settings import PetitionCatalogSettings
from paraphe_petition_catalog.states import BUCKET
from paraphe_petition_catalog.thresholds import ThresholdFollower

log = logging.getLogger(__name__)

PUBLISHER = web.AppKey("event_publisher", EventPublisher)

_EXPECTED_ERRORS: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    nats.errors.Error,
    RedisError,
    OSError,
    TimeoutError,
)


# Seconds the background tasks get to finish at shutdown before they are left behind.
STOP_TIMEOUT: Final = 5.0


async def _every(
    seconds: float, name: str, job: Callable[[], Awaitable[object]], stopping: asyncio.Event
) -> None:
    while not stopping.is_set():
        try:
            await job()
        except _EXPECTED_ERRORS as exc:
            log.warning("%s failed (%r); trying again in %.0f s", name, exc, seconds)
        except Exception:  # a bug in one pass must not stop the next ones
            log.exception("%s failed; trying again in %.0f s", name, seconds)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stopping.wait()


async def close_petitions_past_their_deadline(
    publisher: EventPublisher, pool: asyncpg.Pool
) -> None:
    while True:
        outcome = await lifecycle.close_expired(pool)
        if outcome.event_ids:
            log.info("closed %d petitions at their deadline", len(outcome.event_ids))
            await publisher.publish()
        if len(outcome.event_ids) < lifecycle.CLOSE_BATCH:
            return  # every petition past its deadline is closed


def background_jobs(settings: PetitionCatalogSettings) -> CleanupContext:
    """The outbox, deadline and count passes and the threshold follower; needs every resource."""

    async def run_background_jobs(app: web.Application) -> AsyncIterator[None]:
        pool = app[POSTGRES]
        try:
            # Before the first event: sent to a subject no stream takes, it would wait in the
            # outbox until a consumer's service made the stream.
            await ensure_petition_events_stream(app[JETSTREAM], settings.nats_stream_replicas)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise DependencyUnavailable("NATS stream PETITION_EVENTS", "JetStream", exc) from exc
        publisher = EventPublisher(
            pool,
            app[JETSTREAM],
            app[BUCKET],
            OutboxMetrics(app[METRICS]),
            settings.outbox_publish_timeout,
        )
        app[PUBLISHER] = publisher
        follower = ThresholdFollower(pool, app[JETSTREAM], settings.nats_stream_replicas)
        redis_client = app[REDIS]
        stopping = asyncio.Event()
        tasks = [
            asyncio.create_task(
                _every(
                    settings.outbox_interval,
                    "the outbox pass",
                    publisher.publish_unpublished,
                    stopping,
                ),
                name="outbox",
            ),
            asyncio.create_task(
                _every(
                    settings.outbox_interval,
                    "the outbox reading",
                    publisher.read_backlog,
                    stopping,
                ),
                name="outbox-reading",
            ),
            asyncio.create_task(
                _every(
                    settings.deadline_check_interval,
                    "the deadline pass",
                    lambda: close_petitions_past_their_deadline(publisher, pool),
                    stopping,
                ),
                name="deadlines",
            ),
            asyncio.create_task(
                _every(
                    settings.signature_count_interval,
                    "the count pass",
                    lambda: refresh_signature_counts(pool, redis_client),
                    stopping,
                ),
                name="signature-counts",
            ),
            asyncio.create_task(follower.run(), name="thresholds"),
        ]
        try:
            yield
        finally:
            # The flags end the loops even where a cancellation is swallowed (nats-py's fetch
            # does not always honour one); a pass cut short leaves its work to the next start.
            stopping.set()
            follower.stop()
            for task in tasks:
                task.cancel()
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            if pending:
                log.warning("background tasks still running at shutdown: %s", pending)

    return run_background_jobs


async def publish_after_commit(app: web.Application) -> None:
    """Publish what a transition just wrote; what fails now, the outbox pass publishes later."""
    try:
        await app[PUBLISHER].publish()
    except _EXPECTED_ERRORS as exc:
        log.warning("events left for the outbox pass: %r", exc)
