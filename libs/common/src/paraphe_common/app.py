"""The application factory every service starts from."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from paraphe_common.health import READINESS, Readiness, healthz, readyz
from paraphe_common.logs import ANSWERED_ROUTE, REQUEST_ID
from paraphe_common.metrics import (
    HTTP_METRICS,
    METRICS,
    DependencyMetrics,
    HttpMetrics,
    method_of,
    metrics_view,
    new_registry,
    route_of,
)
from paraphe_common.problems import Problem, problem_for, unexpected_problem
from paraphe_common.resources import CleanupContext
from paraphe_common.security import (
    CLIENT_NETWORK,
    ClientNetwork,
    client_network,
    install_security,
    refuse_cross_site,
    secure_response,
)
from paraphe_common.settings import ServiceSettings

log = logging.getLogger(__name__)

SERVICE_NAME = web.AppKey("service_name", str)
REQUEST_ID_HEADER = "X-Request-Id"
_MAX_REQUEST_ID_LENGTH = 64
_REQUEST_ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.")


# Request ids need to be unique, not secret: a random prefix per process and a counter.
_REQUEST_IDS = itertools.count()
_PROCESS_PREFIX = secrets.token_hex(6)


def _new_request_id() -> str:
    return f"{_PROCESS_PREFIX}{next(_REQUEST_IDS):012x}"


def _acceptable_request_id(value: str) -> bool:
    return 0 < len(value) <= _MAX_REQUEST_ID_LENGTH and _REQUEST_ID_CHARACTERS.issuperset(value)


def _request_id(request: web.BaseRequest) -> str:
    """The proxy's request id when well formed, else a new one."""
    offered = request.headers.get(REQUEST_ID_HEADER)
    return offered if offered is not None and _acceptable_request_id(offered) else _new_request_id()


def service_middleware(metrics: HttpMetrics, network: ClientNetwork) -> Middleware:
    """Request id, CSRF check, RFC 9457 problems, security headers and RED metrics, in one
    frame: it wraps every request, so it is a closure over what it needs rather than lookups
    in the application at each request.

    The request id is the proxy's when well formed, else a new one; it goes on every log line
    (a context variable) and back on the response. Whatever the handler raises becomes a
    problem answer; the metrics see the status actually sent.
    """

    @web.middleware
    async def serve(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = _request_id(request)
        # Not reset after the request: aiohttp serves a connection's requests one after
        # another in one task, so the access log line written after the handler still
        # carries it, and the next request on the connection sets its own.
        REQUEST_ID.set(request_id)
        route = route_of(request)
        metrics.in_flight += 1
        started = time.perf_counter()
        status = 500
        try:
            try:
                refuse_cross_site(request)
                response = await handler(request)
            except (asyncio.CancelledError, web.GracefulExit):
                raise
            except web.HTTPException as exc:
                if exc.status < 400:
                    status = exc.status
                    exc[ANSWERED_ROUTE] = route  # a redirect: aiohttp sends the exception
                    raise
                response = problem_for(request, exc)
            except Exception as exc:  # noqa: BLE001 - every failure gets a problem answer
                response = problem_for(request, exc)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = request_id
                secure_response(request, response, network)
            response[ANSWERED_ROUTE] = route
            return response
        finally:
            metrics.in_flight -= 1
            metrics.observe(route, method_of(request), status, time.perf_counter() - started)

    return serve


@dataclass(frozen=True, slots=True)
class FastRoute:
    """A service's busiest route, answered before aiohttp's router and middleware chain.

    Everyone watching a petition polls its count, and a surge of signers posts signatures.
    aiohttp takes every request through its router, its middleware chain (with a frame of its
    own) and then the service middleware: ~16 µs a request on top of HTTP's own ~25
    (docs/performance.md). ``answer`` sees each request first and decides at once: None, and
    the request goes the ordinary way, where every error, refresh and problem is dealt with;
    else the complete answer, or an awaitable of it when answering needs I/O. An awaitable may
    raise a :class:`Problem`, answered as its problem document (the route is an API's: never
    a page). Its answers get what the service middleware gives: the request id (on the log
    lines written while awaiting, too), the security headers and the RED metrics, under
    ``route`` (the ordinary route's template).

    The decision must take no step the ordinary way would take again (a request counted by a
    limit, then declined, would be counted twice).
    """

    route: str
    answer: Callable[[web.BaseRequest], web.Response | Awaitable[web.Response] | None]


FAST_ROUTE = web.AppKey("fast_route", FastRoute)

RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def fast_route_first(
    ordinary: RequestHandler, fast: FastRoute, metrics: HttpMetrics, network: ClientNetwork
) -> RequestHandler:
    """The server's request handler: the fast route's answer, else the application's."""
    route, answer = fast.route, fast.answer

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            decided = answer(request)
        except Exception:  # a bug of the fast route: the ordinary way answers instead
            log.exception("the fast route %s failed; the request goes the ordinary way", route)
            decided = None
        if decided is None:
            return await ordinary(request)
        request_id = _request_id(request)
        REQUEST_ID.set(request_id)  # for the access log line (and the awaited part's logs)
        status = 500
        try:
            if isinstance(decided, web.Response):
                response = decided
            else:
                metrics.in_flight += 1
                try:
                    response = await decided
                except Problem as exc:
                    response = exc.response()
                except Exception as exc:  # noqa: BLE001 - as the service middleware does
                    response = unexpected_problem(request, exc).response()
                finally:
                    metrics.in_flight -= 1
            status = response.status
            response.headers[REQUEST_ID_HEADER] = request_id
            secure_response(request, response, network)
            response[ANSWERED_ROUTE] = route
            return response
        finally:
            metrics.observe(route, method_of(request), status, time.perf_counter() - started)

    return handle


def install_fast_route(runner: web.AppRunner) -> None:
    """Put the application's fast route, if it has one, in front of its request handler;
    after ``runner.setup()``, before the site starts (or at least before connections come:
    each connection takes the handler when it opens)."""
    app, server = runner.app, runner.server
    fast = app.get(FAST_ROUTE)
    if fast is None:
        return
    assert server is not None, "the runner is set up"
    server.request_handler = fast_route_first(
        server.request_handler, fast, app[HTTP_METRICS], app[CLIENT_NETWORK]
    )


def request_id_headers() -> dict[str, str]:
    """For handlers that stream: their headers leave before the middleware sees the response."""
    request_id = REQUEST_ID.get()
    return {REQUEST_ID_HEADER: request_id} if request_id is not None else {}


def create_service_app(
    service: str,
    settings: ServiceSettings,
    resources: Iterable[CleanupContext] = (),
    *,
    client_max_size: int = 64 * 1024,
) -> web.Application:
    """An application with logs, problems, metrics, health, readiness and its resources.

    ``resources`` are cleanup contexts, opened in order at start and closed in reverse order
    after the last request has been answered.
    """
    registry = new_registry()
    http_metrics = HttpMetrics(registry)
    # Client addresses, security headers, CSRF and per-client limits (paraphe_common.security).
    public_url = getattr(settings, "public_url", None)
    network = client_network(
        settings.trusted_proxies, str(public_url) if public_url is not None else None
    )
    app = web.Application(
        middlewares=[service_middleware(http_metrics, network)],
        client_max_size=client_max_size,
    )
    app[SERVICE_NAME] = service
    app[METRICS] = registry
    install_security(app, network, settings.client_limits, registry)
    app[HTTP_METRICS] = http_metrics
    app[READINESS] = Readiness(settings.readiness_timeout, DependencyMetrics(registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.cleanup_ctx.extend(resources)
    return app
