"""Threshold-reached events: recorded in PostgreSQL first, published to JetStream after.

``counter.thresholds_reached`` is an outbox. Its primary key decides, once, that a petition
reached a threshold; the event is published after the row is committed, and the row marked
published after JetStream acknowledged it. A row left unpublished by a crash or an outage is
published again later with the same ``Nats-Msg-Id``, which JetStream recognises within its
dedupe window; past the window, subscribers recognise the event by petition and threshold.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Final

import asyncpg
import nats.errors
from nats.js import JetStreamContext

from paraphe_common.streams import THRESHOLD_REACHED, petition_event_subject
from paraphe_counter import store
from paraphe_counter.metrics import CounterMetrics
from paraphe_counter.store import ThresholdReached

log = logging.getLogger(__name__)

_PUBLISH_TIMEOUT: Final = 2.0
# Seconds the marking of events published may hold its PostgreSQL connection.
_MARK_TIMEOUT: Final = 10.0


def event_id(reached: ThresholdReached) -> str:
    return f"{THRESHOLD_REACHED}:{reached.petition_id}:{reached.threshold}"


def event_body(reached: ThresholdReached) -> bytes:
    return json.dumps(
        {
            "petition_id": reached.petition_id,
            "threshold": reached.threshold,
            "signatures": reached.signatures,
            "reached_at": reached.reached_at.isoformat(),
        }
    ).encode()


class ThresholdEvents:
    """Publishes threshold events to JetStream, then marks them published in PostgreSQL on a
    connection of its own, bounded: a JetStream slow to answer holds no connection."""

    def __init__(self, jetstream: JetStreamContext, metrics: CounterMetrics) -> None:
        self._jetstream = jetstream
        self._metrics = metrics

    async def publish(self, pool: asyncpg.Pool, reached: Iterable[ThresholdReached]) -> bool:
        """Publish each event and mark it published; False when one is left for later."""
        all_published = True
        sent = []
        for event in reached:
            try:
                acknowledgement = await self._jetstream.publish(
                    petition_event_subject(THRESHOLD_REACHED),
                    event_body(event),
                    timeout=_PUBLISH_TIMEOUT,
                    headers={"Nats-Msg-Id": event_id(event)},
                )
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                log.warning(
                    "threshold %d of petition %s not published yet: %r",
                    event.threshold,
                    event.petition_id,
                    exc,
                )
                all_published = False
                continue
            if not acknowledgement.duplicate:
                self._metrics.threshold_events.inc()
                log.info(
                    "petition %s reached %d signatures (threshold %d)",
                    event.petition_id,
                    event.signatures,
                    event.threshold,
                )
            sent.append(event)
        if sent:
            try:
                async with store.bounded_connection(pool, _MARK_TIMEOUT) as connection:
                    for event in sent:
                        await store.mark_published(connection, event)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                # Published but not marked: the next pass publishes them again, and JetStream
                # recognises the message ids.
                log.warning("threshold events published but not marked: %r", exc)
                all_published = False
        return all_published

    async def publish_unpublished(self, pool: asyncpg.Pool) -> bool:
        """Publish the events a crash or an outage left behind."""
        return await self.publish(pool, await store.unpublished_thresholds(pool))
