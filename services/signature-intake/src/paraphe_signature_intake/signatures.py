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
from collections.abc import Callable, Sequence
from typing import Final

import nats.errors
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from paraphe_common.marks import Mark, mark_of
from paraphe_common.streams import signature_subject
from paraphe_signature_intake.publisher import AckedPublisher, PublishFailed

log = logging.getLogger(__name__)

PENDING = b"p"
SIGNED = b"s"
# Seconds a promotion may wait for other marks to leave with it (module doc of Marks).
PROMOTION_DELAY: Final = 0.005


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    ALREADY_SIGNED = "already-signed"


class JetStreamUnavailable(Exception):
    pass


def dedupe_key(signer_key: str, petition_id: str) -> str:
    """HMAC(signer_key, petition): one person's signatures of two petitions cannot be linked."""
    # hmac.digest: OpenSSL's one-shot HMAC, the same bytes as hmac.new(...), 1.8 µs against 2.5.
    return hmac.digest(signer_key.encode(), petition_id.encode(), "sha256").hex()


# One command for a whole batch of marks, in the order they were asked (paraphe_common.marks
# says where a mark lives: a field of a signed bucket, a pending key), two keys and a field a
# mark: "p" sets a pending mark if there is none (answering the previous value, "s" when the
# person is already marked signed), "s" promotes a mark to signed (the pending key expires by
# itself), "g" reads a mark (after whatever was asked before it: a person asking right after a
# 202 reads its promotion).
# redis-py spends ~50 µs of Python per command to pack and parse it (measured with a CPU-time
# profile: a third of intake's time went to pipelined SETs); one script call per batch costs
# that once. The keys of a batch share no hash slot, so this needs a single Redis primary (a
# Sentinel group, as deployed), not Redis Cluster.
_MARKS_SCRIPT: Final = """
local ttl, kinds, answers = ARGV[1], ARGV[2], {}
for i = 1, #kinds do
  local bucket, pending, field = KEYS[2 * i - 1], KEYS[2 * i], ARGV[i + 2]
  local kind = string.byte(kinds, i)
  if kind == 115 then
    redis.call('HSET', bucket, field, 1)
    answers[i] = false
  elseif redis.call('HEXISTS', bucket, field) == 1 then
    answers[i] = 's'
  elseif kind == 103 then
    answers[i] = redis.call('GET', pending)
  else
    answers[i] = redis.call('SET', pending, 'p', 'NX', 'GET', 'EX', ttl)
  end
end
return answers
"""


class Marks:
    """The Redis marks, written in order through one connection, a batch a round trip.

    Marks wait while a batch is out and leave together in the next one (auto-pipelining), as
    one script call; one writer keeps the order in which they were asked. That order is what
    makes a repeat after a 202 answer "already signed": the 202's promotion was queued before
    the answer went out, so before any mark of the repeat.

    Nobody waits for a promotion, so promotions alone wait up to ``PROMOTION_DELAY`` for
    pending marks to leave with: at a steady rate, with few requests in flight at once, that
    halves the round trips to Redis per signature (each costs a script call's Python and two
    system calls, the largest costs of intake after HTTP itself).

    The writer is alone in sending, one batch at a time, so it keeps one connection of the
    client's pool (to the master the sentinels name, when deployed with them) and talks on it
    directly: redis-py's per-command layers (the pool taken and given back, the retry wrapper,
    the script object) were ~5 % of intake's CPU at 2,000 signatures/s. A connection that
    fails is closed and given back; the next batch takes another (after a failover, to the new
    master), and the marks of the failed batch go on without Redis, as designed. So do they
    when Redis has not answered within ``timeout`` seconds.
    """

    def __init__(self, redis: aioredis.Redis, pending_ttl: int, timeout: float = 0.5) -> None:
        self._pool = redis.connection_pool
        self._sha = hashlib.sha1(_MARKS_SCRIPT.encode(), usedforsecurity=False).hexdigest()
        self._connection: AbstractConnection | None = None
        self._pending_ttl = pending_ttl
        self._timeout = timeout
        # (mark, kind, the future of its value) for a pending mark or a reading ("p", "g");
        # (mark, "s", None) to promote.
        self._queued: list[tuple[Mark, str, asyncio.Future[bytes | None] | None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._urgent = asyncio.Event()  # set when a queued mark has somebody waiting for it

    def set_pending(self, mark: Mark) -> asyncio.Future[bytes | None]:
        """The mark's previous value once it is set to pending, if it was not set already."""
        answer: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._enqueue(mark, answer)
        return answer

    def read(self, mark: Mark) -> asyncio.Future[bytes | None]:
        """The mark's value, read after every mark asked before."""
        answer: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._enqueue(mark, answer, "g")
        return answer

    def promote(self, mark: Mark) -> None:
        """Pending → signed, after JetStream's ack; nobody waits for it.

        A late or lost promotion costs a duplicate publish on a repeat, never a count.
        """
        self._enqueue(mark, None, "s")

    def _enqueue(
        self, mark: Mark, answer: asyncio.Future[bytes | None] | None, kind: str = "p"
    ) -> None:
        self._queued.append((mark, kind, answer))
        if answer is not None:
            self._urgent.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queued:
                if not self._urgent.is_set():  # promotions only: let pending marks join them
                    # A timer rather than asyncio.timeout(): a third of the cost, every batch.
                    timer = loop.call_later(PROMOTION_DELAY, self._urgent.set)
                    await self._urgent.wait()
                    timer.cancel()
                self._urgent.clear()
                batch, self._queued = self._queued, []
                await self._send(batch)
        finally:
            self._writer = None

    async def _send(
        self, batch: list[tuple[Mark, str, asyncio.Future[bytes | None] | None]]
    ) -> None:
        kinds = "".join(kind for _, kind, _ in batch)
        keys: list[str] = []
        for mark, _, _ in batch:
            keys += (mark.bucket, mark.pending)
        args = (self._pending_ttl, kinds, *(mark.field for mark, _, _ in batch))
        try:
            results = await self._call(keys, args)
        except Exception as exc:  # whatever it is, nobody may wait for ever
            if not isinstance(exc, RedisError | OSError):
                log.exception("marks batch failed")
            failed = [answer for _, _, answer in batch if answer is not None and not answer.done()]
            for waiting in failed:
                waiting.set_exception(exc)
            if len(failed) < len(batch):
                log.warning("could not promote %d marks: %r", len(batch) - len(failed), exc)
            return
        for (_, _, answer), previous in zip(batch, results, strict=True):
            if answer is not None and not answer.done():  # else a promotion, or a request gone
                answer.set_result(previous)

    async def _call(self, keys: list[str], args: Sequence[object]) -> list[bytes | None]:
        """The script on the writer's connection, once more on a new one if the kept one had
        gone (Redis restarted, a failover): running the script twice is harmless, a pending
        mark set by the first run reads as pending, which publishes again under the same id."""
        for attempt in (1, 2):
            connection = self._connection
            if connection is None:
                # Connecting says hello to Redis, an exchange under redis-py's 5 s otherwise.
                async with asyncio.timeout(self._timeout):
                    connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
                self._connection = connection
            try:
                return await self._evaluate(connection, keys, args)
            except ResponseError:
                raise  # Redis answered: the connection is in step
            except BaseException as exc:
                # Cut mid-exchange (an error, a timeout, a cancellation): never reused.
                self._connection = None
                await connection.disconnect()
                await self._pool.release(connection)
                if attempt == 2 or not isinstance(exc, RedisConnectionError):
                    raise
        raise AssertionError("unreachable")

    async def _evaluate(
        self, connection: AbstractConnection, keys: list[str], args: Sequence[object]
    ) -> list[bytes | None]:
        """By the script's digest; by its text when Redis does not know it (a restarted or
        newly promoted server), which teaches it the digest."""
        try:
            await connection.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
            answer = await connection.read_response(timeout=self._timeout)
        except NoScriptError:
            await connection.send_command("EVAL", _MARKS_SCRIPT, len(keys), *keys, *args)
            answer = await connection.read_response(timeout=self._timeout)
        if answer is None:  # redis-py's word for "no answer within the timeout"; ours: a list
            raise RedisTimeoutError(f"Redis did not answer within {self._timeout} s")
        return answer  # type: ignore[no-any-return]

    async def drain(self) -> None:
        """At shutdown: what is queued is written before Redis closes, without delay; the
        writer's connection goes back to the pool."""
        self._urgent.set()
        while self._writer is not None:
            await asyncio.shield(self._writer)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await self._pool.release(connection)


class Intake:
    def __init__(
        self,
        redis: aioredis.Redis,
        publisher: AckedPublisher,
        *,
        pending_ttl: int,
        marks_timeout: float = 0.5,
        redis_unavailable: Callable[[], None] = lambda: None,
    ) -> None:
        self._publisher = publisher
        self.marks = Marks(redis, pending_ttl, marks_timeout)
        self._redis_unavailable = redis_unavailable

    async def accept(self, petition_id: str, key: str) -> Outcome:
        mark = mark_of(petition_id, key)
        redis_answers = True
        try:
            previous = await self.marks.set_pending(mark)
        except (RedisError, OSError) as exc:
            redis_answers, previous = False, None
            self._redis_unavailable()
            log.warning("Redis unavailable, deduplicating with JetStream only: %r", exc)
        if previous == SIGNED:
            return Outcome.ALREADY_SIGNED
        try:
            duplicate = await self._publisher.publish(
                signature_subject(petition_id), key.encode(), message_id=key
            )
        except (PublishFailed, nats.errors.Error, OSError) as exc:
            # The pending mark stays: a retry publishes again, and it expires if none comes.
            raise JetStreamUnavailable(type(exc).__name__) from exc
        if redis_answers:
            self.marks.promote(mark)
        if duplicate:
            # JetStream had it: a repeat, whatever Redis said. Pending: an attempt not yet
            # promoted (just answered 202, by this replica or another, or cut before its
            # answer); none: Redis forgot it (flushed, failed over). Each signature is answered
            # 202 once, every repeat 200.
            return Outcome.ALREADY_SIGNED
        return Outcome.ACCEPTED

    async def has_signed(self, petition_id: str, key: str) -> bool:
        return await self.marks.read(mark_of(petition_id, key)) == SIGNED
