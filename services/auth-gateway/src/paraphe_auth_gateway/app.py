from aiohttp import web

from paraphe_auth_gateway.context import gateway_context
from paraphe_auth_gateway.pages import setup_pages
from paraphe_auth_gateway.routes import setup_routes
from paraphe_auth_gateway.settings import AuthGatewaySettings
from paraphe_common.app import create_service_app
from paraphe_common.auth import TOKEN_VERIFIER
from paraphe_common.metrics import METRICS
from paraphe_common.resources import redis
from paraphe_common.tokens import TokenVerifier

SERVICE = "auth-gateway"
SETTINGS = web.AppKey("settings", AuthGatewaySettings)


def create_app(settings: AuthGatewaySettings) -> web.Application:
    app = create_service_app(SERVICE, settings, [redis(settings)])
    app[SETTINGS] = settings
    app[TOKEN_VERIFIER] = TokenVerifier.from_settings(settings)
    app.cleanup_ctx.append(gateway_context(settings, app[METRICS]))
    setup_pages(app)
    setup_routes(app)
    return app
