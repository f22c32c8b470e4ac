"""Reading a count: cacheable by a CDN, from memory and Redis, PostgreSQL when Redis fails."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from paraphe_common.app import FAST_ROUTE
from paraphe_counter.counts import COUNT_CACHE, Count
from paraphe_counter.stream import LIVE_COUNTS
from paraphe_devstack.servers import RedisServer

Client = TestClient[web.Request, web.Application]
Sign = Callable[..., Awaitable[bytes]]
Counted = Callable[[str, int], Awaitable[None]]
Until = Callable[..., Awaitable[None]]


def served(counter: Client, petition_id: str, signatures: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        response = await counter.get(f"/api/petitions/{petition_id}/count")
        return response.status == 200 and (await response.json())["signatures"] == signatures

    return probe


@pytest.mark.parametrize("petition_id", [str(uuid.UUID(int=1)), "not-a-petition"])
async def test_a_petition_the_counter_does_not_know_is_a_404_problem(
    counter: Client, petition_id: str
) -> None:
    for path in (
        f"/api/petitions/{petition_id}/count",
        f"/api/petitions/{petition_id}/count/stream",
    ):
        response = await counter.get(path)
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        assert (await response.json())["type"] == "urn:paraphe:problem:petition-not-found"


async def test_a_petition_without_signatures_counts_zero(counter: Client, petition: str) -> None:
    response = await counter.get(f"/api/petitions/{petition}/count")
    assert response.status == 200
    assert await response.json() == {"petition_id": petition, "signatures": 0}


async def test_a_count_is_cacheable_for_a_second_and_carries_an_entity_tag(
    counter: Client, petition: str, sign: Sign, counted: Counted
) -> None:
    for _ in range(3):
        await sign(petition)
    await counted(petition, 3)

    response = await counter.get(f"/api/petitions/{petition}/count")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "public, max-age=1"
    assert response.headers["ETag"] == '"3"'

    unchanged = await counter.get(
        f"/api/petitions/{petition}/count", headers={"If-None-Match": '"3"'}
    )
    assert unchanged.status == 304
    assert unchanged.headers["ETag"] == '"3"'
    changed = await counter.get(
        f"/api/petitions/{petition}/count", headers={"If-None-Match": '"2"'}
    )
    assert changed.status == 200


def _sent(response: aiohttp.ClientResponse) -> dict[str, str]:
    """An answer's headers but those that differ on every answer."""
    return {
        k.lower(): v
        for k, v in response.headers.items()
        if k.lower() not in {"date", "x-request-id"}
    }


async def test_a_fresh_count_is_answered_before_routing_as_the_handler_answers_it(
    start_counter: Callable[..., Awaitable[Client]],
    petition: str,
    sign: Sign,
    counted: Counted,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = await start_counter(count_refresh_interval=5.0)
    await sign(petition)
    await counted(petition, 1)
    path = f"/api/petitions/{petition}/count"
    fast = counter.app[FAST_ROUTE]
    assert fast.answer(make_mocked_request("GET", path)) is None  # not read yet
    ordinary = await counter.get(path, headers={"X-Request-Id": "ordinary-read"})
    assert ordinary.status == 200

    # Fresh now: from here the ordinary handler (which asks the cache) is not reached.
    cache = counter.app[COUNT_CACHE]
    asked: list[str] = []

    async def count(petition_id: str) -> Count:
        asked.append(petition_id)
        raise AssertionError("a fresh count went the ordinary way")

    monkeypatch.setattr(cache, "count", count)
    answered = await counter.get(path, headers={"X-Request-Id": "fast-read"})
    assert answered.status == 200
    assert await answered.read() == await ordinary.read()
    assert _sent(answered) == _sent(ordinary)  # security headers, caching, type, entity tag
    assert answered.headers["X-Request-Id"] == "fast-read"
    unchanged = await counter.get(path, headers={"If-None-Match": '"1"'})
    assert unchanged.status == 304
    assert unchanged.headers["ETag"] == '"1"'
    assert "X-Request-Id" in unchanged.headers
    assert asked == []
    # The RED metrics see them under the route's template, as any other answer.
    metrics = await (await counter.get("/metrics")).text()
    route = 'method="GET",route="/api/petitions/{petition_id}/count"'
    assert f'http_server_requests_total{{{route},status="200"}} 2.0' in metrics
    assert f'http_server_requests_total{{{route},status="304"}} 1.0' in metrics


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("HEAD", "/count"), ("POST", "/count"), ("GET", "/count/stream"), ("GET", "/count/")],
)
async def test_other_requests_near_a_fresh_count_go_the_ordinary_way(
    start_counter: Callable[..., Awaitable[Client]], petition: str, method: str, suffix: str
) -> None:
    counter = await start_counter(count_refresh_interval=5.0)
    assert (await counter.get(f"/api/petitions/{petition}/count")).status == 200
    fast = counter.app[FAST_ROUTE]
    assert fast.answer(make_mocked_request("GET", f"/api/petitions/{petition}/count")) is not None
    assert fast.answer(make_mocked_request(method, f"/api/petitions/{petition}{suffix}")) is None
    unknown = f"/api/petitions/{uuid.uuid4()}/count"
    assert fast.answer(make_mocked_request("GET", unknown)) is None
    nested = f"/api/petitions/x/{petition}/count"
    assert fast.answer(make_mocked_request("GET", nested)) is None


async def test_a_count_flushed_from_redis_is_read_from_postgresql_and_written_back(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    redis_client: aioredis.Redis,
) -> None:
    for _ in range(3):
        await sign(petition)
    await counted(petition, 3)

    await redis_client.flushall()

    await until(served(counter, petition, 3))
    assert await redis_client.get(f"count:{petition}") == b"3"


async def test_counts_are_served_and_kept_while_redis_is_down(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    redis_server: RedisServer,
) -> None:
    await sign(petition)
    await counted(petition, 1)

    redis_server.stop()
    await sign(petition)
    await until(served(counter, petition, 2))  # from PostgreSQL

    redis_server.start()  # empty: this Redis keeps nothing on disk
    await sign(petition)
    await counted(petition, 3)


async def next_count(content: aiohttp.StreamReader) -> int | None:
    """The count the next event carries; None for a heartbeat."""
    event = await content.readuntil(b"\n\n")
    if event.startswith(b":"):
        return None
    name, data = event.decode().strip().split("\n")
    assert name == "event: count"
    return int(json.loads(data.removeprefix("data: "))["signatures"])


async def test_a_live_count_starts_with_the_count_then_follows_each_change(
    counter: Client, petition: str, sign: Sign, counted: Counted
) -> None:
    await sign(petition)
    await counted(petition, 1)

    response = await counter.get(
        f"/api/petitions/{petition}/count/stream", headers={"X-Request-Id": "watcher-1"}
    )
    assert response.status == 200
    assert response.headers["X-Request-Id"] == "watcher-1"
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    # Streamed, so sent before the middleware sees the answer: its security headers all the same.
    assert (
        response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    first = await response.content.readuntil(b"\n\n")
    assert first == (
        b'event: count\ndata: {"petition_id":"' + petition.encode() + b'","signatures":1}\n\n'
    )

    await sign(petition)
    await sign(petition)
    seen: list[int] = []
    async with asyncio.timeout(10):
        while not seen or seen[-1] != 3:
            count = await next_count(response.content)
            if count is not None:
                seen.append(count)
    assert seen == sorted(seen)  # never backwards
    response.close()


async def test_watchers_share_one_count_and_a_watcher_who_leaves_is_let_go(
    counter: Client, petition: str, sign: Sign, until: Until
) -> None:
    live = counter.app[LIVE_COUNTS]
    streams = [await counter.get(f"/api/petitions/{petition}/count/stream") for _ in range(3)]
    for stream in streams:
        assert await next_count(stream.content) == 0
    assert live.watchers(petition) == 3

    await sign(petition)
    for stream in streams:
        count = None
        while count is None:
            count = await next_count(stream.content)
        assert count == 1

    for stream in streams:
        stream.close()

    async def all_gone() -> bool:
        return live.watchers(petition) == 0

    await until(all_gone)  # noticed at the next heartbeat, which fails to be written


async def test_shutdown_ends_live_counts_without_waiting_for_watchers(
    counter: Client, petition: str
) -> None:
    stream = await counter.get(f"/api/petitions/{petition}/count/stream")
    assert await next_count(stream.content) == 0

    started = time.monotonic()
    await counter.server.close()

    # The stream ends cleanly (the chunked body is terminated), well before aiohttp's grace
    # period for handlers would have run out.
    rest = await stream.content.read()
    assert all(line in (b"", b": heartbeat") for line in rest.split(b"\n"))
    assert time.monotonic() - started < 10
