"""Assertions and waits the tests share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sized
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


async def mid_run(answers: Sized, reached: int, total: int, within: float = 60.0) -> None:
    """Until a running campaign has ``reached`` answers, so that whatever a test breaks next
    happens mid-run on a fast machine as on a slow one; fails if the campaign ended first
    (its ``total`` answers in) or never got there."""
    deadline = time.monotonic() + within
    while len(answers) < reached:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(answers)} answers of {reached} after {within} s")
        await asyncio.sleep(0.005)
    assert len(answers) < total, f"the campaign ended ({len(answers)} answers) before the chaos"


async def until_ok(url: str, headers: Mapping[str, str], within: float = 30.0) -> None:
    """Until GET ``url`` answers 200: a service's view has caught up with what a test just
    published (a new petition's state reaches intake through the bucket)."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            try:
                async with session.get(url) as answer:
                    if answer.status == 200:
                        return
                    status = str(answer.status)
            except aiohttp.ClientError as error:
                status = repr(error)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} still answered {status} after {within} s")
            await asyncio.sleep(0.05)
