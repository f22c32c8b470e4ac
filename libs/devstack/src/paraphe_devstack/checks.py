"""Assertions and waits the tests share."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient


async def assert_probes_answer(client: TestClient[Any, Any], dependencies: list[str]) -> None:
    """The service is alive, ready with exactly these dependencies, and exposes metrics."""
    health = await client.get("/healthz")
    assert health.status == 200, await health.text()
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    assert (await ready.json())["dependencies"] == sorted(dependencies)
    metrics = await client.get("/metrics")
    assert metrics.status == 200
    text = await metrics.text()
    assert 'http_server_requests_total{method="GET",route="/readyz",status="200"} 1.0' in text
    for dependency in dependencies:
        assert f'dependency_up{{dependency="{dependency}"}} 1.0' in text


async def public_count(url: str, expected: int, within: float = 60.0) -> int:
    """A petition's public count (counter's ``/count`` at ``url``) once it reaches
    ``expected``, or where it stood when ``within`` seconds ran out."""
    deadline = time.monotonic() + within
    value = -1
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as answer:
                    if answer.status == 200:
                        value = int((await answer.json())["signatures"])
            except aiohttp.ClientError:
                pass
            if value == expected:
                break
            await asyncio.sleep(0.2)
    return value
