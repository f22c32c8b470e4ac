"""Every event reaches JetStream exactly once, whatever fails between the commit and the ack."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
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
    outcome = await lifecycle.decide(
        db,
        petition_id,
        lifecycle.Decision(
            uuid.uuid4(),
            "reject",
            "marie",
            reason_code="doublon",
            reason="Une pétition identique est déjà ouverte.",
        ),
        signing_period_months=6,
        thresholds=(100_000, 500_000),
    )
    assert len(outcome.event_ids) == 1
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
    # A transition committed by a process that died before publishing it.
    await lifecycle.decide(
        db,
        petition_id,
        lifecycle.Decision(
            uuid.uuid4(),
            "reject",
            "marie",
            reason_code="doublon",
            reason="Une pétition identique est déjà ouverte.",
        ),
        signing_period_months=6,
        thresholds=(100_000, 500_000),
    )
    # A session that keeps the petition's row locked and never ends (a stuck transaction, an
    # operator's psql left open): the pass waits on the lock, as it would on a PostgreSQL that
    # stopped answering, and nothing it does after that point runs.
    blocker = await asyncpg.connect(migrated_database)
    try:
        stuck = blocker.transaction()
        await stuck.start()
        await blocker.execute(
            "SELECT 1 FROM catalog.petitions WHERE id = $1 FOR UPDATE", petition_id
        )
        catalog = await make_catalog(outbox_publish_timeout=1)
        # What operators are paged on goes on growing while the pass hangs...
        await eventually(lambda: _oldest_reported_over(catalog, 0))
        first = await _oldest_reported(catalog)
        await eventually(lambda: _oldest_reported_over(catalog, first + 2))
        assert await _backlog_reported(catalog, 1)
        # ...and the pass, given up after its timeout, is counted and tried again.
        await eventually(lambda: _timeouts_reported_over(catalog, 1))
        assert await unpublished(db) == 1
        await stuck.rollback()
    finally:
        await blocker.close()
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
