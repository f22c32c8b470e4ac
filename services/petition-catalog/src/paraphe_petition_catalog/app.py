from collections.abc import AsyncIterator

from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_common.auth import TOKEN_VERIFIER
from paraphe_common.resources import POSTGRES, CleanupContext, nats_connection, postgres, redis
from paraphe_common.tokens import TokenVerifier
from paraphe_petition_catalog.jobs import background_jobs
from paraphe_petition_catalog.pages import setup_pages
from paraphe_petition_catalog.retention import retention_job
from paraphe_petition_catalog.routes import setup_routes
from paraphe_petition_catalog.settings import SETTINGS, PetitionCatalogSettings
from paraphe_petition_catalog.states import petition_states_publisher
from paraphe_petition_catalog.store import STORE, Store
from paraphe_petition_catalog.views import OPENAPI_DOCUMENT, openapi_document

__all__ = ["SERVICE", "SETTINGS", "create_app"]

SERVICE = "petition-catalog"
# A petition's text is up to 20,000 characters, which JSON may escape to six bytes each.
CLIENT_MAX_SIZE = 256 * 1024


def catalogue_store(settings: PetitionCatalogSettings) -> CleanupContext:
    async def open_store(app: web.Application) -> AsyncIterator[None]:
        app[STORE] = Store(app[POSTGRES], settings.committees)
        yield

    return open_store


def create_app(settings: PetitionCatalogSettings) -> web.Application:
    app = create_service_app(
        SERVICE,
        settings,
        [
            postgres(settings),
            redis(settings),
            nats_connection(settings, name=SERVICE),
            catalogue_store(settings),
            petition_states_publisher(
                settings.nats_stream_replicas,
                settings.outbox_publish_timeout,
                settings.outbox_interval,
            ),
            background_jobs(settings),
            retention_job(settings),
        ],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[SETTINGS] = settings
    app[TOKEN_VERIFIER] = TokenVerifier.from_settings(settings)
    app[OPENAPI_DOCUMENT] = openapi_document(c.id for c in settings.committees)
    setup_routes(app)
    setup_pages(app)
    return app
