"""Assertions every service's tests share."""

from __future__ import annotations

from typing import Any

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
