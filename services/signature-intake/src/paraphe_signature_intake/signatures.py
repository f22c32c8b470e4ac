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

import asyncio
import enum
import hashlib
import hmac
import logging
from collections.abc import Callable

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


class Promotions:
    """Marks to turn from pending to signed, written together once per loop iteration.

    Off the answer path, and one pipeline for every signature accepted meanwhile. Until a
    mark is promoted a repeat finds it pending and publishes again, which JetStream drops: a
    late or lost promotion costs a duplicate publish, never a count.
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._marks: list[str] = []
        self._flushing: set[asyncio.Task[None]] = set()

    def add(self, mark: str) -> None:
        if not self._marks:
            asyncio.get_running_loop().call_soon(self._flush)
        self._marks.append(mark)

    def _flush(self) -> None:
        marks, self._marks = self._marks, []
        task = asyncio.create_task(self._write(marks))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _write(self, marks: list[str]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for mark in marks:
                    pipe.execute_command("SET", mark, SIGNED)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not mark %d signatures as recorded: %r", len(marks), exc)

    async def drain(self) -> None:
        """At shutdown: the promotions in flight are written before Redis closes."""
        if self._marks:
            self._flush()
        await asyncio.gather(*self._flushing, return_exceptions=True)


class Marks:
    """Pending marks of the signatures arriving together, set in one pipeline per loop turn.

    Each request still gets its own answer (the previous value of its mark); a pipeline costs
    Redis and redis-py far less per command than one round trip each (measured).
    """

    def __init__(self, redis: aioredis.Redis, pending_ttl: int) -> None:
        self._redis = redis
        self._pending_ttl = pending_ttl
        self._waiting: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def set_pending(self, mark: str) -> asyncio.Future[bytes | None]:
        """The mark's previous value once it is set to pending, if it was not set already."""
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._send)
        answer: asyncio.Future[bytes | None] = loop.create_future()
        self._waiting.append((mark, answer))
        return answer

    def _send(self) -> None:
        waiting, self._waiting = self._waiting, []
        task = asyncio.create_task(self._write(waiting))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _write(self, waiting: list[tuple[str, asyncio.Future[bytes | None]]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for mark, _ in waiting:
                    pipe.execute_command("SET", mark, PENDING, "NX", "GET", "EX", self._pending_ttl)
                answers = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            for _, answer in waiting:
                if not answer.done():
                    answer.set_exception(exc)
            return
        for (_, answer), previous in zip(waiting, answers, strict=True):
            if answer.done():
                continue  # its request was cancelled (the client went away)
            if isinstance(previous, Exception):
                answer.set_exception(previous)
            else:
                answer.set_result(previous)


class Intake:
    def __init__(
        self,
        redis: aioredis.Redis,
        jetstream: JetStreamContext,
        *,
        pending_ttl: int,
        publish_timeout: float,
        redis_unavailable: Callable[[], None] = lambda: None,
    ) -> None:
        self._redis = redis
        self._jetstream = jetstream
        self._pending_ttl = pending_ttl
        self._publish_timeout = publish_timeout
        self.marks = Marks(redis, pending_ttl)
        self.promotions = Promotions(redis)
        self._redis_unavailable = redis_unavailable

    async def accept(self, petition_id: str, key: str) -> Outcome:
        mark = mark_key(petition_id, key)
        redis_answers = True
        try:
            previous = await self._redis.set(mark, PENDING, nx=True, ex=self._pending_ttl, get=True)
        except (RedisError, OSError) as exc:
            redis_answers, previous = False, None
            self._redis_unavailable()
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
            self.promotions.add(mark)
        if ack.duplicate and previous is None:
            # JetStream had it and Redis had forgotten it (flushed, failed over): a repeat.
            return Outcome.ALREADY_SIGNED
        return Outcome.ACCEPTED

    async def has_signed(self, petition_id: str, key: str) -> bool:
        return await self._redis.get(mark_key(petition_id, key)) == SIGNED
