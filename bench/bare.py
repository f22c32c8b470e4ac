"""The yardstick: a bare aiohttp endpoint on uvloop returning a constant, nothing else."""

import sys

import uvloop
from aiohttp import web

BODY = b'{"status": "accepted"}'


async def constant(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", constant)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    main()
