from collections.abc import AsyncIterator

from aiohttp import web

from paraphe_common.app import FAST_ROUTE, create_service_app
from paraphe_common.metrics import METRICS
from paraphe_common.petition_states import PETITION_STATES, petition_states
from paraphe_common.resources import (
    POSTGRES,
    DependencyUnavailable,
    nats_connection,
    postgres,
    redis,
)
from paraphe_counter import store, views
from paraphe_counter.consumer import signature_consumer
from paraphe_counter.counts import COUNT_CACHE, count_cache
from paraphe_counter.forgetting import marks_forgetting
from paraphe_counter.metrics import COUNTER_METRICS, CounterMetrics
from paraphe_counter.reconciliation import periodic_reconciliation
from paraphe_counter.routes import setup_routes
from paraphe_counter.settings import CounterSettings
from paraphe_counter.stream import end_live_counts, live_counts

SERVICE = "counter"
SETTINGS = web.AppKey("settings", CounterSettings)


async def fast_counts(app: web.Application) -> AsyncIterator[None]:
    """Count reads of a fresh count answered before routing (views.fast_counts)."""
    app[FAST_ROUTE] = views.fast_counts(app[PETITION_STATES], app[COUNT_CACHE])
    yield


async def require_migrated_schema(app: web.Application) -> AsyncIterator[None]:
    if not await store.is_migrated(app[POSTGRES]):
        raise DependencyUnavailable(
            "PostgreSQL schema counter",
            "the database",
            "not migrated: run `paraphe-counter migrate` first",
        )
    yield


def create_app(settings: CounterSettings) -> web.Application:
    app = create_service_app(
        SERVICE,
        settings,
        [
            postgres(settings),
            require_migrated_schema,
            redis(settings),
            nats_connection(settings, name=SERVICE),
            petition_states(settings.nats_stream_replicas),
            count_cache(settings),
            fast_counts,
            live_counts(settings),
            signature_consumer(settings),
            periodic_reconciliation(settings),
            marks_forgetting(settings),
        ],
    )
    app[SETTINGS] = settings
    app[COUNTER_METRICS] = CounterMetrics(app[METRICS])
    # Live streams end when shutdown starts, or aiohttp would wait for watchers to leave.
    app.on_shutdown.append(end_live_counts)
    setup_routes(app)
    return app
