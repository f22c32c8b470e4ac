"""The application factory every service starts from."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler

from paraphe_common.health import READINESS, Readiness, healthz, readyz
from paraphe_common.logs import REQUEST_ID, REQUEST_ID_KEY
from paraphe_common.metrics import (
    HTTP_METRICS,
    METRICS,
    DependencyMetrics,
    HttpMetrics,
    metrics_middleware,
    metrics_view,
    new_registry,
)
from paraphe_common.problems import problem_middleware
from paraphe_common.resources import CleanupContext
from paraphe_common.settings import ServiceSettings

SERVICE_NAME = web.AppKey("service_name", str)
REQUEST_ID_HEADER = "X-Request-Id"
_MAX_REQUEST_ID_LENGTH = 64


def _acceptable_request_id(value: str | None) -> bool:
    return (
        value is not None
        and 0 < len(value) <= _MAX_REQUEST_ID_LENGTH
        and all(c.isascii() and (c.isalnum() or c in "-_.") for c in value)
    )


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take the proxy's request id when it is well formed, else make one."""
    offered = request.headers.get(REQUEST_ID_HEADER)
    request_id = offered if offered and _acceptable_request_id(offered) else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    token = REQUEST_ID.set(request_id)
    try:
        return await handler(request)
    finally:
        REQUEST_ID.reset(token)


async def _send_request_id(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


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
    app = web.Application(
        middlewares=[request_id_middleware, metrics_middleware, problem_middleware],
        client_max_size=client_max_size,
    )
    app[SERVICE_NAME] = service
    app[METRICS] = registry
    app[HTTP_METRICS] = HttpMetrics(registry)
    app[READINESS] = Readiness(settings.readiness_timeout, DependencyMetrics(registry))
    app.on_response_prepare.append(_send_request_id)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.cleanup_ctx.extend(resources)
    return app
