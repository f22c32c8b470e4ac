"""The states written at start never overwrite a newer one in the PETITIONS bucket."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import asyncpg
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry

from paraphe_common.petition_states import PetitionState
from paraphe_common.petition_states import publish_state as real_publish_state
from paraphe_common.streams import ensure_petition_events_stream, petitions_bucket
from paraphe_petition_catalog import states
from paraphe_petition_catalog.events import EventPublisher, OutboxMetrics

if TYPE_CHECKING:
    from conftest import AddPetition, MakeCatalog


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


async def held(bucket: KeyValue, petition_id: uuid.UUID) -> PetitionState | None:
    try:
        entry = await bucket.get(str(petition_id))
    except KeyNotFoundError:
        return None
    return PetitionState.decode(entry.value or b"")


async def in_database(db: asyncpg.Pool, petition_id: uuid.UUID) -> PetitionState:
    row = await db.fetchrow(
        "SELECT status, extract(epoch FROM closes_at)::float8 AS closes_at"
        " FROM catalog.petitions WHERE id = $1",
        petition_id,
    )
    assert row is not None
    return PetitionState(row["status"], row["closes_at"])


class Transition:
    """A move of one petition as lifecycle.py makes it: its row locked, its status written and
    its event put in the outbox, in a transaction that stays open until told to commit."""

    def __init__(self, database_url: str, petition_id: uuid.UUID, to: str) -> None:
        self._database_url = database_url
        self._petition_id = petition_id
        self._to = to
        self.committed = asyncio.Event()

    async def begin(self) -> None:
        self.connection = await asyncpg.connect(self._database_url)
        self._transaction = self.connection.transaction()
        await self._transaction.start()
        await self.connection.execute(
            "SELECT 1 FROM catalog.petitions WHERE id = $1 FOR UPDATE", self._petition_id
        )
        await self.connection.execute(
            """
            UPDATE catalog.petitions SET status = $2,
                published_at = coalesce(published_at, now()),
                closes_at = coalesce(closes_at, now() + interval '6 months')
            WHERE id = $1
            """,
            self._petition_id,
            self._to,
        )
        event_id = uuid.uuid4()
        body = {"id": str(event_id), "kind": self._to, "petition_id": str(self._petition_id)}
        await self.connection.execute(
            "INSERT INTO catalog.events (id, petition_id, kind, body)"
            " VALUES ($1, $2, $3, $4::jsonb)",
            event_id,
            self._petition_id,
            self._to,
            json.dumps(body),
        )

    async def commit(self) -> bool:
        """Commit, once; whether this call committed."""
        if self.committed.is_set():
            return False
        await self._transaction.commit()
        self.committed.set()
        return True

    async def is_waited_for(self, db: asyncpg.Pool) -> bool:
        """Whether another session waits on the petition's row this transaction locks.

        Asked from outside the transaction, which would see the sessions as they were when it
        first looked.
        """
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
            self.connection.get_server_pid(),
        )
        return bool(waiting)

    async def close(self) -> None:
        await self.connection.close()


@pytest.mark.parametrize(
    ("status", "to"),
    [
        ("published", "hidden"),  # taken down: intake must stop taking signatures
        ("submitted", "published"),  # published: intake must start taking them
    ],
)
async def test_a_transition_committed_during_the_start_pass_is_not_undone(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    db: asyncpg.Pool,
    nats_client: NatsClient,
    migrated_database: str,
    monkeypatch: pytest.MonkeyPatch,
    status: str,
    to: str,
) -> None:
    """A rolling deploy: a new replica starts while an old one moves a petition.

    The move's transaction is open when the start pass runs, and commits at the worst moment
    the start pass leaves: once it waits on the petition's row, or else (a start pass that takes
    no lock) just before it writes what it read; the move's event is then published at once,
    as the old replica's outbox would. The bucket must end with the state after the move.
    """
    petition_id = await add_petition(status)
    jetstream = nats_client.jetstream()
    await ensure_petition_events_stream(jetstream)
    bucket = await petitions_bucket(jetstream)
    # The other replica's outbox.
    outbox = EventPublisher(db, jetstream, bucket, OutboxMetrics(CollectorRegistry()), 10.0)

    transition = Transition(migrated_database, petition_id, to)
    await transition.begin()

    moving = asyncio.Lock()

    async def commit_and_publish() -> None:
        async with moving:
            if await transition.commit():
                await outbox.publish()

    async def publish_state(bucket: KeyValue, key: str, state: PetitionState) -> None:
        if key == str(petition_id):
            await commit_and_publish()
        await real_publish_state(bucket, key, state)

    monkeypatch.setattr(states, "publish_state", publish_state)

    async def commit_once_waited_for() -> None:
        # Long: the catalogue's whole start comes first, on a loaded machine too.
        await eventually(lambda: transition.is_waited_for(db), timeout=120)
        await commit_and_publish()

    committer = asyncio.create_task(commit_once_waited_for())
    try:
        catalog = await make_catalog()
        await asyncio.wait_for(transition.committed.wait(), 120)
    finally:
        async with moving:  # the move, if begun, is over, committed and published
            committer.cancel()
        (outcome,) = await asyncio.gather(committer, return_exceptions=True)
        await transition.close()
    if not isinstance(outcome, asyncio.CancelledError | None):
        raise outcome  # the committer's own failure, not a timeout it would cause above

    after = await in_database(db, petition_id)
    assert after.status == to
    unpublished = "SELECT count(*) FROM catalog.events WHERE published_at IS NULL"
    await eventually(lambda: _is(db.fetchval(unpublished), 0))
    await eventually(lambda: _is(held(bucket, petition_id), after))
    # The start pass is over (the catalogue started) and wrote nothing after the move's state.
    assert await held(catalog.app[states.BUCKET], petition_id) == after


async def test_a_restart_writes_only_the_states_the_bucket_does_not_hold(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    db: asyncpg.Pool,
    nats_client: NatsClient,
) -> None:
    kept = await add_petition("published")
    moved = await add_petition("hidden")  # taken down while no catalogue ran
    new = await add_petition("submitted")
    bucket = await petitions_bucket(nats_client.jetstream())
    await real_publish_state(bucket, str(kept), await in_database(db, kept))
    await real_publish_state(bucket, str(moved), PetitionState("published", None))
    kept_revision = (await bucket.get(str(kept))).revision
    moved_revision = (await bucket.get(str(moved))).revision

    await make_catalog()

    assert (await bucket.get(str(kept))).revision == kept_revision  # not written again
    assert (await bucket.get(str(moved))).revision != moved_revision
    for petition_id in (kept, moved, new):
        assert await held(bucket, petition_id) == await in_database(db, petition_id)


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_a_petition_locked_for_good_holds_up_no_other_state_at_start(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    db: asyncpg.Pool,
    migrated_database: str,
) -> None:
    # The bucket lost: neither state is in it.
    locked = await add_petition("published")
    other = await add_petition("published")
    # A session that keeps one petition's row locked and never ends.
    blocker = await asyncpg.connect(migrated_database)
    try:
        stuck = blocker.transaction()
        await stuck.start()
        await blocker.execute("SELECT 1 FROM catalog.petitions WHERE id = $1 FOR UPDATE", locked)
        catalog = await make_catalog(outbox_publish_timeout=1)
        bucket = catalog.app[states.BUCKET]
        expected_other = await in_database(db, other)
        await eventually(lambda: _is(held(bucket, other), expected_other))
        await asyncio.sleep(1.5)  # the pass gives up waiting and tries again, and again
        assert await held(bucket, locked) is None
        await stuck.rollback()
    finally:
        await blocker.close()
    expected_locked = await in_database(db, locked)
    await eventually(lambda: _is(held(bucket, locked), expected_locked))
