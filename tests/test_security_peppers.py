"""Pepper rotation: nobody signs a petition twice across it, and author ids do not change.

auth-gateway's real token issuance (two configurations: before and during a rotation) and
signature-intake on real Redis and NATS: a person who signed a petition before the rotation
is "already signed" with a token issued after it, because that petition stays on the old
version; petitions closing after the new version takes over are signed under it.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, Counter
from pytest_aiohttp import AiohttpClient

from paraphe_auth_gateway import identity
from paraphe_auth_gateway.context import Gateway
from paraphe_auth_gateway.identity import author_id
from paraphe_auth_gateway.settings import AuthGatewaySettings
from paraphe_common.peppers import pepper_version_for
from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.settings import ConfigurationError, load_settings
from paraphe_common.streams import petitions_bucket
from paraphe_common.tokens import TokenIssuer
from paraphe_devstack.keys import SignerKey, SigningKey, new_pepper
from paraphe_devstack.servers import NatsServer, RedisServer
from paraphe_signature_intake.app import create_app
from paraphe_signature_intake.settings import SignatureIntakeSettings

Client = TestClient[web.Request, web.Application]

EPOCH = "1970-01-01T00:00:00+00:00"
PEPPERS = {"1": new_pepper(), "2": new_pepper()}
OLD_PETITION = "11111111-1111-4111-8111-111111111111"  # published before the rotation
NEW_PETITION = "22222222-2222-4222-8222-222222222222"  # published after it


def test_a_petition_is_signed_under_the_version_current_at_its_deadline() -> None:
    schedule = {
        "1": datetime.fromisoformat(EPOCH),
        "2": datetime(2027, 6, 1, tzinfo=UTC),
        "3": datetime(2028, 1, 1, tzinfo=UTC),
    }
    assert pepper_version_for(datetime(2027, 5, 31, tzinfo=UTC).timestamp(), schedule) == "1"
    assert pepper_version_for(datetime(2027, 6, 1, tzinfo=UTC).timestamp(), schedule) == "2"
    assert pepper_version_for(datetime(2029, 1, 1, tzinfo=UTC).timestamp(), schedule) == "3"
    assert pepper_version_for(None, schedule) == "3"


def gateway_settings(
    signing_key: SigningKey, signer_key_: SignerKey, **rotation: Any
) -> AuthGatewaySettings:
    return AuthGatewaySettings(
        public_url="http://127.0.0.1:1",
        redis_url="redis://127.0.0.1:1/0",
        token_signing_key=signing_key.private_pem,
        token_signing_key_id=signing_key.kid,
        token_verification_keys=signing_key.public_jwks,
        signer_token_keys=signer_key_.secret_jwks,
        signer_token_key_id=signer_key_.kid,
        franceconnect_issuer="http://127.0.0.1:2",
        franceconnect_client_id="paraphe",
        franceconnect_client_secret="s" * 32,
        staff_issuer="http://127.0.0.1:3",
        staff_client_id="paraphe",
        staff_client_secret="s" * 32,
        staff_roles="{}",
        catalog_url="http://127.0.0.1:4",
        **rotation,
    )


def gateway(settings: AuthGatewaySettings) -> Gateway:
    """auth-gateway's token issuance, without its providers and catalogue (not used here)."""
    none: Any = None
    return Gateway(
        settings=settings,
        providers={},
        issuer=TokenIssuer.from_settings(settings),
        signer_issuer=TokenIssuer.for_signers(settings),
        catalog=none,
        sign_ins=Counter("sign_ins", "unused", registry=CollectorRegistry()),
    )


async def intake(
    aiohttp_client: AiohttpClient,
    redis_server: RedisServer,
    nats_server: NatsServer,
    signing_key: SigningKey,
    signer_key_: SignerKey,
    schedule: dict[str, str],
) -> Client:
    settings = SignatureIntakeSettings(
        redis_url=redis_server.url,
        nats_url=nats_server.url,
        token_verification_keys=signing_key.public_jwks,
        signer_token_keys=signer_key_.secret_jwks,
        signer_token_key_id=signer_key_.kid,
        signer_pepper_schedule=schedule,
    )
    return await aiohttp_client(create_app(settings))


async def sign(client: Client, petition: str, token: str) -> int:
    answer = await client.post(
        f"/api/petitions/{petition}/signatures", headers={"Authorization": f"Bearer {token}"}
    )
    return answer.status


def rotation(
    signing_key: SigningKey, signer_key: SignerKey, takes_over: float
) -> tuple[Gateway, Gateway, dict[str, str]]:
    """auth-gateway before a rotation (one pepper, no schedule) and during it (version 2 taking
    over for petitions closing from ``takes_over`` on), and the schedule."""
    before = gateway(
        gateway_settings(signing_key, signer_key, signer_peppers=json.dumps({"1": PEPPERS["1"]}))
    )
    schedule = {"1": EPOCH, "2": datetime.fromtimestamp(takes_over, UTC).isoformat()}
    during = gateway(
        gateway_settings(
            signing_key,
            signer_key,
            signer_peppers=json.dumps(PEPPERS),
            signer_pepper_version="2",
            signer_pepper_schedule=schedule,
        )
    )
    return before, during, schedule


async def test_nobody_signs_twice_across_a_rotation_and_author_ids_stay(
    aiohttp_client: AiohttpClient,
    redis_server: RedisServer,
    nats_server: NatsServer,
    signing_key: SigningKey,
    signer_key: SignerKey,
) -> None:
    takes_over = time.time() + 30 * 86400
    connection = await nats.connect(nats_server.url)
    bucket = await petitions_bucket(connection.jetstream())
    await publish_state(bucket, OLD_PETITION, PetitionState("published", takes_over - 86400))
    await publish_state(bucket, NEW_PETITION, PetitionState("published", takes_over + 86400))
    await connection.close()

    # Before: one pepper, no schedule.
    before, during, schedule = rotation(signing_key, signer_key, takes_over)
    old_intake = await intake(
        aiohttp_client, redis_server, nats_server, signing_key, signer_key, {}
    )
    alice_before = before.issue_signer_token("alice-franceconnect-sub")
    assert await sign(old_intake, OLD_PETITION, alice_before) == 202

    # During: version 2 takes over for petitions closing from `takes_over` on.
    new_intake = await intake(
        aiohttp_client, redis_server, nats_server, signing_key, signer_key, schedule
    )
    alice_during = during.issue_signer_token("alice-franceconnect-sub")
    payload = json.loads(base64.urlsafe_b64decode(alice_during.split(".")[1] + "=="))
    alice = "alice-franceconnect-sub"
    assert payload["sub"] == identity.signer_key(PEPPERS["2"], alice)
    assert payload["keys"] == {v: identity.signer_key(p, alice) for v, p in PEPPERS.items()}
    assert alice not in json.dumps(payload)
    # The petition signed before the rotation stays on version 1: already signed.
    assert await sign(new_intake, OLD_PETITION, alice_during) == 200
    # A petition published after the rotation is signed under version 2, once.
    assert await sign(new_intake, NEW_PETITION, alice_during) == 202
    assert await sign(new_intake, NEW_PETITION, alice_during) == 200
    # A token from before the rotation still signs old petitions, and must be renewed for new.
    assert await sign(new_intake, OLD_PETITION, alice_before) == 200
    refused = await new_intake.post(
        f"/api/petitions/{NEW_PETITION}/signatures",
        headers={"Authorization": f"Bearer {before.issue_signer_token('bob-sub')}"},
    )
    assert refused.status == 401
    assert (await refused.json())["type"] == "urn:paraphe:problem:invalid-token"
    # Bob, first seen during the rotation, signs both petitions once each.
    bob = during.issue_signer_token("bob-sub")
    assert [await sign(new_intake, p, bob) for p in (OLD_PETITION, NEW_PETITION)] == [202, 202]
    assert [await sign(new_intake, p, bob) for p in (OLD_PETITION, NEW_PETITION)] == [200, 200]

    # Author ids never move: they stay on the author pepper version (1 by default).
    assert before.author_pepper == during.author_pepper == PEPPERS["1"]
    assert author_id(during.author_pepper, "carol") == author_id(PEPPERS["1"], "carol")


async def test_an_intake_not_told_of_a_rotation_refuses_rather_than_sign_twice(
    aiohttp_client: AiohttpClient,
    redis_server: RedisServer,
    nats_server: NatsServer,
    signing_key: SigningKey,
    signer_key: SignerKey,
) -> None:
    """auth-gateway rotating, intake deployed without the schedule (out of order): the token's
    subject is the new version's key, which would sign today's petitions a second time."""
    connection = await nats.connect(nats_server.url)
    bucket = await petitions_bucket(connection.jetstream())
    await publish_state(bucket, OLD_PETITION, PetitionState("published", time.time() + 86400))
    await connection.close()
    before, during, schedule = rotation(signing_key, signer_key, time.time() + 30 * 86400)
    unaware = await intake(aiohttp_client, redis_server, nats_server, signing_key, signer_key, {})
    assert await sign(unaware, OLD_PETITION, before.issue_signer_token("alice")) == 202
    refused = await unaware.post(
        f"/api/petitions/{OLD_PETITION}/signatures",
        headers={"Authorization": f"Bearer {during.issue_signer_token('alice')}"},
    )
    assert refused.status == 503
    assert refused.headers["Retry-After"]
    assert (await refused.json())["type"] == "urn:paraphe:problem:signing-unavailable"
    # Once intake has the schedule, the same token finds Alice's signature.
    told = await intake(
        aiohttp_client, redis_server, nats_server, signing_key, signer_key, schedule
    )
    assert await sign(told, OLD_PETITION, during.issue_signer_token("alice")) == 200


def gateway_environment(
    monkeypatch: pytest.MonkeyPatch, signing_key: SigningKey, signer_key: SignerKey
) -> None:
    """A valid auth-gateway configuration in the environment, one pepper, no schedule."""
    settings = gateway_settings(
        signing_key, signer_key, signer_peppers=json.dumps({"1": PEPPERS["1"]})
    )
    for name, value in settings.model_dump(mode="json").items():
        if value is not None and not isinstance(value, dict | list):
            monkeypatch.setenv(f"PARAPHE_{name.upper()}", str(value))
    monkeypatch.setenv("PARAPHE_SIGNER_PEPPERS", json.dumps({"1": PEPPERS["1"]}))
    monkeypatch.setenv("PARAPHE_STAFF_ROLES", "{}")


def test_a_schedule_naming_a_version_without_pepper_is_refused(
    monkeypatch: pytest.MonkeyPatch, signing_key: SigningKey, signer_key: SignerKey
) -> None:
    gateway_environment(monkeypatch, signing_key, signer_key)
    monkeypatch.setenv("PARAPHE_SIGNER_PEPPER_SCHEDULE", json.dumps({"1": EPOCH, "2": EPOCH}))
    with pytest.raises(ConfigurationError) as refused:
        load_settings(AuthGatewaySettings)
    assert "['2']" in str(refused.value)
    assert PEPPERS["1"] not in str(refused.value)


def test_a_rotation_without_a_schedule_is_refused(
    monkeypatch: pytest.MonkeyPatch, signing_key: SigningKey, signer_key: SignerKey
) -> None:
    """The rotation an operator might try first: a second pepper and signing under it. Without
    a schedule every open petition would take everyone's signature a second time."""
    gateway_environment(monkeypatch, signing_key, signer_key)
    monkeypatch.setenv("PARAPHE_SIGNER_PEPPERS", json.dumps(PEPPERS))
    monkeypatch.setenv("PARAPHE_SIGNER_PEPPER_VERSION", "2")
    with pytest.raises(ConfigurationError) as refused:
        load_settings(AuthGatewaySettings)
    assert "signer_pepper_schedule" in str(refused.value)
    assert not any(pepper in str(refused.value) for pepper in PEPPERS.values())
    # Both peppers kept, still signing under the first: the same refusal.
    monkeypatch.setenv("PARAPHE_SIGNER_PEPPER_VERSION", "1")
    with pytest.raises(ConfigurationError):
        load_settings(AuthGatewaySettings)
    # With the schedule, the rotation is taken.
    monkeypatch.setenv("PARAPHE_SIGNER_PEPPER_VERSION", "2")
    schedule = {"1": EPOCH, "2": "2027-06-01T00:00:00Z"}
    monkeypatch.setenv("PARAPHE_SIGNER_PEPPER_SCHEDULE", json.dumps(schedule))
    assert load_settings(AuthGatewaySettings).signer_pepper_version == "2"
