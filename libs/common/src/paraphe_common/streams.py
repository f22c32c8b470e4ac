"""The JetStream streams and the key-value bucket paraphe's services share, defined once.

- SIGNATURES (``signatures.<petition>``): one message per accepted signature, its
  ``Nats-Msg-Id`` and body the dedupe key (64 hex characters). A work queue: a message leaves
  the stream once the counter has stored it. The dedupe window covers an intake retry.
- PETITION_EVENTS (``petitions.events.<kind>``): lifecycle, threshold and decision events.
- PETITIONS (key-value): each petition's current state, the view intake and counter keep.

Each service that publishes or consumes makes sure the stream exists at start (creation is
idempotent), so no start order is required between services; a stream found with another
configuration is updated to this one.

SIGNATURES and PETITION_EVENTS hold what must not be lost (signatures answered 202, events not
yet followed), so they discard new messages: should anyone give them a size or count limit, a
full stream refuses the next publish (intake answers 503, an outbox tries again later) instead
of silently dropping the oldest acknowledged message. PETITION_EVENTS' age limit still expires
events after 90 days, long after their consumers have read them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, ServiceUnavailableError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

SIGNATURES: Final = "SIGNATURES"
SIGNATURE_SUBJECTS: Final = "signatures.>"
COUNTER_CONSUMER: Final = "counter"
# At least two minutes, so a retried publish after an intake crash is recognised.
SIGNATURE_DEDUPE_WINDOW_SECONDS: Final = 180.0

PETITION_EVENTS: Final = "PETITION_EVENTS"
PETITION_EVENT_SUBJECTS: Final = "petitions.events.>"
# The kind of event counter publishes when a petition crosses a threshold, which the catalogue
# and moderation follow; the durable consumers each of those two keeps on PETITION_EVENTS.
THRESHOLD_REACHED: Final = "threshold-reached"
CATALOG_CONSUMER: Final = "catalog"
MODERATION_CONSUMER: Final = "moderation"
PETITION_EVENTS_MAX_AGE_SECONDS: Final = 90 * 24 * 3600.0

PETITIONS_BUCKET: Final = "PETITIONS"


def signature_subject(petition_id: str) -> str:
    return f"signatures.{petition_id}"


def petition_event_subject(kind: str) -> str:
    return f"petitions.events.{kind}"


# While a cluster elects its leaders, or several services create the same stream at once,
# JetStream's API can time out or answer 503 for a few seconds: a start waits that long.
_SETTLING_SECONDS: Final = 30.0
_SETTLING_ERRORS: Final = (nats.errors.TimeoutError, ServiceUnavailableError)

T = TypeVar("T")


async def _once_jetstream_answers(make: Callable[[], Awaitable[T]], what: str) -> T:
    deadline = asyncio.get_running_loop().time() + _SETTLING_SECONDS
    while True:
        try:
            return await make()
        except _SETTLING_ERRORS as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("JetStream did not answer for %s yet (%r); asking again", what, exc)
            await asyncio.sleep(0.5)


async def _ensure_stream(jetstream: JetStreamContext, config: StreamConfig) -> None:
    async def ensure() -> None:
        try:
            await jetstream.add_stream(config)
        except BadRequestError:
            # It exists with another configuration (more replicas, a longer window): converge.
            log.info("updating the configuration of stream %s", config.name)
            await jetstream.update_stream(config)

    await _once_jetstream_answers(ensure, f"stream {config.name}")


async def ensure_signatures_stream(jetstream: JetStreamContext, replicas: int = 1) -> None:
    await _ensure_stream(
        jetstream,
        StreamConfig(
            name=SIGNATURES,
            subjects=[SIGNATURE_SUBJECTS],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=SIGNATURE_DEDUPE_WINDOW_SECONDS,
            num_replicas=replicas,
            discard=DiscardPolicy.NEW,  # full: refuse, never drop a signature answered 202
            max_msg_size=1024,
        ),
    )


async def ensure_petition_events_stream(jetstream: JetStreamContext, replicas: int = 1) -> None:
    await _ensure_stream(
        jetstream,
        StreamConfig(
            name=PETITION_EVENTS,
            subjects=[PETITION_EVENT_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=PETITION_EVENTS_MAX_AGE_SECONDS,
            duplicate_window=SIGNATURE_DEDUPE_WINDOW_SECONDS,
            num_replicas=replicas,
            discard=DiscardPolicy.NEW,  # full: refuse, never drop an event not yet followed
        ),
    )


async def petitions_bucket(jetstream: JetStreamContext, replicas: int = 1) -> KeyValue:
    """The key-value bucket of petition states, created if missing."""
    config = KeyValueConfig(
        bucket=PETITIONS_BUCKET, history=1, storage=StorageType.FILE, replicas=replicas
    )
    return await _once_jetstream_answers(
        lambda: jetstream.create_key_value(config), f"bucket {PETITIONS_BUCKET}"
    )
