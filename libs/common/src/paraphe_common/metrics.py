"""Prometheus metrics: one registry per application, RED metrics for every route, ``/metrics``.

HTTP metrics carry the route template (``/api/petitions/{id}``), never the path, so their
cardinality is bounded by the route table. Services add their domain metrics to the same
registry (``app[METRICS]``), named after the service.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

# Fine from 1 ms to 500 ms, where the answers live and the signing latency objective sits
# (250 ms: a bound of its own, so the objective is counted, not interpolated), then a few
# coarse buckets for the tail. Prometheus names the bound in seconds: le="0.25".
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics(Collector):
    """RED metrics of every request, kept as plain numbers and turned into Prometheus metric
    families only when scraped.

    prometheus-client takes a lock and looks up a child at every observation; on the signing
    path that cost ~8 µs a request, a quarter of aiohttp's own. A service runs one event loop,
    so plain integers need no lock; the label values are route templates, so bounded.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.in_flight = 0
        self._requests: dict[tuple[str, str, int], int] = {}
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = {}
        registry.register(self)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        counted = (route, method, status)
        self._requests[counted] = self._requests.get(counted, 0) + 1
        timed = (route, method)
        buckets = self._buckets.get(timed)
        if buckets is None:
            buckets = self._buckets[timed] = [0] * (len(LATENCY_BUCKETS) + 1)
            self._sums[timed] = 0.0
        # Prometheus buckets are "less than or equal": the first bound not below the value.
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sums[timed] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "http_server_requests",
            "HTTP requests answered, by route template, method and status.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in self._requests.items():
            requests.add_metric([route, method, str(status)], count)
        yield requests
        duration = HistogramMetricFamily(
            "http_server_request_duration_seconds",
            "Time from receiving a request to returning its response.",
            labels=["route", "method"],
        )
        for (route, method), counts in self._buckets.items():
            cumulative = list(itertools.accumulate(counts))
            bounds = [*(str(bound) for bound in LATENCY_BUCKETS), "+Inf"]
            duration.add_metric(
                [route, method],
                buckets=list(zip(bounds, cumulative, strict=True)),
                sum_value=self._sums[(route, method)],
            )
        yield duration
        yield GaugeMetricFamily(
            "http_server_requests_in_flight",
            "Requests being handled right now.",
            value=self.in_flight,
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


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def method_of(request: web.BaseRequest) -> str:
    return request.method if request.method in _KNOWN_METHODS else "OTHER"


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.config_dict[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
