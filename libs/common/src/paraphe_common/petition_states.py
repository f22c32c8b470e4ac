"""Each petition's state, as a local view fed by the PETITIONS key-value bucket.

petition-catalog writes a petition's state whenever it changes; intake and counter watch the
bucket: at start they read every petition's current state, then follow each change. A request
never waits on a database to learn whether a petition is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

import nats.errors
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from paraphe_common.health import READINESS
from paraphe_common.resources import JETSTREAM, NATS, CleanupContext, DependencyUnavailable
from paraphe_common.streams import petitions_bucket

log = logging.getLogger(__name__)

PUBLISHED: Final = "published"
CLOSED: Final = "closed"
HIDDEN: Final = "hidden"
_BOOTSTRAP_TIMEOUT_SECONDS: Final = 30.0
_RETRY_SECONDS: Final = 1.0


@dataclass(frozen=True)
class PetitionState:
    status: str
    closes_at: float | None  # seconds since the epoch

    def is_open(self, now: float) -> bool:
        return self.status == PUBLISHED and (self.closes_at is None or now < self.closes_at)

    def ended_at(self, now: float) -> float | None:
        """When signing it ended, as far as the state tells (seconds since the epoch), or None
        while it may still be signed, or never could be (a draft, a rejected petition).

        Closed: at its deadline. Taken down (hidden): the state does not say when, so at its
        deadline if that came first, else ``now``, a moment at or after the take-down; whoever
        keeps the earliest answer seen keeps a bound that errs late, never early.
        """
        if self.status == PUBLISHED:
            past_deadline = self.closes_at is not None and self.closes_at <= now
            return self.closes_at if past_deadline else None
        if self.status in (CLOSED, HIDDEN):
            return now if self.closes_at is None else min(self.closes_at, now)
        return None

    def encode(self) -> bytes:
        return json.dumps({"status": self.status, "closes_at": self.closes_at}).encode()

    @classmethod
    def decode(cls, data: bytes) -> PetitionState:
        document = json.loads(data)
        closes_at = document.get("closes_at")
        return cls(str(document["status"]), float(closes_at) if closes_at is not None else None)


async def publish_state(bucket: KeyValue, petition_id: str, state: PetitionState) -> None:
    await bucket.put(petition_id, state.encode())


class PetitionStates:
    """The local view: a dictionary kept current by a watcher."""

    def __init__(self) -> None:
        self._states: dict[str, PetitionState] = {}
        self.bootstrapped = asyncio.Event()

    def get(self, petition_id: str) -> PetitionState | None:
        return self._states.get(petition_id)

    def is_open(self, petition_id: str, now: float | None = None) -> bool:
        state = self._states.get(petition_id)
        return state is not None and state.is_open(time.time() if now is None else now)

    def __len__(self) -> int:
        return len(self._states)

    def items(self) -> list[tuple[str, PetitionState]]:
        """Every petition's state now (a copy: the watcher may change the view meanwhile)."""
        return list(self._states.items())

    async def follow(self, bucket: KeyValue, connection: NatsClient) -> None:
        """Read every state, then each change; start over after each reconnection.

        The watch is an ephemeral consumer: a NATS server that restarts forgets it, and it
        would go silent. So a reconnection means a new watch, and a fresh snapshot that also
        drops the petitions deleted meanwhile.
        """
        while True:
            reconnects = connection.stats["reconnects"]
            try:
                watcher = await bucket.watchall()
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                log.warning("cannot watch petition states yet: %r", exc)
                await asyncio.sleep(_RETRY_SECONDS)
                continue

            def reconnected(seen: int = reconnects) -> bool:
                return bool(connection.stats["reconnects"] != seen)

            try:
                await self._read(watcher, reconnected)
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call]
            log.info("NATS reconnected: reading petition states afresh")

    async def _read(self, watcher: KeyValue.KeyWatcher, stale: Callable[[], bool]) -> None:
        snapshot: dict[str, PetitionState] | None = {}
        while not stale():
            try:
                entry = await watcher.updates(timeout=_RETRY_SECONDS)  # type: ignore[no-untyped-call]
            except nats.errors.TimeoutError:
                continue
            if entry is None:  # every current state has been read
                if snapshot is not None:
                    self._states = snapshot
                    snapshot = None
                self.bootstrapped.set()
                continue
            states = snapshot if snapshot is not None else self._states
            if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                states.pop(entry.key, None)
                continue
            try:
                states[entry.key] = PetitionState.decode(entry.value)
            except (ValueError, KeyError, TypeError):
                log.error("ignoring a malformed state for petition %s", entry.key)


PETITION_STATES = web.AppKey("petition_states", PetitionStates)


def petition_states(replicas: int = 1) -> CleanupContext:
    """Follow the petition states; needs the NATS context before it."""

    async def follow_petition_states(app: web.Application) -> AsyncIterator[None]:
        states = PetitionStates()
        try:
            bucket = await petitions_bucket(app[JETSTREAM], replicas)
        except Exception as exc:
            raise DependencyUnavailable("NATS key-value PETITIONS", "JetStream", exc) from exc
        task = asyncio.create_task(states.follow(bucket, app[NATS]), name="follow-petition-states")
        try:
            async with asyncio.timeout(_BOOTSTRAP_TIMEOUT_SECONDS):
                await states.bootstrapped.wait()
        except TimeoutError:
            task.cancel()
            raise DependencyUnavailable(
                "NATS key-value PETITIONS", "JetStream", "no answer while reading states"
            ) from None
        log.info("following the states of %d petitions", len(states))
        app[PETITION_STATES] = states

        async def following() -> None:
            if task.done():
                raise ConnectionError("the petition states are no longer followed")

        app[READINESS].add("petition-states", following)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return follow_petition_states
