"""Every event reaches JetStream exactly once, whatever fails between the commit and the ack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import asyncpg
import nats
from nats.aio.client import Client as NatsClient
from prometheus_client.parser import text_string_to_metric_families

from paraphe_common.petition_states import PetitionState
from paraphe_common.streams import PETITION_EVENTS, ensure_petition_events_stream
from paraphe_devstack.servers import NatsServer
from paraphe_petition_catalog import lifecycle
from paraphe_petition_catalog.states import BUCKET

if TYPE_CHECKING:
    from conftest import AddPetition, Client, MakeCatalog, Tokens


async def events_in_stream(nats_client: NatsClient, kind: str) -> int:
    info = await nats_client.jetstream().stream_info(
        PETITION_EVENTS, subjects_filter=f"petitions.events.{kind}"
    )
    return int((info.state.subjects or {}).get(f"petitions.events.{kind}", 0))


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the condition did not hold in time")


@contextlib.asynccontextmanager
async def session_holding(database_url: str, query: str, *args: object) -> AsyncIterator[None]:
    """A session that takes locks with ``query`` and keeps its transaction open until the block
    ends (a client gone, a psql left open, another replica in the middle of its work)."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("BEGIN")
        await connection.execute(query, *args)
        yield
    finally:
        await connection.close()  # the transaction, and its locks, end with the session


async def unpublished(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(*) FROM catalog.events WHERE published_at IS NULL"))


async def test_a_decision_taken_while_nats_is_down_is_published_once_it_is_back(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    tokens: Tokens,
    nats_server: NatsServer,
    db: asyncpg.Pool,
) -> None:
    petition_id = await add_petition("submitted")
    catalog = await make_catalog()
    nats_server.stop()
    started = time.monotonic()
    response = await catalog.post(
        f"/internal/petitions/{petition_id}/decisions",
        json={"decision_id": str(uuid.uuid4()), "decision": "publish", "committee": "lois"},
        headers=tokens.staff("moderator"),
    )
    assert response.status == 200  # the decision is taken: the event waits in the outbox
    assert time.monotonic() - started < 10
    assert await unpublished(db) == 1
    await eventually(lambda: _backlog_reported(catalog, 1))
    # What operators are paged on: the event ages while it waits.
    first = await _oldest_reported(catalog)
    await eventually(lambda: _oldest_reported_over(catalog, first + 1))
    nats_server.start()
    await eventually(lambda: _none_left(db), timeout=20)
    watcher = await nats.connect(nats_server.url)
    try:
        assert await events_in_stream(watcher, "published") == 1
    finally:
        await watcher.drain()
    state = await catalog.app[BUCKET].get(str(petition_id))
    assert PetitionState.decode(state.value or b"").status == "published"
    metrics = await (await catalog.get("/metrics")).text()
    assert 'petition_catalog_events_published_total{kind="published"} 1.0' in metrics
    await eventually(lambda: _backlog_reported(catalog, 0))
    assert await _oldest_reported(catalog) == 0


async def _backlog_reported(catalog: Client, events: int) -> bool:
    metrics = await (await catalog.get("/metrics")).text()
    return f"petition_catalog_events_unpublished {events}.0" in metrics


async def _oldest_reported(catalog: Client) -> float:
    metrics = await (await catalog.get("/metrics")).text()
    for family in text_string_to_metric_families(metrics):
        if family.name == "petition_catalog_events_oldest_unpublished_age_seconds":
            return float(family.samples[0].value)
    raise AssertionError("the age of the oldest unpublished event is not exported")


async def _oldest_reported_over(catalog: Client, seconds: float) -> bool:
    return await _oldest_reported(catalog) > seconds


async def _none_left(db: asyncpg.Pool) -> bool:
    return await unpublished(db) == 0


async def test_an_event_published_but_not_marked_is_not_published_twice(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    tokens: Tokens,
    nats_client: NatsClient,
    db: asyncpg.Pool,
) -> None:
    petition_id = await add_petition("published")
    catalog = await make_catalog()
    response = await catalog.post(
        f"/internal/petitions/{petition_id}/decisions",
        json={
            "decision_id": str(uuid.uuid4()),
            "decision": "take-down",
            "reason_code": "publicite",
            "reason": "Le texte fait la promotion d'un produit.",
        },
        headers=tokens.staff("moderator"),
    )
    assert response.status == 200
    assert await unpublished(db) == 0
    # As if the process had died after JetStream's ack and before the mark.
    await db.execute("UPDATE catalog.events SET published_at = NULL")
    await eventually(lambda: _none_left(db))
    assert await events_in_stream(nats_client, "hidden") == 1


async def test_events_a_crash_left_behind_are_published_at_start(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    nats_client: NatsClient,
    db: asyncpg.Pool,
) -> None:
    petition_id = await add_petition("submitted")
    # A transition committed by a process that died before publishing anything.
    await _decide_unpublished(db, petition_id, "reject")
    await ensure_petition_events_stream(nats_client.jetstream())
    assert await events_in_stream(nats_client, "rejected") == 0
    catalog = await make_catalog()
    await eventually(lambda: _none_left(db))
    assert await events_in_stream(nats_client, "rejected") == 1
    state = await catalog.app[BUCKET].get(str(petition_id))
    assert PetitionState.decode(state.value or b"").status == "rejected"


async def test_the_oldest_event_ages_while_the_outbox_pass_hangs_and_goes_out_after(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    nats_client: NatsClient,
    db: asyncpg.Pool,
    migrated_database: str,
) -> None:
    petition_id = await add_petition("submitted")
    await _decide_unpublished(db, petition_id, "reject")
    # A session that keeps the petitions table locked against row locks and never ends (a
    # stuck migration, an operator's psql left open): the pass waits on the lock, as it would
    # on a PostgreSQL that stopped answering, and nothing it does after that point runs.
    async with session_holding(migrated_database, "LOCK TABLE catalog.petitions IN EXCLUSIVE MODE"):
        catalog = await make_catalog(outbox_publish_timeout=1)
        # What operators are paged on goes on growing while the pass hangs...
        await eventually(lambda: _oldest_reported_over(catalog, 0))
        first = await _oldest_reported(catalog)
        await eventually(lambda: _oldest_reported_over(catalog, first + 2))
        assert await _backlog_reported(catalog, 1)
        # ...and the pass, given up after its timeout, is counted and tried again.
        await eventually(lambda: _timeouts_reported_over(catalog, 1))
        assert await unpublished(db) == 1
    await eventually(lambda: _none_left(db))
    assert await events_in_stream(nats_client, "rejected") == 1
    state = await catalog.app[BUCKET].get(str(petition_id))
    assert PetitionState.decode(state.value or b"").status == "rejected"
    await eventually(lambda: _backlog_reported(catalog, 0))
    await eventually(lambda: _oldest_reported_is(catalog, 0))


async def _oldest_reported_is(catalog: Client, seconds: float) -> bool:
    return await _oldest_reported(catalog) == seconds


async def _timeouts_reported_over(catalog: Client, passes: int) -> bool:
    metrics = await (await catalog.get("/metrics")).text()
    for family in text_string_to_metric_families(metrics):
        if family.name == "petition_catalog_outbox_timeouts":
            return sum(s.value for s in family.samples if s.name.endswith("_total")) > passes
    return False


async def _decide_unpublished(db: asyncpg.Pool, petition_id: uuid.UUID, decision: str) -> uuid.UUID:
    """A transition committed by a process that died before publishing it; its event's id."""
    if decision == "reject":
        chosen = lifecycle.Decision(
            uuid.uuid4(),
            "reject",
            "marie",
            reason_code="doublon",
            reason="Une pétition identique est déjà ouverte.",
        )
    elif decision == "publish":
        chosen = lifecycle.Decision(uuid.uuid4(), "publish", "marie", committee="lois")
    else:
        chosen = lifecycle.Decision(
            uuid.uuid4(),
            "take-down",
            "marie",
            reason_code="publicite",
            reason="Le texte fait la promotion d'un produit.",
        )
    outcome = await lifecycle.decide(
        db, petition_id, chosen, signing_period_months=6, thresholds=(100_000, 500_000)
    )
    (event_id,) = outcome.event_ids
    return event_id


async def _published(db: asyncpg.Pool, event_id: uuid.UUID) -> bool:
    return bool(
        await db.fetchval(
            "SELECT published_at IS NOT NULL FROM catalog.events WHERE id = $1", event_id
        )
    )


async def test_a_petition_locked_for_good_holds_up_its_own_events_and_no_others(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    nats_client: NatsClient,
    db: asyncpg.Pool,
    migrated_database: str,
) -> None:
    stuck_petition = await add_petition("submitted")
    other_petition = await add_petition("submitted")
    stuck_event = await _decide_unpublished(db, stuck_petition, "reject")
    other_event = await _decide_unpublished(db, other_petition, "reject")  # written after
    # A session that keeps one petition's row locked and never ends (a transaction whose
    # client vanished, an operator's psql left open).
    async with session_holding(
        migrated_database,
        "SELECT 1 FROM catalog.petitions WHERE id = $1 FOR UPDATE",
        stuck_petition,
    ):
        catalog = await make_catalog(outbox_publish_timeout=1)
        # The other petition's event goes out, and its state reaches intake's bucket...
        await eventually(lambda: _published(db, other_event))
        state = await catalog.app[BUCKET].get(str(other_petition))
        assert PetitionState.decode(state.value or b"").status == "rejected"
        # ...no pass is given up waiting for the lock...
        await asyncio.sleep(1.5)
        assert not await _timeouts_reported_over(catalog, 0)
        # ...and the locked one waits, what operators are paged on growing meanwhile.
        assert not await _published(db, stuck_event)
        await eventually(lambda: _oldest_reported_over(catalog, 1))
    await eventually(lambda: _published(db, stuck_event))
    assert await events_in_stream(nats_client, "rejected") == 2
    await eventually(lambda: _oldest_reported_is(catalog, 0))


async def _kinds_in_stream_order(nats_client: NatsClient, petition_id: uuid.UUID) -> list[str]:
    """The kinds of a petition's events, in the order JetStream stored them."""
    jetstream = nats_client.jetstream()
    info = await jetstream.stream_info(PETITION_EVENTS)
    kinds = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        message = await jetstream.get_msg(PETITION_EVENTS, sequence)
        body = json.loads(message.data or b"{}")
        if body["petition_id"] == str(petition_id):
            kinds.append(body["kind"])
    return kinds


async def test_a_petitions_events_go_out_in_order_when_another_publishing_holds_the_first(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    nats_client: NatsClient,
    db: asyncpg.Pool,
    migrated_database: str,
) -> None:
    petition_id = await add_petition("submitted")
    first = await _decide_unpublished(db, petition_id, "publish")
    second = await _decide_unpublished(db, petition_id, "take-down")
    witness_petition = await add_petition("submitted")
    witness = await _decide_unpublished(db, witness_petition, "reject")  # written last
    # Another replica in the middle of publishing the first event: it holds the event's row
    # and shares the petition's, as the outbox's own query does; the second event is free.
    async with session_holding(
        migrated_database,
        """
        SELECT 1 FROM catalog.events e JOIN catalog.petitions p ON p.id = e.petition_id
        WHERE e.id = $1
        FOR UPDATE OF e FOR SHARE OF p
        """,
        first,
    ):
        await make_catalog()
        # Once the witness, written after both, is out, the pass has been past the second.
        await eventually(lambda: _published(db, witness))
        await asyncio.sleep(0.5)  # a few more passes
        assert not await _published(db, second), "the take-down went out before the publication"
    # The other replica died: its batch goes to the next pass.
    await eventually(lambda: _none_left(db))
    assert await _kinds_in_stream_order(nats_client, petition_id) == ["published", "hidden"]
    assert await _published(db, first)
