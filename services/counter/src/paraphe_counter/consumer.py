"""The counting loop: take a batch of signatures from JetStream, store it, count it, ack it.

Every counter replica pulls from the one durable consumer, so JetStream shares the work. For
each batch, one PostgreSQL transaction stores the signatures not stored yet and adds their
number to one shard of each petition; only after the commit are the messages acknowledged. A
crash in between redelivers the batch, whose rows are then found already stored and add 0.
While PostgreSQL is unavailable nothing is acknowledged: the signatures wait in JetStream.

After each batch the loop settles the petitions it counted (every petition of a batch holding
signatures stored already: a batch whose first commit was never settled): it records the
thresholds their committed totals reached, publishes the threshold events, then raises their
totals in Redis. A petition it could not settle (Redis or PostgreSQL away, or silent past
SETTLE_TIMEOUT) is settled again a second later, the counting going on meanwhile; an event
recorded but not published is published by that next settle, whatever failed after the
record began (its commit's answer lost included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Final

import asyncpg
import nats.errors
from aiohttp import web
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError
from redis.exceptions import RedisError

from paraphe_common.health import READINESS
from paraphe_common.resources import (
    JETSTREAM,
    POSTGRES,
    REDIS,
    CleanupContext,
    DependencyUnavailable,
)
from paraphe_common.streams import (
    COUNTER_CONSUMER,
    SIGNATURE_SUBJECTS,
    SIGNATURES,
    ensure_petition_events_stream,
    ensure_signatures_stream,
)
from paraphe_counter import store
from paraphe_counter.metrics import COUNTER_METRICS, CounterMetrics
from paraphe_counter.settings import CounterSettings
from paraphe_counter.signatures import MalformedMessage, Signature, read_signature
from paraphe_counter.thresholds import ThresholdEvents
from paraphe_counter.totals import Totals

log = logging.getLogger(__name__)

# A batch not acknowledged within this time is delivered again, to any replica.
ACK_WAIT_SECONDS: Final = 30.0
# Messages delivered and not yet acknowledged, across every replica: several full batches.
MAX_ACK_PENDING: Final = 20_000
# Seconds a batch may spend in PostgreSQL before its connection is closed and it is tried
# again.
STORE_TIMEOUT: Final = 10.0
# Seconds the settle of the petitions counted may hold its PostgreSQL connection (thresholds,
# their events) before the connection is closed and the settle left to the next one.
SETTLE_TIMEOUT: Final = STORE_TIMEOUT
# Seconds the loop has after a stop request to finish its batch before it is cancelled.
STOP_TIMEOUT: Final = 15.0
_FIRST_BACKOFF: Final = 0.1
_LAST_BACKOFF: Final = 5.0
_SETTLE_RETRY: Final = 1.0

_POSTGRES_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_NATS_ERRORS: Final = (nats.errors.Error, OSError)
_REDIS_ERRORS: Final = (RedisError, OSError, TimeoutError)


def counter_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        name=COUNTER_CONSUMER,
        durable_name=COUNTER_CONSUMER,
        filter_subject=SIGNATURE_SUBJECTS,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_SECONDS,
        max_ack_pending=MAX_ACK_PENDING,
    )


class Backoff:
    def __init__(self) -> None:
        self._next = _FIRST_BACKOFF

    def next_delay(self) -> float:
        delay, self._next = self._next, min(self._next * 2, _LAST_BACKOFF)
        return delay

    def reset(self) -> None:
        self._next = _FIRST_BACKOFF


class SignatureConsumer:
    def __init__(
        self,
        settings: CounterSettings,
        pool: asyncpg.Pool,
        jetstream: JetStreamContext,
        totals: Totals,
        events: ThresholdEvents,
        metrics: CounterMetrics,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._jetstream = jetstream
        self._totals = totals
        self._events = events
        self._metrics = metrics
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._stopping = asyncio.Event()
        self._unsettled: set[str] = set()
        self._next_settle = 0.0
        self._events_left_behind = False
        self._next_consumer_info = 0.0

    async def subscribe(self) -> JetStreamContext.PullSubscription:
        """Make sure the streams and the shared durable consumer exist, and bind to it."""
        await ensure_signatures_stream(self._jetstream, self._settings.nats_stream_replicas)
        await ensure_petition_events_stream(self._jetstream, self._settings.nats_stream_replicas)
        try:
            await self._jetstream.add_consumer(SIGNATURES, counter_consumer_config())
        except BadRequestError as exc:
            # Another configuration was chosen on purpose (by an operator): keep it.
            log.info("keeping the existing consumer %s: %s", COUNTER_CONSUMER, exc.description)
        self._subscription = await self._jetstream.pull_subscribe_bind(
            durable=COUNTER_CONSUMER, stream=SIGNATURES
        )
        return self._subscription

    def stop(self) -> None:
        """Fetch no more; the batch in flight is finished, then :meth:`run` returns."""
        self._stopping.set()

    async def run(self) -> None:
        backoff = Backoff()
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                fetched_at = loop.time()
                messages = await self._fetch()
                if messages:
                    await self._count(messages)
                await self._settle()
                await self._read_backlog()
                if 0 < len(messages) < self._settings.batch_size:
                    # Not a full batch: nothing waits behind it, let the next one gather.
                    await self._pause(fetched_at + self._settings.batch_linger - loop.time())
            except _NATS_ERRORS as exc:
                # The connection dropped or the consumer vanished (a NATS restart without its
                # store): nats-py reconnects by itself; the subscription is made again.
                log.warning("cannot fetch signatures (%r); retrying", exc)
                await self._drop_subscription()
                await self._pause(backoff.next_delay())
            except Exception:  # a bug in one batch must not stop the counting
                log.exception("the counting loop failed; retrying")
                await self._pause(backoff.next_delay())
            else:
                backoff.reset()
        await self._drop_subscription()

    async def _fetch(self) -> list[Msg]:
        subscription = self._subscription or await self.subscribe()
        try:
            return await subscription.fetch(
                self._settings.batch_size, timeout=self._settings.fetch_timeout
            )
        except TimeoutError:
            return []  # no signature within the fetch timeout

    async def _count(self, messages: Sequence[Msg]) -> None:
        started = time.perf_counter()
        self._metrics.batch_size.observe(len(messages))
        signatures: list[Signature] = []
        for message in messages:
            try:
                signatures.append(read_signature(message))
            except MalformedMessage as malformed:
                # Acknowledged with the batch: redelivering it would never make it readable.
                log.warning("dropping a message with a malformed %s", malformed.part)
                self._metrics.count_malformed(malformed.part)
        stored = await self._store(signatures) if signatures else store.NOTHING_STORED
        if stored is None:
            # Stopping while PostgreSQL is away: handed back, for another replica to count now
            # rather than after the acknowledgement wait.
            await self._release(messages)
            return
        self._observe_freshness(signatures, stored)
        self._metrics.signatures_stored.inc(stored.signatures)
        self._metrics.duplicates_ignored.inc(len(signatures) - stored.signatures)
        await self._acknowledge(messages)
        self._unsettled.update(stored.per_petition)
        if stored.signatures < len(signatures):
            # Some were stored already, most often by a commit whose settle never came (a
            # crash, or STORE_TIMEOUT expiring as PostgreSQL committed): the batch delivered or
            # stored again settles every petition it holds. Only batches with duplicates pay.
            self._unsettled.update(signature.petition_id for signature in signatures)
        self._metrics.batch_duration.observe(time.perf_counter() - started)

    def _observe_freshness(
        self, signatures: Sequence[Signature], stored: store.StoredBatch
    ) -> None:
        """From its 202 to this commit, for each signature this commit counted.

        A duplicate was counted earlier, or never will be: a redelivered batch, seen long
        after its first commit, would otherwise report a stale count that never was.
        """
        committed_at = time.time()
        counted = set(stored.keys)
        for signature in signatures:
            key = (signature.petition_id, signature.dedupe_key)
            if key in counted:
                counted.discard(key)  # the same signature twice in one batch is counted once
                self._metrics.count_freshness.observe(
                    committed_at - signature.signed_at.timestamp()
                )

    async def _store(self, signatures: Sequence[Signature]) -> store.StoredBatch | None:
        """Store the batch, trying again until PostgreSQL answers; None when stopping first."""
        backoff = Backoff()
        while True:
            # One shard per batch, chosen at random, spreads concurrent batches over the rows.
            shard = random.randrange(self._settings.count_shards)  # noqa: S311 - not a secret
            try:
                async with store.bounded_connection(self._pool, STORE_TIMEOUT) as connection:
                    return await store.store_batch(connection, signatures, shard)
            except _POSTGRES_ERRORS as exc:
                self._metrics.batch_failures.inc()
                log.warning("cannot store a batch of signatures (%r); retrying", exc)
                await self._read_backlog()  # the backlog matters most while it grows
                if await self._pause(backoff.next_delay()):
                    return None

    async def _acknowledge(self, messages: Sequence[Msg]) -> None:
        lost = 0
        for message in messages:
            try:
                await message.ack()
            except _NATS_ERRORS:
                lost += 1
        if lost:
            # Their signatures are stored: redelivered, they are recognised and not counted.
            log.warning("%d acknowledgements were not sent; JetStream will redeliver", lost)

    async def _release(self, messages: Sequence[Msg]) -> None:
        for message in messages:
            with contextlib.suppress(*_NATS_ERRORS):
                await message.nak()

    async def _settle(self) -> None:
        """Thresholds, events and Redis totals for the petitions counted since last time."""
        now = time.monotonic()
        if now < self._next_settle or not (self._unsettled or self._events_left_behind):
            return
        petitions, self._unsettled = self._unsettled, set()
        settled = False
        totals: dict[str, int] = {}
        try:
            # The events this replica recorded now; all those left unpublished, when an earlier
            # settle left some (other replicas' own are theirs to publish, as they record them).
            waiting: list[store.ThresholdReached] = []
            left_behind = self._events_left_behind
            # A PostgreSQL gone silent (its processes stopped, an address a failover left
            # behind) must not hold the counting loop.
            async with store.bounded_connection(self._pool, SETTLE_TIMEOUT) as connection:
                if petitions:
                    # A row committed is returned by no later insert: until its event is
                    # published, whatever fails (the commit's answer lost included), the next
                    # settle publishes the rows left unpublished, not reconciliation.
                    self._events_left_behind = True
                    waiting = await store.record_thresholds_reached(
                        connection, self._settings.thresholds, petitions
                    )
                    # Until they are published, should anything below fail.
                    self._events_left_behind = left_behind or bool(waiting)
                if left_behind:  # this settle's own among them
                    waiting = await store.unpublished_thresholds(connection)
                if petitions:
                    totals = await store.counted_totals(connection, petitions)
            # Published before the Redis step, which cannot hold them back; off the connection,
            # which a JetStream slow to answer must not hold.
            self._events_left_behind = bool(waiting) and not await self._events.publish(
                self._pool, waiting
            )
            await self._totals.raise_to(totals)
            settled = True
        except (*_POSTGRES_ERRORS, *_REDIS_ERRORS) as exc:
            self._metrics.settle_failures.inc()
            log.warning("cannot settle the counted petitions yet (%r)", exc)
        finally:
            if not settled:
                # Settling again is harmless: totals only rise, thresholds are recorded once.
                self._unsettled |= petitions
                self._next_settle = now + _SETTLE_RETRY

    async def _read_backlog(self) -> None:
        now = time.monotonic()
        if self._subscription is None or now < self._next_consumer_info:
            return
        self._next_consumer_info = now + self._settings.backlog_interval
        try:
            info = await self._subscription.consumer_info()
        except NotFoundError:
            # Fetching from a consumer that is gone looks like an empty stream, so this is
            # where its loss shows (deleted, or a NATS restarted without its store).
            log.warning("the consumer %s is gone; making it again", COUNTER_CONSUMER)
            await self._drop_subscription()
            return
        except _NATS_ERRORS as exc:
            log.debug("consumer info unavailable: %r", exc)
            return
        self._metrics.consumer_pending.set(info.num_pending or 0)
        self._metrics.consumer_ack_pending.set(info.num_ack_pending or 0)
        try:
            age = await self._oldest_uncounted_age()
        except _NATS_ERRORS as exc:
            log.debug("the oldest uncounted signature is unknown: %r", exc)
            return
        if age is not None:
            self._metrics.oldest_uncounted_age.set(age)

    async def _oldest_uncounted_age(self) -> float | None:
        """Seconds since the oldest signature not counted yet was accepted; 0 when none waits.

        SIGNATURES is a work queue: a counted signature leaves it, so its first message is the
        oldest one waiting. None when that one was counted between the two questions.
        """
        state = (await self._jetstream.stream_info(SIGNATURES)).state
        if not state.messages:
            return 0.0
        try:
            first = await self._jetstream.get_msg(SIGNATURES, state.first_seq)
        except NotFoundError:
            return None
        if first.time is None:
            return None
        return max(0.0, time.time() - first.time.timestamp())

    async def _drop_subscription(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(*_NATS_ERRORS):
                await subscription.unsubscribe()

    async def _pause(self, seconds: float) -> bool:
        """Wait, unless asked to stop meanwhile; True when stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        return self._stopping.is_set()


CONSUMER = web.AppKey("signature_consumer", SignatureConsumer)


def signature_consumer(settings: CounterSettings) -> CleanupContext:
    """The counting loop; needs PostgreSQL, Redis and NATS before it."""

    async def count_signatures(app: web.Application) -> AsyncIterator[None]:
        pool = app[POSTGRES]
        jetstream = app[JETSTREAM]
        metrics = app[COUNTER_METRICS]
        consumer = SignatureConsumer(
            settings,
            pool,
            jetstream,
            Totals(app[REDIS]),
            ThresholdEvents(jetstream, metrics),
            metrics,
        )
        try:
            await consumer.subscribe()
        except _NATS_ERRORS as exc:
            raise DependencyUnavailable("NATS JetStream", "stream " + SIGNATURES, exc) from exc
        task = asyncio.create_task(consumer.run(), name="count-signatures")
        app[CONSUMER] = consumer

        async def counting() -> None:
            if task.done():
                raise RuntimeError("the counting loop has stopped")

        app[READINESS].add("consumer", counting)
        try:
            yield
        finally:
            consumer.stop()
            done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT)
            if not done:
                # Its batch is not acknowledged: JetStream delivers it again.
                log.warning("the counting loop did not stop in time; cancelling it")
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return count_signatures
