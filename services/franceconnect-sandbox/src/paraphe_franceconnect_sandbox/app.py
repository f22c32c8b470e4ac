from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_franceconnect_sandbox.settings import FranceconnectSandboxSettings

SERVICE = "franceconnect-sandbox"
SETTINGS = web.AppKey("settings", FranceconnectSandboxSettings)


def create_app(settings: FranceconnectSandboxSettings) -> web.Application:
    app = create_service_app(SERVICE, settings, [])
    app[SETTINGS] = settings
    return app
