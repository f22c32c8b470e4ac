from aiohttp import web

from paraphe_auth_gateway.settings import AuthGatewaySettings
from paraphe_common.app import create_service_app
from paraphe_common.resources import redis

SERVICE = "auth-gateway"
SETTINGS = web.AppKey("settings", AuthGatewaySettings)


def create_app(settings: AuthGatewaySettings) -> web.Application:
    app = create_service_app(SERVICE, settings, [redis(settings)])
    app[SETTINGS] = settings
    return app
