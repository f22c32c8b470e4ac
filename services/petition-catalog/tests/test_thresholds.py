"""Thresholds from counter's events become flags with their time; counts feed the sorts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient

from paraphe_common.streams import ensure_petition_events_stream
from paraphe_devstack.servers import RedisServer
from paraphe_petition_catalog.counts import refresh_signature_counts
from paraphe_petition_catalog.thresholds import ThresholdFollower

if TYPE_CHECKING:
    from conftest import AddPetition, Client, MakeCatalog


async def announce(nats_client: NatsClient, body: Any, message_id: str | None = None) -> None:
    """Publish as counter does (paraphe_counter.thresholds)."""
    jetstream = nats_client.jetstream()
    await ensure_petition_events_stream(jetstream)
    await jetstream.publish(
        "petitions.events.threshold-reached",
        json.dumps(body).encode() if not isinstance(body, bytes) else body,
        headers={"Nats-Msg-Id": message_id or str(uuid.uuid4())},
    )


def reached(petition_id: uuid.UUID, threshold: int, signatures: int) -> dict[str, Any]:
    return {
        "petition_id": str(petition_id),
        "threshold": threshold,
        "signatures": signatures,
        "reached_at": "2026-11-20T14:00:00+00:00",
    }


async def flags(catalog: Client, petition_id: uuid.UUID) -> list[dict[str, Any]]:
    body = await (await catalog.get(f"/api/petitions/{petition_id}")).json()
    return list(body["thresholds"])


async def wait_for_flags(
    catalog: Client, petition_id: uuid.UUID, count: int
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = await flags(catalog, petition_id)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} flags in time")


async def test_a_threshold_reached_is_flagged_once_with_counters_time(
    make_catalog: MakeCatalog, add_petition: AddPetition, nats_client: NatsClient
) -> None:
    petition_id = await add_petition()
    catalog = await make_catalog()
    await announce(nats_client, b"{not json")  # dropped, and the follower goes on
    await announce(nats_client, reached(uuid.uuid4(), 100_000, 100_003))  # not ours: ignored
    await announce(nats_client, reached(petition_id, 100_000, 100_004))
    # Republished past the dedupe window (a new message id): still one flag.
    await announce(nats_client, reached(petition_id, 100_000, 100_004))
    await announce(nats_client, reached(petition_id, 500_000, 500_001))
    found = await wait_for_flags(catalog, petition_id, 2)
    await asyncio.sleep(0.5)
    assert (
        await flags(catalog, petition_id)
        == found
        == [
            {
                "threshold": 100_000,
                "signatures": 100_004,
                "reached_at": "2026-11-20T14:00:00+00:00",
            },
            {
                "threshold": 500_000,
                "signatures": 500_001,
                "reached_at": "2026-11-20T14:00:00+00:00",
            },
        ]
    )
    listed = await (await catalog.get("/api/petitions?threshold=500000")).json()
    assert [item["id"] for item in listed["items"]] == [str(petition_id)]


async def test_thresholds_announced_while_the_catalogue_was_away_are_flagged_at_start(
    make_catalog: MakeCatalog, add_petition: AddPetition, nats_client: NatsClient
) -> None:
    petition_id = await add_petition()
    await announce(nats_client, reached(petition_id, 100_000, 100_000))
    catalog = await make_catalog()
    assert [flag["threshold"] for flag in await wait_for_flags(catalog, petition_id, 1)] == [
        100_000
    ]


async def test_counts_are_copied_from_counters_totals_for_the_most_signed_sort(
    make_catalog: MakeCatalog,
    add_petition: AddPetition,
    redis_server: RedisServer,
    db: asyncpg.Pool,
) -> None:
    few = await add_petition(title="Peu signée mais récente", published_days_ago=1)
    many = await add_petition(title="Très signée mais ancienne", published_days_ago=9)
    unsigned = await add_petition(title="Pas encore signée du tout", published_days_ago=2)
    draft = await add_petition("draft")
    client = aioredis.from_url(redis_server.url)
    try:
        await client.set(f"count:{few}", 12)
        await client.set(f"count:{many}", 150_000)
        await client.set(f"count:{draft}", 7)  # not counted for a petition not published
        assert await refresh_signature_counts(db, client) == 2
        assert await refresh_signature_counts(db, client) == 0  # nothing changed since
    finally:
        await client.aclose()
    catalog = await make_catalog()
    listed = await (await catalog.get("/api/petitions?sort=most-signed")).json()
    assert [(item["id"], item["signature_count"]) for item in listed["items"]] == [
        (str(many), 150_000),
        (str(few), 12),
        (str(unsigned), 0),
    ]
    assert (
        await db.fetchval("SELECT signature_count FROM catalog.petitions WHERE id = $1", draft) == 0
    )


async def test_a_follower_cancelled_at_shutdown_leaves_no_subscription_behind(
    db: asyncpg.Pool, nats_client: NatsClient
) -> None:
    # A subscription left on the connection holds its drain at shutdown (nats-py waits for
    # its queue, which a fetch cut by a NATS restart can leave unfinished): the catalogue
    # took 10 s to stop after a NATS restart.
    follower = ThresholdFollower(db, nats_client.jetstream(), replicas=1)
    following = asyncio.create_task(follower.run())
    deadline = time.monotonic() + 10
    while follower.subscription is None:
        assert time.monotonic() < deadline, "the follower never subscribed"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # inside a fetch
    following.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await following
    assert follower.subscription is None
