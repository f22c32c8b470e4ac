"""The lifecycle across the real processes: a petition published through the catalogue's
internal API is signed, closes by itself at its deadline, and intake then refuses it."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import asyncpg
import pytest

from paraphe_common.tokens import SIGNER, STAFF, TokenIssuer
from paraphe_devstack.keys import DevSecrets
from paraphe_devstack.servers import LOCALHOST
from paraphe_devstack.stack import Stack

pytestmark = pytest.mark.stack


async def sign(session: aiohttp.ClientSession, stack: Stack, petition: str, token: str) -> int:
    async with session.post(
        f"{stack.public_url}/api/petitions/{petition}/signatures",
        headers={"Authorization": f"Bearer {token}"},
    ) as answer:
        return answer.status


async def test_a_published_petition_closes_at_its_deadline_and_intake_refuses_it(
    stack: Stack,
) -> None:
    secrets = DevSecrets.load_or_create(stack.state_dir / "secrets.json")
    staff = TokenIssuer(secrets.signing_key.private_pem, secrets.signing_key.kid).issue(
        STAFF, "marie", 300, roles=frozenset({"moderator"})
    )
    signers = secrets.signer_key.issuer()
    connection = await asyncpg.connect(stack.database_url)
    try:
        petition = str(
            await connection.fetchval(
                "INSERT INTO catalog.petitions (author_id, title, body, status, submitted_at)"
                " VALUES ('demo-author', 'Une pétition qui arrive à échéance',"
                " 'Elle est publiée, signée, puis close par son échéance.', 'submitted', now())"
                " RETURNING id"
            )
        )
        catalog = f"http://{LOCALHOST}:{stack.ports.services['petition-catalog']}"
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{catalog}/internal/petitions/{petition}/decisions",
                json={"decision_id": str(uuid.uuid4()), "decision": "publish", "committee": "lois"},
                headers={"Authorization": f"Bearer {staff}"},
            ) as published:
                assert published.status == 200, await published.text()

            async def answer_of(signer: str, expected: int) -> None:
                token = signers.issue(SIGNER, signer, 300)
                async with asyncio.timeout(15):
                    while await sign(session, stack, petition, token) != expected:
                        await asyncio.sleep(0.2)

            await answer_of("lifecycle-before", 202)  # once intake's view has it published
            # The deadline passes: only the catalogue's deadline pass can tell intake.
            await connection.execute(
                "UPDATE catalog.petitions SET closes_at = now() WHERE id = $1", uuid.UUID(petition)
            )
            await answer_of("lifecycle-after", 409)
            async with session.get(f"{stack.public_url}/api/petitions/{petition}") as public:
                assert (await public.json())["status"] == "closed"
    finally:
        await connection.close()
