"""A service built like the real ones, with one slow route, to watch a graceful shutdown, and
a fast route (answered before routing) to watch what its answers get.

Run as a program by test_runner.py: ``python slow_service.py``.
"""

import asyncio

from aiohttp import web

from paraphe_common.app import FAST_ROUTE, FastRoute, create_service_app
from paraphe_common.runner import main
from paraphe_common.settings import ServiceSettings


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("seconds", "1.5")))
    return web.json_response({"finished": True})


def fast(request: web.BaseRequest) -> web.Response | None:
    if request.path == "/fast/broken":
        raise RuntimeError("a bug in the fast route")
    if request.path != "/fast":
        return None
    return web.Response(body=b'{"fast":true}', headers={"Content-Type": "application/json"})


def create_app(settings: ServiceSettings) -> web.Application:
    app = create_service_app("slow-example", settings)
    app.router.add_get("/slow", slow)
    app[FAST_ROUTE] = FastRoute("/fast", fast)
    return app


if __name__ == "__main__":
    main("slow-example", ServiceSettings, create_app)
