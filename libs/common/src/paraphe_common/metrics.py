"""Prometheus metrics: one registry per application, RED metrics for every route, ``/metrics``.

HTTP metrics carry the route template (``/api/petitions/{id}``), never the path, so their
cardinality is bounded by the route table. Services add their domain metrics to the same
registry (``app[METRICS]``), named after the service.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# From 1 ms to 500 ms where the signing SLO lives, then a few coarse buckets for the tail.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_server_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_server_request_duration_seconds",
            "Time from receiving a request to returning its response.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_server_requests_in_flight",
            "Requests being handled right now.",
            registry=registry,
        )


class DependencyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "dependency_up",
            "1 when the dependency answered its last readiness check, else 0.",
            ["dependency"],
            registry=registry,
        )


def new_registry() -> CollectorRegistry:
    # ``*_created`` series double every counter's output and no query of ours reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


METRICS = web.AppKey("metrics_registry", CollectorRegistry)
HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.config_dict[HTTP_METRICS]
    method = request.method if request.method in _KNOWN_METHODS else "OTHER"
    started = time.perf_counter()
    metrics.in_flight.inc()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.in_flight.dec()
        route = _route_of(request)
        metrics.duration.labels(route, method).observe(time.perf_counter() - started)
        metrics.requests.labels(route, method, str(status)).inc()


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.config_dict[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
