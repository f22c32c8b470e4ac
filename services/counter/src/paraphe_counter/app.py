from aiohttp import web

from paraphe_common.app import create_service_app
from paraphe_common.resources import nats_connection, postgres, redis
from paraphe_counter.settings import CounterSettings

SERVICE = "counter"
SETTINGS = web.AppKey("settings", CounterSettings)


def create_app(settings: CounterSettings) -> web.Application:
    app = create_service_app(
        SERVICE,
        settings,
        [postgres(settings), redis(settings), nats_connection(settings, name=SERVICE)],
    )
    app[SETTINGS] = settings
    return app
