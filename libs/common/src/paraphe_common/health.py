"""``/healthz`` says the process is alive; ``/readyz`` says its dependencies answer.

Each resource context registers a check when it opens. Checks run concurrently, each within
the readiness timeout, so one hung dependency cannot hold the probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from paraphe_common.metrics import DependencyMetrics
from paraphe_common.problems import Problem

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[object]]


class Readiness:
    def __init__(self, timeout: float, metrics: DependencyMetrics) -> None:
        self._timeout = timeout
        self._metrics = metrics
        self._checks: dict[str, Check] = {}

    def add(self, dependency: str, check: Check) -> None:
        self._checks[dependency] = check
        self._metrics.up.labels(dependency).set(1)

    @property
    def dependencies(self) -> list[str]:
        return sorted(self._checks)

    async def unavailable(self) -> list[str]:
        """The dependencies that did not answer, sorted by name."""
        names = sorted(self._checks)
        answers = await asyncio.gather(*(self._answers(name) for name in names))
        return [name for name, answered in zip(names, answers, strict=True) if not answered]

    async def _answers(self, dependency: str) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._checks[dependency]()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and is logged
            log.warning(
                "dependency %s is unavailable: %s", dependency, type(exc).__name__ or "error"
            )
            self._metrics.up.labels(dependency).set(0)
            return False
        self._metrics.up.labels(dependency).set(1)
        return True


READINESS = web.AppKey("readiness", Readiness)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    readiness = request.config_dict[READINESS]
    unavailable = await readiness.unavailable()
    if unavailable:
        raise Problem(
            503,
            "Dépendance indisponible : " + ", ".join(unavailable),
            kind="dependency-unavailable",
            headers={"Retry-After": "5"},
            unavailable=unavailable,
        )
    return web.json_response({"status": "ready", "dependencies": readiness.dependencies})
