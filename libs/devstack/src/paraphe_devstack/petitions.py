"""Petitions and tokens for tests that run against a whole stack."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import asyncpg

from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.streams import petitions_bucket
from paraphe_common.tokens import AUTHOR, SIGNER, STAFF, TokenIssuer
from paraphe_devstack.keys import DevSecrets
from paraphe_devstack.servers import LOCALHOST
from paraphe_devstack.stack import Stack


async def open_petition(stack: Stack, title: str = "Une pétition ouverte pour les tests") -> str:
    """A petition published for a day, as the catalogue would publish it; its id."""
    connection = await asyncpg.connect(stack.database_url)
    try:
        petition = str(
            await connection.fetchval(
                """
                INSERT INTO catalog.petitions (author_id, title, body, status, published_at,
                    closes_at)
                VALUES ('demo-author', $1,
                    'Elle sert aux tests qui parcourent toute la plateforme.', 'published',
                    now(), now() + interval '1 day')
                RETURNING id
                """,
                title,
            )
        )
    finally:
        await connection.close()
    client = await stack.nats.admin_connection()
    try:
        bucket = await petitions_bucket(client.jetstream())
        await publish_state(bucket, petition, PetitionState("published", time.time() + 86400))
    finally:
        await client.close()
    await asyncio.sleep(0.2)  # the services' views follow the bucket
    return petition


class StackTokens:
    """Tokens as auth-gateway issues them, under the stack's own development secrets."""

    def __init__(self, stack: Stack) -> None:
        secrets = DevSecrets.load_or_create(stack.state_dir / "secrets.json")
        self._platform = TokenIssuer(secrets.signing_key.private_pem, secrets.signing_key.kid)
        self._signers = secrets.signer_key.issuer()

    def signer(self, signer_key: str, lifetime: int = 3600) -> str:
        return self._signers.issue(SIGNER, signer_key, lifetime)

    def author(self, author_id: str, lifetime: int = 3600) -> str:
        return self._platform.issue(AUTHOR, author_id, lifetime)

    def staff(self, subject: str, *roles: str, lifetime: int = 3600) -> str:
        return self._platform.issue(STAFF, subject, lifetime, roles=frozenset(roles), name=subject)


async def published_by_the_catalogue(stack: Stack, title: str, body: str) -> str:
    """A petition submitted, then published by a moderator's decision through the catalogue's
    own internal API: its deadline is the catalogue's, and its event goes through the outbox to
    JetStream, the PETITIONS bucket and moderation, as in production; its id."""
    connection = await asyncpg.connect(stack.database_url)
    try:
        petition = str(
            await connection.fetchval(
                "INSERT INTO catalog.petitions (author_id, title, body, status, submitted_at)"
                " VALUES ('demo-author', $1, $2, 'submitted', now()) RETURNING id",
                title,
                body,
            )
        )
    finally:
        await connection.close()
    catalog = f"http://{LOCALHOST}:{stack.ports.services['petition-catalog']}"
    decision = {"decision_id": str(uuid.uuid4()), "decision": "publish", "committee": "lois"}
    staff = {"Authorization": f"Bearer {StackTokens(stack).staff('marie', 'moderator')}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{catalog}/internal/petitions/{petition}/decisions", json=decision, headers=staff
        ) as published,
    ):
        if published.status != 200:
            raise AssertionError(f"the catalogue did not publish: {await published.text()}")
    return petition
