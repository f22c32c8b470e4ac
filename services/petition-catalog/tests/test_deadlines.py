"""Petitions close by themselves at their deadline, once, whatever the number of replicas."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import asyncpg
import pytest
from nats.aio.client import Client as NatsClient

from paraphe_common.petition_states import PetitionState
from paraphe_petition_catalog import lifecycle
from paraphe_petition_catalog.states import BUCKET

if TYPE_CHECKING:
    from conftest import AddPetition, MakeCatalog


@pytest.mark.timeout(60)
async def test_concurrent_closers_close_each_expired_petition_exactly_once(
    add_petition: AddPetition, db: asyncpg.Pool, migrated_database: str
) -> None:
    expired = {await add_petition(published_days_ago=200, open_days=180) for _ in range(40)}
    still_open = {await add_petition(published_days_ago=10, open_days=180) for _ in range(3)}
    pools = [await asyncpg.create_pool(migrated_database, min_size=1, max_size=1) for _ in range(4)]

    async def closer(pool: asyncpg.Pool) -> int:
        closed = 0
        while outcome := await lifecycle.close_expired(pool, limit=3):
            if not outcome.event_ids:
                return closed
            closed += len(outcome.event_ids)
        return closed

    try:
        closed_by_each = await asyncio.gather(*(closer(pool) for pool in pools))
    finally:
        for pool in pools:
            await pool.close()
    assert sum(closed_by_each) == len(expired)
    rows = await db.fetch("SELECT id, status FROM catalog.petitions")
    assert {row["id"] for row in rows if row["status"] == "closed"} == expired
    assert {row["id"] for row in rows if row["status"] == "published"} == still_open
    transitions = await db.fetch(
        "SELECT petition_id FROM catalog.transitions WHERE to_status = 'closed'"
    )
    assert sorted(row["petition_id"] for row in transitions) == sorted(expired)
    events = await db.fetch("SELECT petition_id FROM catalog.events WHERE kind = 'closed'")
    assert sorted(row["petition_id"] for row in events) == sorted(expired)


async def test_the_deadline_pass_closes_a_petition_and_intake_learns_it(
    make_catalog: MakeCatalog, add_petition: AddPetition, nats_client: NatsClient
) -> None:
    closed_events = await nats_client.subscribe("petitions.events.closed")
    # Closes a second and a half after the catalogue starts.
    petition_id = await add_petition(published_days_ago=1, open_days=1 + 1.5 / 86400)
    catalog = await make_catalog(deadline_check_interval=0.2)
    state = await catalog.app[BUCKET].get(str(petition_id))
    assert PetitionState.decode(state.value or b"").status == "published"
    event = json.loads((await closed_events.next_msg(timeout=10)).data)
    assert (event["kind"], event["petition_id"], event["status"]) == (
        "closed",
        str(petition_id),
        "closed",
    )
    # The bucket is written just after the event is published (events.py): soon, not at once.
    for _ in range(100):
        state = await catalog.app[BUCKET].get(str(petition_id))
        if PetitionState.decode(state.value or b"").status == "closed":
            break
        await asyncio.sleep(0.05)
    assert PetitionState.decode(state.value or b"").status == "closed"
    public = await (await catalog.get(f"/api/petitions/{petition_id}")).json()
    assert public["status"] == "closed"
    assert public["closed_at"] is not None
