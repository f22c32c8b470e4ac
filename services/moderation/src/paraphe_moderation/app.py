from collections.abc import AsyncIterator

from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_common.auth import TOKEN_VERIFIER
from paraphe_common.metrics import METRICS
from paraphe_common.petition_states import petition_states
from paraphe_common.resources import POSTGRES, DependencyUnavailable, nats_connection, postgres
from paraphe_common.site import origin_of
from paraphe_common.tokens import TokenVerifier
from paraphe_moderation import pages, store
from paraphe_moderation.catalog import catalog_client
from paraphe_moderation.context import PUBLIC_ORIGIN, moderation_context
from paraphe_moderation.events import event_consumer
from paraphe_moderation.metrics import MODERATION_METRICS, ModerationMetrics, queue_metrics
from paraphe_moderation.openapi import OPENAPI_DOCUMENT, configured_document
from paraphe_moderation.routes import setup_routes
from paraphe_moderation.settings import ModerationSettings

SERVICE = "moderation"
SETTINGS = web.AppKey("settings", ModerationSettings)


async def require_migrated_schema(app: web.Application) -> AsyncIterator[None]:
    if not await store.is_migrated(app[POSTGRES]):
        raise DependencyUnavailable(
            "PostgreSQL schema moderation",
            "the database",
            "not migrated: run `paraphe-moderation migrate` first",
        )
    yield


def create_app(settings: ModerationSettings) -> web.Application:
    app = create_service_app(
        SERVICE,
        settings,
        [
            postgres(settings),
            require_migrated_schema,
            nats_connection(settings, name=SERVICE),
            petition_states(settings.nats_stream_replicas),
            catalog_client(settings.catalog_base, settings.catalog_timeout),
            moderation_context(settings),
            event_consumer(settings),
            queue_metrics(settings.queue_metrics_interval),
        ],
    )
    app[SETTINGS] = settings
    app[TOKEN_VERIFIER] = TokenVerifier.from_settings(settings)
    app[MODERATION_METRICS] = ModerationMetrics(app[METRICS])
    app[PUBLIC_ORIGIN] = origin_of(str(settings.public_url))
    app[OPENAPI_DOCUMENT] = configured_document(settings)
    pages.setup_templates(app)
    setup_routes(app)
    return app
