"""Start a service, refuse clearly when it cannot, stop gracefully on SIGTERM.

``paraphe-<service>`` serves; ``paraphe-<service> migrate`` applies the service's migrations;
a service may add one-shot commands of its own (``paraphe-counter rebuild-marks``).
On SIGTERM aiohttp stops accepting connections, lets in-flight requests finish (up to the
shutdown timeout), then the cleanup contexts close in reverse order: NATS drains, pools close.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import uvloop
from aiohttp import web

from paraphe_common.app import install_fast_route
from paraphe_common.logs import AccessLogger, configure_logging
from paraphe_common.resources import DependencyUnavailable
from paraphe_common.settings import (
    ConfigurationError,
    PostgresSettings,
    ServiceSettings,
    load_settings,
)

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)


def refuse(service: str, reason: str, code: int) -> NoReturn:
    """End the process with one line saying what is wrong: no traceback."""
    print(f"paraphe-{service}: {reason}", file=sys.stderr, flush=True)  # noqa: T201
    sys.exit(code)


def serve(service: str, settings: ServiceSettings, app: web.Application) -> None:
    """Serve until SIGTERM or SIGINT, as ``web.run_app`` does, with the application's fast
    route (paraphe_common.app.FastRoute) in front of it."""
    configure_logging(service, settings.log_level)

    async def started(app: web.Application) -> None:
        # What start built (modules, classes, the application) lives as long as the process:
        # kept out of the collector's sight, each full collection walks only what came after.
        gc.collect()
        gc.freeze()

    app.on_startup.append(started)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(settings, app))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass  # SIGTERM or SIGINT: stop
    except DependencyUnavailable as exc:
        refuse(service, f"cannot start: {exc}", 1)
    except OSError as exc:
        refuse(service, f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}", 1)
    finally:
        try:
            if not main.done():  # the graceful stop: _serve's cleanup runs on cancellation
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            rest = asyncio.all_tasks(loop)
            for task in rest:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            asyncio.set_event_loop(None)
    log.info("stopped")


async def _serve(settings: ServiceSettings, app: web.Application) -> None:
    runner = web.AppRunner(
        app,
        handle_signals=True,
        shutdown_timeout=settings.shutdown_timeout,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("paraphe.access") if settings.access_log else None,
    )
    await runner.setup()  # the application's start: its resources open here
    try:
        install_fast_route(runner)
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info("serving on %s:%d", settings.host, settings.port)
        await asyncio.Future()  # until the signal's GracefulExit cancels us
    finally:
        await runner.cleanup()  # in-flight requests finish, then the resources close


def main(
    service: str,
    settings_class: type[S],
    create_app: Callable[[S], web.Application],
    *,
    migrations: tuple[str, Path] | None = None,
    tasks: Mapping[str, Callable[[S], Coroutine[Any, Any, None]]] | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """The command line of a service: serve (the default), migrate its schema, or a task."""
    parser = argparse.ArgumentParser(prog=f"paraphe-{service}")
    commands = ["serve", "migrate"] if migrations else ["serve"]
    commands += list(tasks or {})
    parser.add_argument("command", nargs="?", default="serve", choices=commands)
    command = parser.parse_args(argv).command
    try:
        if command == "migrate" and migrations is not None:
            migrate(service, *migrations)
            return
        settings = load_settings(settings_class)
    except ConfigurationError as exc:
        refuse(service, f"invalid configuration: {exc}", 2)
    except DependencyUnavailable as exc:
        refuse(service, f"cannot migrate: {exc}", 1)
    if tasks and command in tasks:
        configure_logging(service, settings.log_level)
        try:
            uvloop.run(tasks[command](settings))
        except DependencyUnavailable as exc:
            refuse(service, f"cannot {command}: {exc}", 1)
        return
    serve(service, settings, create_app(settings))


def migrate(service: str, schema: str, script_location: Path) -> None:
    from paraphe_common.migrations import upgrade

    settings = load_settings(PostgresSettings)
    configure_logging(service, "INFO")
    upgrade(settings.database_url.get_secret_value(), schema, script_location)
