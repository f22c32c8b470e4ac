from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_common.resources import nats_connection, redis
from paraphe_signature_intake.settings import SignatureIntakeSettings

SERVICE = "signature-intake"
SETTINGS = web.AppKey("settings", SignatureIntakeSettings)


def create_app(settings: SignatureIntakeSettings) -> web.Application:
    app = create_service_app(
        SERVICE, settings, [redis(settings), nats_connection(settings, name=SERVICE)]
    )
    app[SETTINGS] = settings
    return app
