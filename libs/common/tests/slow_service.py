"""A service built like the real ones, with one slow route, to watch a graceful shutdown, and
a fast route (answered before routing) to watch what its answers get.

Run as a program by test_runner.py: ``python slow_service.py``.
"""

import asyncio
import logging
from collections.abc import Awaitable

from aiohttp import web

from paraphe_common.app import FAST_ROUTE, FastRoute, create_service_app
from paraphe_common.problems import Problem
from paraphe_common.runner import main
from paraphe_common.settings import ServiceSettings

log = logging.getLogger("slow-example")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("seconds", "1.5")))
    return web.json_response({"finished": True})


def fast(request: web.BaseRequest) -> web.Response | Awaitable[web.Response] | None:
    if request.path == "/fast/broken":
        raise RuntimeError("a bug in the fast route")
    if request.path.startswith("/fast/later/"):
        return later(request.path.rpartition("/")[2])
    if request.path != "/fast":
        return None
    return web.Response(body=b'{"fast":true}', headers={"Content-Type": "application/json"})


async def later(outcome: str) -> web.Response:
    """An answer that needs I/O: a log line while waiting, then an answer, a problem or a bug."""
    await asyncio.sleep(0.01)
    log.warning("answering later: %s", outcome)
    if outcome == "refused":
        raise Problem(429, "Plus tard.", kind="rate-limited", headers={"Retry-After": "7"})
    if outcome == "crash":
        raise RuntimeError("a bug while answering later")
    return web.Response(body=b'{"later":true}', headers={"Content-Type": "application/json"})


def create_app(settings: ServiceSettings) -> web.Application:
    app = create_service_app("slow-example", settings)
    app.router.add_get("/slow", slow)
    app[FAST_ROUTE] = FastRoute("/fast", fast)
    return app


if __name__ == "__main__":
    main("slow-example", ServiceSettings, create_app)
