from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_common.resources import nats_connection, postgres
from paraphe_moderation.settings import ModerationSettings

SERVICE = "moderation"
SETTINGS = web.AppKey("settings", ModerationSettings)


def create_app(settings: ModerationSettings) -> web.Application:
    app = create_service_app(
        SERVICE, settings, [postgres(settings), nats_connection(settings, name=SERVICE)]
    )
    app[SETTINGS] = settings
    return app
