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
from typing import TYPE_CHECKING, Final

import asyncpg
import nats.errors
from nats.js import JetStreamContext

from paraphe_common.streams import THRESHOLD_REACHED, petition_event_subject
from paraphe_counter import store
from paraphe_counter.metrics import CounterMetrics
from paraphe_counter.store import ThresholdReached

if TYPE_CHECKING:
    from paraphe_counter.store import Queryable

log = logging.getLogger(__name__)

_PUBLISH_TIMEOUT: Final = 2.0


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
    """Publishes the events of the rows in ``db``: the pool, or the connection a caller holds
    to bound its time in PostgreSQL."""

    def __init__(self, jetstream: JetStreamContext, metrics: CounterMetrics) -> None:
        self._jetstream = jetstream
        self._metrics = metrics

    async def publish(self, db: Queryable, reached: Iterable[ThresholdReached]) -> bool:
        """Publish each event and mark it published; False when one is left for later."""
        all_published = True
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
            try:
                await store.mark_published(db, event)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                # Published but not marked: the next pass publishes it again, and JetStream
                # recognises the message id.
                log.warning("threshold event published but not marked: %r", exc)
                all_published = False
        return all_published

    async def publish_unpublished(self, db: Queryable) -> bool:
        """Publish the events a crash or an outage left behind."""
        return await self.publish(db, await store.unpublished_thresholds(db))
