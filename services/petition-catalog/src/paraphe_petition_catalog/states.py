"""The catalogue owns petition states and publishes them to the PETITIONS bucket.

At start every petition's state is written that the bucket does not already hold, so the bucket
converges on the database whatever happened while the catalogue was away; each transition
writes its petition's state again (the outbox, events.py).

The start pass follows the outbox's rule: a state is written while its petition's row is
share-locked, so no transition commits between reading the state and writing it, and a replica
starting while another one moves a petition cannot put back the state from before the move.
It reads the bucket once, then the petitions batch by batch without a lock, and locks (and
reads again) only those whose state the bucket does not hold: a restart rewrites nothing, and
holds no row. Skipping a petition unlocked is safe: the bucket held its current state when it
was read, and since then either no transition committed, so every write was that state again,
or one did, and its event, in the outbox, writes the state after it.

A petition whose row is locked when its batch comes (a transition in flight, a session that
never ends) is passed over, so that one lock does not hold up every petition after it, and
waited for once every other batch is done. A batch, or that wait, not done within the outbox's
timeout is rolled back and tried again after the outbox's interval; the catalogue starts once
the first attempt is over, done or not, and a pass left unfinished goes on in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Final

import asyncpg
import nats.errors
from aiohttp import web
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.resources import JETSTREAM, POSTGRES, CleanupContext, DependencyUnavailable
from paraphe_common.streams import petitions_bucket

log = logging.getLogger(__name__)

BUCKET = web.AppKey("petitions_bucket", KeyValue)

# Petitions read (unlocked) at once by the start pass.
BATCH: Final = 500
# Seconds the reading of the bucket may wait for its next entry.
READ_TIMEOUT: Final = 10.0
# The states of some petitions, their rows share-locked: the outbox's lock.
_LOCKED_STATES: Final = """
    SELECT id, status, extract(epoch FROM closes_at)::float8 AS closes_at
    FROM catalog.petitions
    WHERE id = ANY($1::uuid[])
    ORDER BY id
    FOR SHARE"""
_EXPECTED_ERRORS: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    nats.errors.Error,
    OSError,
    TimeoutError,
)


def _state(row: asyncpg.Record) -> PetitionState:
    return PetitionState(row["status"], row["closes_at"])


async def held_states(bucket: KeyValue) -> dict[str, PetitionState | None]:
    """Every state the bucket holds, by petition (None: a value that does not decode)."""
    watcher = await bucket.watchall()
    try:
        held: dict[str, PetitionState | None] = {}
        while True:
            entry = await watcher.updates(timeout=READ_TIMEOUT)  # type: ignore[no-untyped-call]
            if entry is None:  # every current value has been read
                return held
            if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                held.pop(entry.key, None)
                continue
            try:
                held[entry.key] = PetitionState.decode(entry.value)
            except (ValueError, KeyError, TypeError):
                held[entry.key] = None
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]


class StatesPass:
    """The start pass, resumable: a batch given up is tried again from where it stopped."""

    def __init__(self, pool: asyncpg.Pool, bucket: KeyValue, timeout: float) -> None:
        self._pool = pool
        self._bucket = bucket
        self._timeout = timeout
        self._held: dict[str, PetitionState | None] | None = None
        self._after: uuid.UUID | None = None  # the last petition done, in id order
        self._passed_over: set[uuid.UUID] = set()  # locked when their batch came
        self.read = 0
        self.written = 0

    async def run(self) -> None:
        """Go on to the end; raises (a timeout, a failure) with the work done kept."""
        if self._held is None:
            self._held = await held_states(self._bucket)
        while True:
            deadline = asyncio.timeout(self._timeout)
            try:
                async with deadline:
                    read = await self._batch(self._held)
            except TimeoutError:
                if deadline.expired():
                    log.warning(
                        "writing petition states took more than %.0f s: given up",
                        self._timeout,
                    )
                raise
            if not read:
                break
        # One at a time: a lock never released holds up no other petition's moves.
        for petition_id in sorted(self._passed_over):
            deadline = asyncio.timeout(self._timeout)
            try:
                async with deadline:
                    await self._write([petition_id], self._held, wait=True)
            except TimeoutError:
                if deadline.expired():
                    log.warning(
                        "petition %s stayed locked for more than %.0f s: its state waits",
                        petition_id,
                        self._timeout,
                    )
                raise
            self._passed_over.discard(petition_id)

    async def _batch(self, held: dict[str, PetitionState | None]) -> int:
        rows = await self._pool.fetch(
            """
            SELECT id, status, extract(epoch FROM closes_at)::float8 AS closes_at
            FROM catalog.petitions
            WHERE id > coalesce($1::uuid, '00000000-0000-0000-0000-000000000000')
            ORDER BY id
            LIMIT $2
            """,
            self._after,
            BATCH,
        )
        if not rows:
            return 0
        stale = [row["id"] for row in rows if held.get(str(row["id"])) != _state(row)]
        if stale:
            await self._write(stale, held, wait=False)
        self.read += len(rows)
        self._after = rows[-1]["id"]
        return len(rows)

    async def _write(
        self, petition_ids: list[uuid.UUID], held: dict[str, PetitionState | None], *, wait: bool
    ) -> None:
        """Write the states of these petitions under the outbox's lock: waiting for it, or
        passing over those whose row is locked now, to come back to them at the end."""
        written = 0
        async with self._pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                _LOCKED_STATES if wait else _LOCKED_STATES + " SKIP LOCKED", petition_ids
            )
            for row in rows:
                state = _state(row)
                if held.get(str(row["id"])) == state:
                    continue  # moved meanwhile to what the bucket holds
                await publish_state(self._bucket, str(row["id"]), state)
                written += 1
        # Counted once committed: a batch rolled back is written again.
        self.written += written
        if not wait:
            self._passed_over.update(set(petition_ids) - {row["id"] for row in rows})


async def _run_to_the_end(states: StatesPass, first_attempt: asyncio.Event, retry: float) -> None:
    while True:
        try:
            await states.run()
        except _EXPECTED_ERRORS as exc:
            log.warning("petition states not all written yet (%r); trying again", exc)
        except Exception:
            log.exception("petition states not all written yet; trying again")
        else:
            log.info(
                "petition states: %d petitions read, %d states written (the others were"
                " already in the bucket)",
                states.read,
                states.written,
            )
            first_attempt.set()
            return
        first_attempt.set()
        await asyncio.sleep(retry)


def petition_states_publisher(replicas: int, timeout: float, retry: float) -> CleanupContext:
    """The PETITIONS bucket, and the start pass: ``timeout`` for a batch, ``retry`` seconds
    between two attempts."""

    async def publish_petition_states(app: web.Application) -> AsyncIterator[None]:
        bucket = await petitions_bucket(app[JETSTREAM], replicas)
        pool = app[POSTGRES]
        try:
            await pool.fetchval("SELECT 1 FROM catalog.petitions LIMIT 1")
        except asyncpg.UndefinedTableError:
            raise DependencyUnavailable(
                "PostgreSQL schema catalog",
                "the database",
                "not migrated: run `paraphe-petition-catalog migrate` first",
            ) from None
        app[BUCKET] = bucket
        first_attempt = asyncio.Event()
        task = asyncio.create_task(
            _run_to_the_end(StatesPass(pool, bucket, timeout), first_attempt, retry),
            name="petition-states",
        )
        try:
            await first_attempt.wait()
            if not task.done():
                log.warning("the catalogue starts with petition states still to write")
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return publish_petition_states
