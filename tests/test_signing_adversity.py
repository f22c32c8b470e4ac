"""Signing under adversity, across real processes: every signer who got an answer is counted
exactly once, and nobody twice, whatever is killed, flushed or restarted meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from paraphe_common.marks import signed_marks
from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.streams import petitions_bucket
from paraphe_common.tokens import SIGNER
from paraphe_devstack.binaries import Binaries
from paraphe_devstack.checks import mid_run, public_count, until_ok
from paraphe_devstack.keys import DevSecrets
from paraphe_devstack.stack import Stack, temporary_stack
from paraphe_signature_intake.signatures import dedupe_key

pytestmark = pytest.mark.stack

RETRYABLE = {502, 503, 504}


@pytest.fixture(scope="module")
def chaos_stack(binaries: Binaries) -> Iterator[Stack]:
    """A stack of its own: these tests kill its processes."""
    with temporary_stack(binaries) as stack:
        yield stack
        # Restarts and reconnections included, the services never lacked a NATS right.
        refused = stack.nats.refusals()
        assert not refused, "NATS refused the services:\n" + "\n".join(refused[-20:])


async def new_open_petition(stack: Stack) -> str:
    """A published petition, as the catalogue would publish it."""
    connection = await asyncpg.connect(stack.database_url)
    try:
        petition = str(
            await connection.fetchval(
                """
                INSERT INTO catalog.petitions (author_id, title, body, status, published_at,
                    closes_at)
                VALUES ('demo-author', 'Une pétition pour les tests de robustesse',
                    'Elle reçoit des signatures pendant que tout tombe en panne.', 'published',
                    now(), now() + interval '1 day')
                RETURNING id
                """
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
    await known_to_intake(stack, petition)
    return petition


async def known_to_intake(stack: Stack, petition: str) -> None:
    """Until every intake process's view has the petition: it follows the bucket, and after
    a NATS restart it reads it afresh only once it has reconnected (a few seconds)."""
    token = next(iter(signer_tokens(stack, 1, "view-probe-").values()))
    for name, process in stack.services.items():
        if name.startswith("signature-intake"):
            url = f"http://127.0.0.1:{process.port}/api/petitions/{petition}/signatures/me"
            await until_ok(url, {"Authorization": f"Bearer {token}"})


def signer_tokens(stack: Stack, count: int, prefix: str) -> dict[str, str]:
    """Signer keys and their tokens, as auth-gateway issues them after FranceConnect."""
    issuer = DevSecrets.load_or_create(stack.state_dir / "secrets.json").signer_key.issuer()
    return {
        f"{prefix}{n:06d}": issuer.issue(SIGNER, f"{prefix}{n:06d}", 3600) for n in range(count)
    }


async def sign_until_answered(
    session: aiohttp.ClientSession, url: str, token: str, deadline: float
) -> int:
    """As a browser would: retry on 503 and on connection errors, until 202 or 200."""
    while True:
        try:
            async with session.post(url, headers={"Authorization": f"Bearer {token}"}) as answer:
                await answer.read()
                if answer.status not in RETRYABLE:
                    return answer.status
        except (aiohttp.ClientError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the signature was never answered")
        await asyncio.sleep(0.05)


async def campaign(
    stack: Stack,
    petition: str,
    tokens: dict[str, str],
    *,
    repeats: int = 1,
    concurrency: int = 64,
    chaos: Callable[[list[int]], Awaitable[None]] | None = None,
    through_proxy: bool = False,
) -> list[int]:
    port = stack.ports.proxy if through_proxy else stack.ports.services["signature-intake"]
    url = f"http://127.0.0.1:{port}/api/petitions/{petition}/signatures"
    queue: asyncio.Queue[str] = asyncio.Queue()
    for _ in range(repeats):
        for token in tokens.values():
            queue.put_nowait(token)
    statuses: list[int] = []
    deadline = time.monotonic() + 120
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                statuses.append(
                    await sign_until_answered(session, url, queue.get_nowait(), deadline)
                )

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        if chaos is not None:
            await chaos(statuses)
        await asyncio.gather(*workers)
    return statuses


async def counted(stack: Stack, petition: str, expected: int, within: float = 60.0) -> int:
    url = f"http://127.0.0.1:{stack.ports.services['counter']}/api/petitions/{petition}/count"
    return await public_count(url, expected, within)


async def stored_keys(stack: Stack, petition: str) -> list[str]:
    connection = await asyncpg.connect(stack.database_url)
    try:
        rows = await connection.fetch(
            "SELECT encode(dedupe_key, 'hex') AS key FROM counter.signatures"
            " WHERE petition_id = $1",
            petition,
        )
    finally:
        await connection.close()
    return [row["key"] for row in rows]


async def assert_each_counted_once(stack: Stack, petition: str, signers: list[str]) -> None:
    assert await counted(stack, petition, len(signers)) == len(signers)
    keys = await stored_keys(stack, petition)
    assert sorted(keys) == sorted(dedupe_key(signer, petition) for signer in signers)


@pytest.fixture
async def redis_client(chaos_stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = chaos_stack.redis.async_client()
    yield client
    await client.aclose()


async def test_ten_thousand_signers_and_as_many_repeats_are_counted_exactly(
    chaos_stack: Stack, redis_client: aioredis.Redis
) -> None:
    petition = await new_open_petition(chaos_stack)
    tokens = signer_tokens(chaos_stack, 10_000, "many-")
    statuses = await campaign(chaos_stack, petition, tokens, repeats=2)
    # The repeats come 10,000 requests after the first attempts, long after their answers:
    # each is recognised, whether its promotion was written yet or not.
    assert statuses.count(202) == 10_000
    assert statuses.count(200) == 10_000
    await assert_each_counted_once(chaos_stack, petition, list(tokens))
    assert len(await signed_marks(redis_client, petition)) == 10_000
    assert int(await redis_client.get(f"count:{petition}") or 0) == 10_000


def restart(
    stack: Stack, service: str, total: int, down_for: float = 1.0
) -> Callable[[list[int]], Awaitable[None]]:
    """kill -9 of ``service`` once a fifth of the campaign's ``total`` answers are in."""

    async def chaos(answers: list[int]) -> None:
        await mid_run(answers, total // 5, total)
        process = stack.services[service]
        process.kill()  # kill -9: no shutdown, no drain, whatever was in flight is cut
        await asyncio.sleep(down_for)
        await asyncio.to_thread(process.start)

    return chaos


@pytest.mark.parametrize("service", ["signature-intake", "counter"])
async def test_a_killed_service_loses_and_doubles_nothing(chaos_stack: Stack, service: str) -> None:
    petition = await new_open_petition(chaos_stack)
    tokens = signer_tokens(chaos_stack, 3_000, f"kill-{service}-")
    statuses = await campaign(
        chaos_stack, petition, tokens, chaos=restart(chaos_stack, service, len(tokens))
    )
    assert set(statuses) <= {200, 202}
    await assert_each_counted_once(chaos_stack, petition, list(tokens))


async def test_a_redis_flush_mid_run_loses_and_doubles_nothing(
    chaos_stack: Stack, redis_client: aioredis.Redis
) -> None:
    petition = await new_open_petition(chaos_stack)
    tokens = signer_tokens(chaos_stack, 3_000, "flush-")

    async def flush(answers: list[int]) -> None:
        await mid_run(answers, len(tokens) // 2, 2 * len(tokens))
        await redis_client.flushall()

    statuses = await campaign(chaos_stack, petition, tokens, repeats=2, chaos=flush)
    assert set(statuses) <= {200, 202}
    await assert_each_counted_once(chaos_stack, petition, list(tokens))


async def test_a_nats_restart_mid_run_loses_and_doubles_nothing(chaos_stack: Stack) -> None:
    petition = await new_open_petition(chaos_stack)
    tokens = signer_tokens(chaos_stack, 3_000, "nats-")

    async def restart_nats(answers: list[int]) -> None:
        await mid_run(answers, len(tokens) // 5, len(tokens))
        await asyncio.to_thread(chaos_stack.nats.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(chaos_stack.nats.start)

    statuses = await campaign(chaos_stack, petition, tokens, chaos=restart_nats)
    assert set(statuses) <= {200, 202}
    await assert_each_counted_once(chaos_stack, petition, list(tokens))


async def test_two_signatures_of_one_person_cannot_be_linked_from_stored_data(
    chaos_stack: Stack,
) -> None:
    first, second = await new_open_petition(chaos_stack), await new_open_petition(chaos_stack)
    tokens = signer_tokens(chaos_stack, 1, "linkable-")
    for petition in (first, second):
        assert await campaign(chaos_stack, petition, tokens) == [202]
        assert await counted(chaos_stack, petition, 1) == 1
    connection = await asyncpg.connect(chaos_stack.database_url)
    try:
        columns = await connection.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'counter' AND table_name = 'signatures' ORDER BY 1"
        )
        rows = await connection.fetch(
            "SELECT petition_id, dedupe_key, signed_at, counted_at FROM counter.signatures"
            " WHERE petition_id = ANY($1::uuid[])",
            [first, second],
        )
    finally:
        await connection.close()
    # Nothing but the petition, a key that is an HMAC under the person's secret signer key,
    # and times: the two keys share nothing that ties them to one person.
    assert [c["column_name"] for c in columns] == [
        "counted_at", "dedupe_key", "petition_id", "signed_at",
    ]  # fmt: skip
    assert len(rows) == 2
    assert rows[0]["dedupe_key"] != rows[1]["dedupe_key"]
    # Times are kept to the hour: signing two petitions seconds apart leaves no trail.
    for row in rows:
        for moment in (row["signed_at"], row["counted_at"]):
            assert (moment.minute, moment.second, moment.microsecond) == (0, 0, 0)


@pytest.fixture(scope="module")
def replicated_stack(binaries: Binaries) -> Iterator[Stack]:
    """Two intake processes behind the proxy, as production runs replicas."""
    with temporary_stack(binaries, intake_replicas=2) as stack:
        yield stack


async def accepted_by(stack: Stack, replica: str) -> float:
    """Signatures a replica accepted, from its own metrics."""
    port = stack.services[replica].port
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        text = await answer.text()
    line = 'signature_intake_signatures_total{outcome="accepted"} '
    return sum(float(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line))


async def test_intake_replicas_share_the_signers_and_recognise_each_others_repeats(
    replicated_stack: Stack,
) -> None:
    petition = await new_open_petition(replicated_stack)
    tokens = signer_tokens(replicated_stack, 1_000, "replicas-")
    statuses = await campaign(replicated_stack, petition, tokens, repeats=2, through_proxy=True)
    # The proxy sends requests round the two replicas, so a repeat often reaches the replica
    # that did not take the first attempt: the marks in Redis are shared, the answer the same.
    assert statuses.count(202) == 1_000
    assert statuses.count(200) == 1_000
    replicas = ["signature-intake", "signature-intake-2"]
    shares = [await accepted_by(replicated_stack, replica) for replica in replicas]
    assert sum(shares) == 1_000
    assert min(shares) > 0, shares
    await assert_each_counted_once(replicated_stack, petition, list(tokens))


async def test_a_killed_intake_replica_leaves_the_signers_to_the_other(
    replicated_stack: Stack,
) -> None:
    petition = await new_open_petition(replicated_stack)
    tokens = signer_tokens(replicated_stack, 3_000, "replica-kill-")
    statuses = await campaign(
        replicated_stack,
        petition,
        tokens,
        through_proxy=True,
        chaos=restart(replicated_stack, "signature-intake-2", len(tokens)),
    )
    assert set(statuses) <= {200, 202}
    await assert_each_counted_once(replicated_stack, petition, list(tokens))
