"""The queue is fed by petition events: a durable JetStream consumer named ``moderation``.

- ``submitted``: an admissibility review item, with the committee the text suggests;
- ``threshold-reached`` (from the counter): a follow-up item for the committee secretariat;
- ``published``, ``rejected``, ``hidden``, ``closed``: the petition's open items that the event
  settles are resolved; a take-down ends the committee's follow-up too (the catalogue records
  no step for a petition taken down), so it resolves a follow-up item, and a threshold reached
  by a petition already taken down makes one born resolved. When such an item carries a
  decision sent to the catalog but never confirmed (the catalog applied it and its answer was
  lost), its audit row is written now.

Each message is handled in one transaction and acknowledged after the commit; an event seen
twice (redelivery) finds its item already made (``source_event_id`` is unique) or resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Final

import asyncpg
import nats.errors
from aiohttp import web
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError

from paraphe_common import follow_up
from paraphe_common.health import READINESS
from paraphe_common.petition_states import PETITION_STATES, PetitionStates
from paraphe_common.resources import JETSTREAM, POSTGRES, CleanupContext, DependencyUnavailable
from paraphe_common.streams import (
    MODERATION_CONSUMER,
    PETITION_EVENT_SUBJECTS,
    PETITION_EVENTS,
    THRESHOLD_REACHED,
    ensure_petition_events_stream,
)
from paraphe_moderation import store
from paraphe_moderation.decisions import (
    FOLLOW_UP_DECISION,
    TAKE_DOWN,
    audit_confirmed,
    audit_petition_decision_confirmed,
)
from paraphe_moderation.metrics import MODERATION_METRICS, ModerationMetrics
from paraphe_moderation.settings import ModerationSettings
from paraphe_moderation.store import FOLLOW_UP, REPORT, REVIEW
from paraphe_moderation.suggestions import CommitteeScorer

log = logging.getLogger(__name__)

_SUBJECT_PREFIX: Final = "petitions.events."
ACK_WAIT_SECONDS: Final = 30.0
_BATCH: Final = 50
_FETCH_TIMEOUT: Final = 1.0
_FIRST_BACKOFF: Final = 0.1
_LAST_BACKOFF: Final = 5.0

# The items each catalog event settles, and what they are resolved as.
SETTLES: Final = {
    "published": ((REVIEW,), "published"),
    "rejected": ((REVIEW,), "rejected"),
    "hidden": ((REVIEW, REPORT, FOLLOW_UP), "hidden"),
    "closed": ((REPORT,), "closed"),
}
FOLLOWED_UP: Final = "followed-up"
# A petition in one of these states has had its admissibility decided.
SETTLED_STATUSES: Final = frozenset({"published", "rejected", "hidden", "closed"})

_POSTGRES_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_NATS_ERRORS: Final = (nats.errors.Error, OSError)


class MalformedEvent(ValueError):
    pass


def consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        name=MODERATION_CONSUMER,
        durable_name=MODERATION_CONSUMER,
        filter_subject=PETITION_EVENT_SUBJECTS,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_SECONDS,
        max_ack_pending=1000,
    )


def _petition_id(body: Mapping[str, Any]) -> str:
    try:
        return str(uuid.UUID(str(body["petition_id"])))
    except (KeyError, ValueError):
        raise MalformedEvent("petition_id") from None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


class EventHandler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        scorer: CommitteeScorer,
        metrics: ModerationMetrics,
        states: PetitionStates | None = None,
    ) -> None:
        self._pool = pool
        self._scorer = scorer
        self._metrics = metrics
        self._states = states

    async def handle(self, kind: str, body: Mapping[str, Any]) -> str:
        """Apply one event; the outcome, for the metrics."""
        petition_id = _petition_id(body)
        async with self._pool.acquire() as connection, connection.transaction():
            if kind == "submitted":
                return await self._submitted(connection, petition_id, body)
            if kind == THRESHOLD_REACHED:
                return await self._threshold_reached(connection, petition_id, body)
            if kind in SETTLES:
                return await self._settled(connection, petition_id, kind, body)
            if kind == FOLLOWED_UP:
                return await self._followed_up(connection, petition_id, body)
        return "ignored"  # events of no concern to the queue

    async def _submitted(
        self, connection: store.Connection, petition_id: str, body: Mapping[str, Any]
    ) -> str:
        event_id = _text(body, "id")
        if not event_id:
            raise MalformedEvent("id")
        title, text = _text(body, "title"), _text(body, "body")
        author_choice = body.get("suggested_committee")
        suggestion = self._scorer.suggest(
            title, text, author_choice if isinstance(author_choice, str) else None
        )
        added = await store.add_item(
            connection,
            kind=REVIEW,
            petition_id=petition_id,
            source_event_id=event_id,
            created_at=_time(body.get("submitted_at")) or _time(body.get("at")),
            title=title,
            body=text,
            suggested_committee=suggestion.committee.id if suggestion.committee else None,
            details={
                "author_committee": author_choice if isinstance(author_choice, str) else None,
                "scores": [
                    {"committee": s.committee.id, "score": s.score, "terms": s.terms}
                    for s in suggestion.scores
                ],
            },
        )
        if not added:
            return "duplicate"
        # Redelivered late, after the event that settled it: the item is born settled.
        state = self._states.get(petition_id) if self._states is not None else None
        if state is not None and state.status in SETTLED_STATUSES:
            await store.close_items(connection, petition_id, [REVIEW], state.status)
            return "already-settled"
        return "added"

    async def _threshold_reached(
        self, connection: store.Connection, petition_id: str, body: Mapping[str, Any]
    ) -> str:
        threshold, signatures = body.get("threshold"), body.get("signatures")
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            raise MalformedEvent("threshold")
        title = await connection.fetchval(
            "SELECT title FROM moderation.queue_items WHERE petition_id = $1 AND title <> ''"
            " LIMIT 1",
            uuid.UUID(petition_id),
        )
        added = await store.add_item(
            connection,
            kind=FOLLOW_UP,
            petition_id=petition_id,
            # The counter's own message id: one event per petition and threshold.
            source_event_id=f"threshold-reached:{petition_id}:{threshold}",
            created_at=_time(body.get("reached_at")),
            title=title or "",
            details={"threshold": threshold, "signatures": signatures},
        )
        if not added:
            return "duplicate"
        # Reached by signatures taken before a take-down, counted after it: nothing to follow.
        state = self._states.get(petition_id) if self._states is not None else None
        if state is not None and state.status == "hidden":
            await store.close_items(connection, petition_id, [FOLLOW_UP], "hidden")
            return "already-settled"
        return "added"

    async def _settled(
        self, connection: store.Connection, petition_id: str, kind: str, body: Mapping[str, Any]
    ) -> str:
        kinds, resolution = SETTLES[kind]
        await store.lock_petition(connection, petition_id)  # see store.lock_petition
        closed = await store.close_items(connection, petition_id, kinds, resolution)
        confirmed_by = f"event {_text(body, 'id')}"
        for item in closed:
            await audit_confirmed(connection, item, kind, body, self._metrics, confirmed_by)
        if kind == "hidden":  # a take-down from the petition's page, its answer lost
            await audit_petition_decision_confirmed(
                connection, uuid.UUID(petition_id), TAKE_DOWN, body, self._metrics, confirmed_by
            )
        return "settled" if closed else "nothing-open"

    async def _followed_up(
        self, connection: store.Connection, petition_id: str, body: Mapping[str, Any]
    ) -> str:
        """A step recorded by the catalog: audited if its answer was lost; one that ends the
        matter resolves the follow-up items, whichever way it comes."""
        await store.lock_petition(connection, petition_id)  # see store.lock_petition
        step = _text(body, "step")
        await audit_petition_decision_confirmed(
            connection, uuid.UUID(petition_id), FOLLOW_UP_DECISION, body, self._metrics,
            f"event {_text(body, 'id')}",
        )  # fmt: skip
        if step in follow_up.FINAL_STEPS:
            await store.resolve_follow_ups(connection, uuid.UUID(petition_id), step)
        return "recorded"


class EventConsumer:
    def __init__(
        self, jetstream: JetStreamContext, handler: EventHandler, metrics: ModerationMetrics,
        replicas: int,
    ) -> None:  # fmt: skip
        self._jetstream = jetstream
        self._handler = handler
        self._metrics = metrics
        self._replicas = replicas
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._stopping = asyncio.Event()
        self.waiting_for_events = False

    async def subscribe(self) -> JetStreamContext.PullSubscription:
        await ensure_petition_events_stream(self._jetstream, self._replicas)
        try:
            await self._jetstream.add_consumer(PETITION_EVENTS, consumer_config())
        except BadRequestError as exc:
            # Another configuration was chosen on purpose (by an operator): keep it.
            log.info("keeping the existing consumer %s: %s", MODERATION_CONSUMER, exc.description)
        self._subscription = await self._jetstream.pull_subscribe_bind(
            durable=MODERATION_CONSUMER, stream=PETITION_EVENTS
        )
        return self._subscription

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        delay = _FIRST_BACKOFF
        while not self._stopping.is_set():
            try:
                subscription = self._subscription or await self.subscribe()
                self.waiting_for_events = True
                try:
                    messages = await subscription.fetch(_BATCH, timeout=_FETCH_TIMEOUT)
                except TimeoutError:
                    messages = []
                finally:
                    self.waiting_for_events = False
                for message in messages:
                    await self._process(message)
            except _NATS_ERRORS as exc:
                log.warning("cannot fetch petition events (%r); retrying", exc)
                await self.unsubscribe()
            except _POSTGRES_ERRORS as exc:
                # Unacknowledged, the event comes back after the wait: nothing is lost.
                log.warning("cannot record a petition event (%r); retrying", exc)
            except Exception:  # a bug with one event must not stop the queue
                log.exception("the event loop failed; retrying")
            else:
                delay = _FIRST_BACKOFF
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, _LAST_BACKOFF)
        await self.unsubscribe()

    async def unsubscribe(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(*_NATS_ERRORS):
                await subscription.unsubscribe()

    async def _process(self, message: Msg) -> None:
        kind = message.subject.removeprefix(_SUBJECT_PREFIX)
        try:
            body = json.loads(message.data)
            if not isinstance(body, dict):
                raise MalformedEvent("body")
            outcome = await self._handler.handle(kind, body)
        except (ValueError, MalformedEvent) as exc:
            # Redelivering it would never make it readable.
            log.warning("dropping a malformed %s event: %s", kind, exc)
            outcome = "malformed"
        except _POSTGRES_ERRORS:
            with contextlib.suppress(*_NATS_ERRORS):
                await message.nak(delay=1.0)
            raise
        self._metrics.events.labels(kind if kind in _KNOWN_KINDS else "other", outcome).inc()
        await message.ack()


_KNOWN_KINDS: Final = frozenset(
    {"submitted", "published", "rejected", "hidden", "closed", "followed-up", THRESHOLD_REACHED}
)

EVENT_CONSUMER = web.AppKey("event_consumer", EventConsumer)


def event_consumer(settings: ModerationSettings) -> CleanupContext:
    """The queue's feed; needs PostgreSQL and NATS before it."""

    async def consume_events(app: web.Application) -> AsyncIterator[None]:
        metrics = app[MODERATION_METRICS]
        handler = EventHandler(
            app[POSTGRES],
            CommitteeScorer(settings.committees, settings.committee_terms),
            metrics,
            app[PETITION_STATES],
        )
        consumer = EventConsumer(app[JETSTREAM], handler, metrics, settings.nats_stream_replicas)
        try:
            await consumer.subscribe()
        except _NATS_ERRORS as exc:
            raise DependencyUnavailable("NATS JetStream", "stream " + PETITION_EVENTS, exc) from exc
        task = asyncio.create_task(consumer.run(), name="moderation-events")
        app[EVENT_CONSUMER] = consumer

        async def consuming() -> None:
            if task.done():
                raise RuntimeError("the event loop has stopped")

        app[READINESS].add("events", consuming)
        try:
            yield
        finally:
            consumer.stop()
            if consumer.waiting_for_events:
                # Nothing is in hand while it waits: no need to wait out the fetch.
                task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10.0)
            if not done:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await consumer.unsubscribe()  # or draining NATS would wait for it

    return consume_events
