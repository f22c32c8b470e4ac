"""signature-intake on real Redis and NATS, with petitions in the PETITIONS bucket."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from nats.js import JetStreamContext
from pytest_aiohttp import AiohttpClient

from paraphe_common.app import install_fast_route
from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.streams import SIGNATURES, petitions_bucket
from paraphe_common.tokens import SIGNER, TokenIssuer
from paraphe_devstack.keys import SignerKey, SigningKey
from paraphe_devstack.servers import NatsServer, RedisServer
from paraphe_signature_intake.app import create_app
from paraphe_signature_intake.settings import SignatureIntakeSettings

# Petitions by the state the tests need, named so that tests can be parametrised by name.
PETITIONS = {
    "open": "11111111-1111-4111-8111-111111111111",
    "closed": "22222222-2222-4222-8222-222222222222",
    "hidden": "33333333-3333-4333-8333-333333333333",
    "past its deadline": "44444444-4444-4444-8444-444444444444",
    "submitted": "55555555-5555-4555-8555-555555555555",
    "closed long ago": "66666666-6666-4666-8666-666666666666",
    "unknown": "99999999-9999-4999-8999-999999999999",
}


@dataclass
class IntakeUnderTest:
    client: TestClient[web.Request, web.Application]
    jetstream: JetStreamContext
    issuer: TokenIssuer

    def signer_token(self, signer: str) -> str:
        return self.issuer.issue(SIGNER, signer, 600)

    async def sign(self, petition: str, signer: str) -> tuple[int, dict[str, object]]:
        response = await self.client.post(
            f"/api/petitions/{petition}/signatures",
            headers={"Authorization": f"Bearer {self.signer_token(signer)}"},
        )
        return response.status, await response.json()

    async def stored_signatures(self) -> int:
        return int((await self.jetstream.stream_info(SIGNATURES)).state.messages)


@pytest.fixture
async def jetstream(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    connection = await nats.connect(nats_server.url)
    yield connection.jetstream()
    await connection.close()


StartIntake = Callable[..., Awaitable["IntakeUnderTest"]]


@pytest.fixture
async def start_intake(
    redis_server: RedisServer,
    nats_server: NatsServer,
    signing_key: SigningKey,
    signer_key: SignerKey,
    jetstream: JetStreamContext,
    aiohttp_client: AiohttpClient,
) -> StartIntake:
    """Start intake (settings may be overridden) on the test's petitions."""
    bucket = await petitions_bucket(jetstream)
    now = time.time()
    for name, state in {
        "open": PetitionState("published", now + 3600),
        "closed": PetitionState("closed", now - 10),
        "hidden": PetitionState("hidden", None),
        "past its deadline": PetitionState("published", now - 1),
        "submitted": PetitionState("submitted", None),
        # Closed more than PARAPHE_MARKS_KEPT_DAYS (30) ago: the counter may have forgotten
        # its marks.
        "closed long ago": PetitionState("closed", now - 31 * 86_400),
    }.items():
        await publish_state(bucket, PETITIONS[name], state)

    async def start(**overrides: Any) -> IntakeUnderTest:
        settings = SignatureIntakeSettings(
            redis_url=redis_server.url,
            nats_url=nats_server.url,
            token_verification_keys=signing_key.public_jwks,
            signer_token_keys=signer_key.secret_jwks,
            signer_token_key_id=signer_key.kid,
            signer_attempts_per_minute=1000,
            **overrides,
        )
        client = await aiohttp_client(create_app(settings))
        # As the service runs it (paraphe_common.runner): signatures taken before routing.
        assert isinstance(client.server.runner, web.AppRunner)
        install_fast_route(client.server.runner)
        return IntakeUnderTest(client, jetstream, signer_key.issuer())

    return start


@pytest.fixture
async def intake(start_intake: StartIntake) -> IntakeUnderTest:
    return await start_intake()


@pytest.fixture
def petitions() -> dict[str, str]:
    return dict(PETITIONS)


@pytest.fixture
def open_petition() -> str:
    return PETITIONS["open"]
