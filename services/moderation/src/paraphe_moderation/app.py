from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_common.auth import TOKEN_VERIFIER
from paraphe_common.resources import nats_connection, postgres
from paraphe_common.tokens import TokenVerifier
from paraphe_moderation.routes import setup_routes
from paraphe_moderation.settings import ModerationSettings

SERVICE = "moderation"
SETTINGS = web.AppKey("settings", ModerationSettings)


def create_app(settings: ModerationSettings) -> web.Application:
    app = create_service_app(
        SERVICE, settings, [postgres(settings), nats_connection(settings, name=SERVICE)]
    )
    app[SETTINGS] = settings
    app[TOKEN_VERIFIER] = TokenVerifier.from_settings(settings)
    setup_routes(app)
    return app
