"""Signing velocity: shares of the busiest network ranges and petitions over a sliding window,
exported by rank (never a range or an address in a label), on a real aiohttp server."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from pytest_aiohttp import AiohttpClient

from paraphe_common.app import create_service_app
from paraphe_common.settings import ServiceSettings
from paraphe_common.velocity import (
    SIGNING_GUARD,
    SIGNING_VELOCITY,
    SigningGuard,
    SigningVelocity,
)

Client = TestClient[web.Request, web.Application]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_shares_rank_the_busiest_ranges_and_petitions() -> None:
    velocity = SigningVelocity(clock=Clock(), top=3)
    for _ in range(6):
        velocity.record("203.0.113.0/24", "p1")
    for _ in range(3):
        velocity.record("198.51.100.0/24", "p2")
    velocity.record("2001:db8:1::/48", "p2")
    total, networks, petitions = velocity.shares()
    assert total == 10
    assert networks == [0.6, 0.3, 0.1]
    assert petitions == [0.6, 0.4]


def test_the_window_slides_and_forgets() -> None:
    clock = Clock()
    velocity = SigningVelocity(clock=clock, window=300, slot=10)
    for _ in range(100):
        velocity.record("203.0.113.0/24", "p1")
    clock.now += 150
    for _ in range(100):
        velocity.record("198.51.100.0/24", "p2")
    assert velocity.shares()[0] == 200
    clock.now += 160  # the first burst is now older than the window
    total, networks, petitions = velocity.shares()
    assert (total, networks, petitions) == (100, [1.0], [1.0])
    clock.now += 300
    assert velocity.shares() == (0, [], [])


def test_ranges_beyond_the_bound_are_counted_but_never_ranked() -> None:
    velocity = SigningVelocity(clock=Clock(), max_keys=2)
    for network in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "203.0.114.0/24"):
        velocity.record(network, "p1")
    total, networks, _ = velocity.shares()
    assert total == 4
    assert networks == [0.25, 0.25]  # the two others went to OTHER, which is not ranked


def test_a_dominating_range_is_logged_once_per_window(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    velocity = SigningVelocity(clock=clock, log_share=0.5, log_volume=10)
    with caplog.at_level(logging.WARNING, logger="paraphe_common.velocity"):
        for i in range(40):
            velocity.record("203.0.113.0/24" if i % 4 else f"192.0.{i}.0/24", "p1")
    dominating = [
        r for r in caplog.records if r.getMessage() == "one network range dominates signing"
    ]
    assert len(dominating) == 1
    assert dominating[0].__dict__["network"] == "203.0.113.0/24"


def test_metrics_are_labelled_by_rank_only() -> None:
    registry = CollectorRegistry()
    velocity = SigningVelocity(registry, clock=Clock(), top=2)
    velocity.record("203.0.113.0/24", "petition-a")
    text = generate_latest(registry).decode()
    assert "signing_velocity_window_signatures 1.0" in text
    assert 'signing_velocity_top_network_share{rank="1"} 1.0' in text
    assert 'signing_velocity_top_network_share{rank="2"} 0.0' in text
    assert 'signing_velocity_top_petition_share{rank="1"} 1.0' in text
    assert "203.0.113" not in text
    assert "petition-a" not in text


async def sign(request: web.Request) -> web.Response:
    """As intake's handler uses the guard: admitted first, each 202 recorded."""
    guard = request.app[SIGNING_GUARD]
    await guard.admit(request)
    if request.query.get("repeat"):
        return web.json_response({"status": "already-signed"}, status=200)
    guard.accepted(request, request.match_info["petition_id"])
    return web.json_response({"status": "accepted"}, status=202)


@pytest.fixture
async def intake_like(aiohttp_client: AiohttpClient) -> Client:
    app = create_service_app("example", ServiceSettings(client_limits={"signing": 2}))
    app[SIGNING_GUARD] = SigningGuard(app)
    app.router.add_post("/api/petitions/{petition_id}/signatures", sign)
    return await aiohttp_client(app)


async def test_the_signing_guard_counts_accepted_signatures_and_limits_clients(
    intake_like: Client,
) -> None:
    url = "/api/petitions/p1/signatures"
    first = {"X-Forwarded-For": "203.0.113.9"}
    assert (await intake_like.post(url, headers=first)).status == 202
    assert (await intake_like.post(url + "?repeat=1", headers=first)).status == 200
    # The per-client limit of signing (2 here) holds; its refusal is not counted as signed.
    refused = await intake_like.post(url, headers=first)
    assert refused.status == 429
    assert "Retry-After" in refused.headers
    v6 = {"X-Forwarded-For": "2001:db8:1:2::5"}
    assert (await intake_like.post(url, headers=v6)).status == 202
    velocity = intake_like.app[SIGNING_VELOCITY]
    total, networks, petitions = velocity.shares()
    assert (total, networks, petitions) == (2, [0.5, 0.5], [1.0])
    metrics = await (await intake_like.get("/metrics")).text()
    assert "signing_velocity_window_signatures 2.0" in metrics
    assert "203.0.113" not in metrics
    assert "2001:db8" not in metrics
