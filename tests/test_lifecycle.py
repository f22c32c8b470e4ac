"""The lifecycle across the real processes: a petition published through the catalogue's
internal API is signed, closes by itself at its deadline, and intake then refuses it."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import asyncpg
import pytest

from paraphe_devstack.petitions import StackTokens, published_by_the_catalogue
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
    signers = StackTokens(stack)
    petition = await published_by_the_catalogue(
        stack,
        "Une pétition qui arrive à échéance",
        "Elle est publiée, signée, puis close par son échéance.",
    )
    connection = await asyncpg.connect(stack.database_url)
    try:
        async with aiohttp.ClientSession() as session:

            async def answer_of(signer: str, expected: int) -> None:
                token = signers.signer(signer, 300)
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
