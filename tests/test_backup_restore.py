"""Backup and restore of PostgreSQL, as docs/operations.md says to do it, on a stack of its own.

A backup (pg_dump, custom format) is taken while people sign; more sign after it; the database
is lost and restored from the backup (pg_restore into a new database), people signing on
meanwhile. Then Redis is rebuilt from PostgreSQL: the counter, started, stores what waited in
JetStream and its reconciliation brings the totals back to the stored rows; once it has caught
up, ``paraphe-counter rebuild-marks`` rebuilds the marks. Those who signed before the backup or
during the restore are counted once and cannot sign again; the signatures between the backup
and the loss are gone, and their marks with them, so those people are not told they signed
when nothing counts them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from paraphe_common.marks import MARKED_BYTES, mark_of, signed_marks
from paraphe_devstack.binaries import Binaries
from paraphe_devstack.checks import public_count
from paraphe_devstack.petitions import StackTokens, open_petition
from paraphe_devstack.servers import LOCALHOST
from paraphe_devstack.stack import DATABASE, SERVICES, Stack, temporary_stack
from paraphe_signature_intake.signatures import dedupe_key

pytestmark = pytest.mark.stack

# What uses PostgreSQL stops while it is restored; intake and auth-gateway keep answering.
USERS_OF_POSTGRESQL = ("counter", "petition-catalog", "moderation")


@pytest.fixture(scope="module")
def restore_stack(binaries: Binaries) -> Iterator[Stack]:
    """A stack of its own: this test drops its database."""
    with temporary_stack(binaries) as stack:
        yield stack


@pytest.fixture
async def redis_client(restore_stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = restore_stack.redis.async_client()
    yield client
    await client.aclose()


async def sign(stack: Stack, petition: str, signers: list[str]) -> list[int]:
    tokens = StackTokens(stack)
    base = f"http://{LOCALHOST}:{stack.ports.services['signature-intake']}/api/petitions"
    statuses = []
    async with aiohttp.ClientSession() as session:
        for signer in signers:
            headers = {"Authorization": f"Bearer {tokens.signer(signer)}"}
            async with session.post(f"{base}/{petition}/signatures", headers=headers) as answer:
                await answer.read()
                statuses.append(answer.status)
    return statuses


async def has_signed(stack: Stack, petition: str, signer: str) -> bool:
    token = StackTokens(stack).signer(signer)
    url = (
        f"http://{LOCALHOST}:{stack.ports.services['signature-intake']}"
        f"/api/petitions/{petition}/signatures/me"
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as answer:
        assert answer.status == 200
        return bool((await answer.json())["signed"])


async def count_becomes(stack: Stack, petition: str, expected: int, within: float = 30) -> int:
    url = f"http://{LOCALHOST}:{stack.ports.services['counter']}/api/petitions/{petition}/count"
    return await public_count(url, expected, within)


async def stored(stack: Stack, petition: str) -> set[str]:
    connection = await asyncpg.connect(stack.database_url)
    try:
        rows = await connection.fetch(
            "SELECT encode(dedupe_key, 'hex') FROM counter.signatures WHERE petition_id = $1",
            petition,
        )
    finally:
        await connection.close()
    return {row[0] for row in rows}


def postgres_tool(stack: Stack, tool: str, *arguments: str) -> None:
    done = subprocess.run(
        [
            str(stack.postgres.bindir / tool),
            "--host", LOCALHOST, "--port", str(stack.postgres.port), "--username", "postgres",
            *arguments,
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def run_counter(stack: Stack, command: str) -> str:
    spec = next(spec for spec in SERVICES if spec.name == "counter")
    done = subprocess.run(
        [sys.executable, "-m", spec.module, command],
        env=stack.service_env(spec),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_after_a_restore_redis_follows_postgresql_and_nobody_signs_twice(
    restore_stack: Stack, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    stack = restore_stack
    petition = await open_petition(stack, "Une pétition sauvegardée puis restaurée")
    before = [f"before-backup-{n}" for n in range(20)]
    after = [f"after-backup-{n}" for n in range(10)]
    during = [f"during-restore-{n}" for n in range(5)]
    assert await sign(stack, petition, before) == [202] * 20
    assert await count_becomes(stack, petition, 20) == 20

    backup = tmp_path / "paraphe.dump"
    postgres_tool(stack, "pg_dump", "--format=custom", f"--file={backup}", DATABASE)

    assert await sign(stack, petition, after) == [202] * 10
    assert await count_becomes(stack, petition, 30) == 30

    # The disaster: the database is lost. Its users stop; a new one is restored from the backup.
    for name in USERS_OF_POSTGRESQL:
        await asyncio.to_thread(stack.services[name].stop)
    stack.postgres.psql(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
    stack.postgres.psql(f'CREATE DATABASE "{DATABASE}"')
    postgres_tool(stack, "pg_restore", "--exit-on-error", "--no-owner", f"--dbname={DATABASE}",
                  str(backup))  # fmt: skip
    # Redis lost some marks too, to be rebuilt.
    for signer in before[:5]:
        mark = mark_of(petition, dedupe_key(signer, petition))
        assert await redis_client.hdel(mark.bucket, mark.field) == 1
    # And some of paraphe's first layout of marks (a key each), which the rebuild replaces.
    await redis_client.set(f"sig:{petition}:{dedupe_key(before[0], petition)}", b"s")

    # Intake signs on meanwhile: the signatures wait in JetStream for the counter.
    assert await sign(stack, petition, during) == [202] * 5

    # The counter first: its reconciliation brings the total to the restored rows, and it
    # stores what waited; then the marks, once it has caught up.
    await asyncio.to_thread(stack.services["counter"].start)
    assert await count_becomes(stack, petition, 25) == 25
    run_counter(stack, "rebuild-marks")
    for name in USERS_OF_POSTGRESQL:
        if name != "counter":
            await asyncio.to_thread(stack.services[name].start)

    kept = before + during
    assert await stored(stack, petition) == {dedupe_key(s, petition) for s in kept}
    # Every mark is PostgreSQL's: those who signed before the backup or during the restore are
    # marked, the others not.
    assert all([await has_signed(stack, petition, s) for s in kept])
    assert not any([await has_signed(stack, petition, s) for s in after])
    assert await signed_marks(redis_client, petition) == {
        bytes.fromhex(dedupe_key(s, petition))[:MARKED_BYTES] for s in kept
    }
    assert [key async for key in redis_client.scan_iter(match="sig:*")] == []

    # Nobody signs twice: a second signature is "already signed", and the count does not move.
    assert set(await sign(stack, petition, kept)) == {200}
    await asyncio.sleep(1.0)
    assert await count_becomes(stack, petition, 25, within=2) == 25
    assert len(await stored(stack, petition)) == 25


def test_rebuild_marks_is_a_command_of_the_counter() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paraphe_counter", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "rebuild-marks" in done.stdout
