"""The yardstick: a bare aiohttp endpoint on uvloop returning a constant, nothing else.

``bare.py PORT`` answers every path with a constant. ``bare.py PORT ANSWER.json`` is the floor
of a count read: aiohttp alone (no middleware) answering ``/api/petitions/{id}/count`` with
the headers and body the counter sent once (ANSWER.json: ``{"petition", "headers", "body"}``),
the petition looked up in a dict: what the counter's own layers are measured against.
"""

import json
import sys
from pathlib import Path

import uvloop
from aiohttp import web

BODY = b'{"status": "accepted"}'


async def constant(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def count_floor(answer: dict[str, object]) -> web.Application:
    petitions = {str(answer["petition"]): str(answer["body"]).encode()}
    headers = dict(answer["headers"])  # type: ignore[call-overload]

    async def count(request: web.Request) -> web.Response:
        body = petitions.get(request.match_info["petition_id"])
        if body is None:
            raise web.HTTPNotFound
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/api/petitions/{petition_id}/count", count)
    return app


def main() -> None:
    if len(sys.argv) > 2:
        app = count_floor(json.loads(Path(sys.argv[2]).read_text()))
    else:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", constant)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    main()
