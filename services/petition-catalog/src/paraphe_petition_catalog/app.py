from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_common.auth import TOKEN_VERIFIER
from paraphe_common.resources import nats_connection, postgres
from paraphe_common.tokens import TokenVerifier
from paraphe_petition_catalog.dates import date_fr
from paraphe_petition_catalog.routes import setup_routes
from paraphe_petition_catalog.settings import PetitionCatalogSettings
from paraphe_petition_catalog.states import petition_states_publisher

SERVICE = "petition-catalog"
SETTINGS = web.AppKey("settings", PetitionCatalogSettings)
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def create_app(settings: PetitionCatalogSettings) -> web.Application:
    app = create_service_app(
        SERVICE,
        settings,
        [
            postgres(settings),
            nats_connection(settings, name=SERVICE),
            petition_states_publisher(settings.nats_stream_replicas),
        ],
    )
    app[SETTINGS] = settings
    app[TOKEN_VERIFIER] = TokenVerifier.from_settings(settings)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        filters={"date_fr": date_fr},
    )
    setup_routes(app)
    app.router.add_static("/static", STATIC)
    return app
