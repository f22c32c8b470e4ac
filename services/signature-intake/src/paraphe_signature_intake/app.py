from collections.abc import AsyncIterator

from aiohttp import web

from paraphe_common.app import FAST_ROUTE, create_service_app
from paraphe_common.auth import TOKEN_VERIFIER
from paraphe_common.peppers import PEPPER_SCHEDULE
from paraphe_common.petition_states import petition_states
from paraphe_common.resources import nats_connection, redis
from paraphe_common.tokens import TokenVerifier
from paraphe_signature_intake import views
from paraphe_signature_intake.context import intake_context
from paraphe_signature_intake.routes import setup_routes
from paraphe_signature_intake.settings import SignatureIntakeSettings

SERVICE = "signature-intake"
SETTINGS = web.AppKey("settings", SignatureIntakeSettings)


async def fast_signing(app: web.Application) -> AsyncIterator[None]:
    """Signatures answered before routing (views.fast_signing), once intake is ready."""
    app[FAST_ROUTE] = views.fast_signing(app)
    yield


def create_app(settings: SignatureIntakeSettings) -> web.Application:
    app = create_service_app(
        SERVICE,
        settings,
        [
            redis(settings),
            nats_connection(settings, name=SERVICE),
            petition_states(settings.nats_stream_replicas),
            intake_context(settings),
            fast_signing,
        ],
    )
    app[SETTINGS] = settings
    app[TOKEN_VERIFIER] = TokenVerifier.from_settings(settings)
    app[PEPPER_SCHEDULE] = settings.signer_pepper_schedule  # pepper rotation
    setup_routes(app)
    return app
