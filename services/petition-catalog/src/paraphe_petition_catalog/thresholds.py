"""Threshold flags: counter announces a threshold reached, the catalogue records it once.

A durable pull consumer, ``catalog``, on ``petitions.events.threshold-reached``, shared by every
replica. Each event sets the petition's flag with counter's timestamp (``ON CONFLICT DO
NOTHING``: a redelivered or republished event changes nothing), then is acknowledged; while
PostgreSQL is away nothing is acknowledged and JetStream delivers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError

from paraphe_common.streams import (
    CATALOG_CONSUMER,
    PETITION_EVENTS,
    THRESHOLD_REACHED,
    ensure_petition_events_stream,
    petition_event_subject,
)

log = logging.getLogger(__name__)

ACK_WAIT_SECONDS: Final = 30.0
FETCH_BATCH: Final = 100
FETCH_TIMEOUT: Final = 1.0
_RETRY_SECONDS: Final = 1.0
_LARGEST_THRESHOLD: Final = 2**31 - 1
_POSTGRES_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_NATS_ERRORS: Final = (nats.errors.Error, OSError)


class MalformedEvent(ValueError):
    pass


@dataclass(frozen=True)
class ThresholdReached:
    petition_id: uuid.UUID
    threshold: int
    signatures: int
    reached_at: datetime

    @classmethod
    def read(cls, data: bytes) -> ThresholdReached:
        try:
            body = json.loads(data)
            reached = cls(
                uuid.UUID(body["petition_id"]),
                int(body["threshold"]),
                int(body["signatures"]),
                datetime.fromisoformat(body["reached_at"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedEvent(str(exc)) from None
        if not 0 < reached.threshold <= _LARGEST_THRESHOLD or reached.reached_at.tzinfo is None:
            raise MalformedEvent("threshold out of range or time without zone")
        return reached


def consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        name=CATALOG_CONSUMER,
        durable_name=CATALOG_CONSUMER,
        filter_subject=petition_event_subject(THRESHOLD_REACHED),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_SECONDS,
    )


async def flag_threshold(pool: asyncpg.Pool, reached: ThresholdReached) -> bool:
    """Record the flag; False when it was already there or the petition is not ours."""
    flagged = await pool.fetchval(
        """
        INSERT INTO catalog.thresholds_reached (petition_id, threshold, signatures, reached_at)
        SELECT id, $2, $3, $4 FROM catalog.petitions WHERE id = $1
        ON CONFLICT DO NOTHING
        RETURNING true
        """,
        reached.petition_id,
        reached.threshold,
        reached.signatures,
        reached.reached_at,
    )
    return bool(flagged)


class ThresholdFollower:
    def __init__(self, pool: asyncpg.Pool, jetstream: JetStreamContext, replicas: int) -> None:
        self._pool = pool
        self._jetstream = jetstream
        self._replicas = replicas
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Fetch no more; :meth:`run` returns after the batch in hand."""
        self._stopping.set()

    @property
    def subscription(self) -> JetStreamContext.PullSubscription | None:
        """The consumer's subscription while following."""
        return self._subscription

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        await ensure_petition_events_stream(self._jetstream, self._replicas)
        try:
            await self._jetstream.add_consumer(PETITION_EVENTS, consumer_config())
        except BadRequestError as exc:
            log.info("keeping the existing consumer %s: %s", CATALOG_CONSUMER, exc.description)
        self._subscription = await self._jetstream.pull_subscribe_bind(
            durable=CATALOG_CONSUMER, stream=PETITION_EVENTS
        )
        return self._subscription

    async def run(self) -> None:
        try:
            await self._follow()
        finally:
            # Even when cancelled at shutdown: a subscription left behind would hold the
            # connection's drain (nats-py waits for its queue, which a fetch cut by a NATS
            # restart can leave unfinished: the catalogue then took 10 s to stop).
            await self._drop_subscription()

    async def _follow(self) -> None:
        while not self._stopping.is_set():
            try:
                subscription = self._subscription or await self._subscribe()
                try:
                    messages = await subscription.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT)
                except TimeoutError:
                    # Nothing reached meanwhile, or the consumer is gone (a NATS restarted
                    # without its store): fetching from it looks the same, asking tells.
                    await subscription.consumer_info()
                    continue
                for message in messages:
                    await self._handle(message)
            except (*_NATS_ERRORS, NotFoundError) as exc:
                # A lost connection or consumer (NATS restarted without its store): bind again.
                log.warning("cannot follow thresholds (%r); retrying", exc)
                await self._drop_subscription()
                await self._pause()
            except Exception:  # a bug with one message must not stop the following
                log.exception("following thresholds failed; retrying")
                await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_RETRY_SECONDS):
                await self._stopping.wait()

    async def _handle(self, message: Msg) -> None:
        try:
            reached = ThresholdReached.read(message.data)
        except MalformedEvent as exc:
            # Acknowledged: delivering it again would never make it readable.
            log.error("dropping a malformed threshold event: %s", exc)
            await message.ack()
            return
        try:
            if await flag_threshold(self._pool, reached):
                log.info("petition %s reached %d", reached.petition_id, reached.threshold)
        except _POSTGRES_ERRORS as exc:
            log.warning("cannot record a threshold yet (%r); JetStream will deliver it again", exc)
            with contextlib.suppress(*_NATS_ERRORS):
                await message.nak(delay=_RETRY_SECONDS)
            return
        await message.ack()

    async def _drop_subscription(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(*_NATS_ERRORS):
                await subscription.unsubscribe()
