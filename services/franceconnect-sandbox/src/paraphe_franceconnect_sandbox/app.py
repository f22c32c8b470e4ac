from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_franceconnect_sandbox.clients import ClientRegistry
from paraphe_franceconnect_sandbox.provider import AGENTS, CITIZENS, Provider
from paraphe_franceconnect_sandbox.routes import setup_routes
from paraphe_franceconnect_sandbox.settings import FranceconnectSandboxSettings

SERVICE = "franceconnect-sandbox"
SETTINGS = web.AppKey("settings", FranceconnectSandboxSettings)
CITIZENS_PROVIDER = web.AppKey("citizens_provider", Provider)
AGENTS_PROVIDER = web.AppKey("agents_provider", Provider)
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def create_app(settings: FranceconnectSandboxSettings) -> web.Application:
    app = create_service_app(SERVICE, settings, [])
    app[SETTINGS] = settings
    clients = ClientRegistry(settings.sandbox_clients)
    app[CITIZENS_PROVIDER] = Provider(CITIZENS, settings.sandbox_issuer, clients)
    app[AGENTS_PROVIDER] = Provider(AGENTS, settings.sandbox_issuer, clients)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    setup_routes(app, [app[CITIZENS_PROVIDER], app[AGENTS_PROVIDER]])
    app.router.add_static("/static", STATIC)
    return app
