"""Accepting a signature: mark it pending, publish it, wait for JetStream, mark it signed.

The window between the Redis mark and JetStream's acknowledgement can be cut by a crash at any
point, and must neither lose a signature nor leave a person marked as signed with nothing
recorded:

- the first mark is ``pending`` with a TTL, promoted to ``signed`` only after the ack;
- a retry that finds ``pending`` publishes again under the same ``Nats-Msg-Id``: JetStream
  drops the duplicate if the first publish had landed, or records it if it had not;
- a pending mark whose publish never landed expires, and the person can sign again;
- whatever Redis says, PostgreSQL's unique key is the last word on counting.

Redis is a fast filter, not the truth: when it fails, signing goes on without it (JetStream's
window and PostgreSQL's constraint still deduplicate) and only the "already signed" answer
may be less precise. JetStream is needed for correctness: when it fails, the answer is 503.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging

import nats.errors
import redis.asyncio as aioredis
from nats.js import JetStreamContext
from nats.js.errors import Error as JetStreamError
from redis.exceptions import RedisError

from paraphe_common.streams import signature_subject

log = logging.getLogger(__name__)

PENDING = b"p"
SIGNED = b"s"


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    ALREADY_SIGNED = "already-signed"


class JetStreamUnavailable(Exception):
    pass


def dedupe_key(signer_key: str, petition_id: str) -> str:
    """HMAC(signer_key, petition): one person's signatures of two petitions cannot be linked."""
    return hmac.new(signer_key.encode(), petition_id.encode(), hashlib.sha256).hexdigest()


def mark_key(petition_id: str, key: str) -> str:
    return f"sig:{petition_id}:{key}"


class Intake:
    def __init__(
        self,
        redis: aioredis.Redis,
        jetstream: JetStreamContext,
        *,
        pending_ttl: int,
        publish_timeout: float,
    ) -> None:
        self._redis = redis
        self._jetstream = jetstream
        self._pending_ttl = pending_ttl
        self._publish_timeout = publish_timeout
        self.redis_failures = 0

    async def accept(self, petition_id: str, key: str) -> Outcome:
        mark = mark_key(petition_id, key)
        redis_answers = True
        try:
            previous = await self._redis.set(mark, PENDING, nx=True, ex=self._pending_ttl, get=True)
        except (RedisError, OSError) as exc:
            redis_answers, previous = False, None
            self.redis_failures += 1
            log.warning("Redis unavailable, deduplicating with JetStream only: %r", exc)
        if previous == SIGNED:
            return Outcome.ALREADY_SIGNED
        try:
            ack = await self._jetstream.publish(
                signature_subject(petition_id),
                key.encode(),
                timeout=self._publish_timeout,
                headers={"Nats-Msg-Id": key},
            )
        except (nats.errors.Error, JetStreamError, TimeoutError, OSError) as exc:
            # The pending mark stays: a retry publishes again, and it expires if none comes.
            raise JetStreamUnavailable(type(exc).__name__) from exc
        if redis_answers:
            try:
                await self._redis.set(mark, SIGNED)
            except (RedisError, OSError) as exc:
                # Counting is exact without it; the next attempt will publish a duplicate.
                log.warning("could not mark a signature as recorded: %r", exc)
        if ack.duplicate and previous is None:
            # JetStream had it and Redis had forgotten it (flushed, failed over): a repeat.
            return Outcome.ALREADY_SIGNED
        return Outcome.ACCEPTED

    async def has_signed(self, petition_id: str, key: str) -> bool:
        return await self._redis.get(mark_key(petition_id, key)) == SIGNED
