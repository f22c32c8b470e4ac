"""Signatures from JetStream are stored once, counted once, and acknowledged after the commit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from paraphe_common.streams import COUNTER_CONSUMER, SIGNATURES
from paraphe_counter import consumer, store
from paraphe_counter.consumer import CONSUMER
from paraphe_counter.reconciliation import RECONCILIATION
from paraphe_devstack.servers import NatsServer, PostgresServer

Client = TestClient[web.Request, web.Application]
Sign = Callable[..., Awaitable[bytes]]
Counted = Callable[[str, int], Awaitable[None]]
Until = Callable[..., Awaitable[None]]
Metric = Callable[[Client, str], Awaitable[float]]
MetricReaches = Callable[[Client, str, float], Awaitable[None]]


async def test_each_distinct_signature_is_stored_counted_and_served_once(
    counter: Client,
    petition: str,
    other_petition: str,
    sign: Sign,
    counted: Counted,
    metric: Metric,
) -> None:
    await asyncio.gather(*(sign(petition) for _ in range(30)))
    await asyncio.gather(*(sign(other_petition) for _ in range(20)))

    await counted(petition, 30)
    await counted(other_petition, 20)
    response = await counter.get(f"/api/petitions/{petition}/count")
    assert await response.json() == {"petition_id": petition, "signatures": 30}
    assert await metric(counter, "counter_signatures_stored_total") == 50
    assert await metric(counter, "counter_duplicate_signatures_ignored_total") == 0
    assert await metric(counter, "counter_count_freshness_seconds_count") == 50


async def test_under_a_steady_trickle_batches_grow_rather_than_multiply(
    start_counter: Callable[..., Awaitable[Client]],
    petition: str,
    sign: Sign,
    counted: Counted,
    metric: Metric,
) -> None:
    # A signature every ~5 ms for ~0.6 s: without the linger each fetch would take the one or
    # two that had arrived; with it a fetch comes at most every 0.2 s and takes them together.
    linger = 0.2
    counter = await start_counter(batch_linger=linger)
    started = time.monotonic()
    for _ in range(120):
        await sign(petition)
        await asyncio.sleep(0.005)
    await counted(petition, 120)
    elapsed = time.monotonic() - started
    batches = await metric(counter, "counter_batch_size_signatures_count")
    assert await metric(counter, "counter_batch_size_signatures_sum") == 120
    # At most one fetch per linger while they came (and one for the last): 115 batches
    # without the linger, however slow or fast the machine.
    assert 1 <= batches <= elapsed / linger + 2, (batches, elapsed)


async def test_a_signature_published_twice_is_counted_once(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    metric_reaches: MetricReaches,
    intake: JetStreamContext,
) -> None:
    # The same message id twice: an intake retry, which JetStream recognises.
    key = await sign(petition)
    await sign(petition, key)
    # The same key under another message id: JetStream cannot tell, PostgreSQL can.
    await sign(petition, key, msg_id="a-retry-published-after-the-dedupe-window")
    await sign(petition)

    await counted(petition, 2)
    await metric_reaches(counter, "counter_duplicate_signatures_ignored_total", 1)
    assert (await intake.stream_info(SIGNATURES)).state.messages == 0


async def test_a_batch_delivered_again_after_its_commit_is_not_counted_again(
    start_counter: Callable[..., Awaitable[Client]],
    petition: str,
    sign: Sign,
    counted: Counted,
    metric_reaches: MetricReaches,
    database: asyncpg.Connection,
) -> None:
    # What a crash between the commit and the acknowledgements leaves: rows and counts written,
    # messages still in JetStream.
    keys = [os.urandom(32) for _ in range(3)]
    await database.executemany(
        "INSERT INTO counter.signatures (petition_id, dedupe_key, signed_at)"
        " VALUES ($1, $2, date_trunc('hour', now(), 'UTC'))",
        [(petition, key) for key in keys],
    )
    await database.execute(
        "INSERT INTO counter.count_shards (petition_id, shard, signatures) VALUES ($1, 7, 3)",
        petition,
    )
    for key in keys:
        await sign(petition, key)
    await sign(petition)

    counter = await start_counter()

    await counted(petition, 4)
    await metric_reaches(counter, "counter_duplicate_signatures_ignored_total", 3)


async def test_unreadable_messages_are_acknowledged_counted_and_dropped(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    metric_reaches: MetricReaches,
    intake: JetStreamContext,
) -> None:
    key = os.urandom(32).hex().encode()
    await intake.publish("signatures.not-a-petition", key)
    await intake.publish(f"signatures.{petition}.extra", key)
    await intake.publish(f"signatures.{petition}", b"not a key")
    await intake.publish(f"signatures.{petition}", key[:-2])
    await sign(petition)

    await counted(petition, 1)
    await metric_reaches(counter, 'counter_malformed_messages_total{part="subject"}', 2)
    await metric_reaches(counter, 'counter_malformed_messages_total{part="body"}', 2)
    assert (await intake.stream_info(SIGNATURES)).state.messages == 0
    assert (await (await counter.get("/readyz")).json())["status"] == "ready"


async def test_another_spelling_of_a_petition_or_key_is_the_same_signature(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    metric_reaches: MetricReaches,
    intake: JetStreamContext,
) -> None:
    key = await sign(petition)
    await intake.publish(f"signatures.{petition.upper()}", key.hex().upper().encode())
    await intake.publish(f"signatures.{petition.upper()}", os.urandom(32).hex().encode())

    await counted(petition, 2)
    await metric_reaches(counter, "counter_duplicate_signatures_ignored_total", 1)


async def test_signatures_wait_in_jetstream_while_postgresql_refuses_them(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    metric: Metric,
    metric_reaches: MetricReaches,
    database: asyncpg.Connection,
    intake: JetStreamContext,
) -> None:
    await database.execute("ALTER TABLE counter.signatures RENAME TO signatures_away")
    await asyncio.gather(*(sign(petition) for _ in range(4)))

    # The counter may have fetched the four in one batch or in parts: those delivered wait
    # unacknowledged (ack pending), the others undelivered behind them (pending).
    async def retried_and_measured() -> bool:
        failures = await metric(counter, "counter_batch_failures_total")
        delivered = await metric(counter, "counter_consumer_ack_pending_messages")
        undelivered = await metric(counter, "counter_consumer_pending_messages")
        return failures >= 2 and delivered >= 1 and delivered + undelivered == 4

    await until(retried_and_measured)
    info = await intake.consumer_info(SIGNATURES, COUNTER_CONSUMER)
    assert info.num_ack_pending + info.num_pending == 4  # none acknowledged
    assert info.ack_floor.stream_seq == 0
    assert (await intake.stream_info(SIGNATURES)).state.messages == 4
    await database.execute("ALTER TABLE counter.signatures_away RENAME TO signatures")

    await counted(petition, 4)
    assert (await intake.stream_info(SIGNATURES)).state.messages == 0
    await metric_reaches(counter, "counter_consumer_ack_pending_messages", 0)


async def test_counting_goes_on_after_nats_restarts(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    nats_server: NatsServer,
) -> None:
    for _ in range(3):
        await sign(petition)
    await counted(petition, 3)

    nats_server.stop()
    nats_server.start()  # same port, same store: the stream and the consumer are still there
    for _ in range(2):
        await sign(petition)

    await counted(petition, 5)
    assert (await (await counter.get("/readyz")).json())["status"] == "ready"


async def test_counting_goes_on_when_the_consumer_is_deleted(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    intake: JetStreamContext,
) -> None:
    await sign(petition)
    await counted(petition, 1)

    await intake.delete_consumer(SIGNATURES, COUNTER_CONSUMER)
    await sign(petition)

    await counted(petition, 2)


async def test_a_counter_stopped_while_postgresql_refuses_leaves_the_signatures_in_jetstream(
    start_counter: Callable[..., Awaitable[Client]],
    petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    metric: Metric,
    database: asyncpg.Connection,
    intake: JetStreamContext,
) -> None:
    stopping = await start_counter()
    await database.execute("ALTER TABLE counter.signatures RENAME TO signatures_away")
    await sign(petition)
    await sign(petition)

    async def retrying() -> bool:
        return await metric(stopping, "counter_batch_failures_total") >= 1

    await until(retrying)
    info = await intake.consumer_info(SIGNATURES, COUNTER_CONSUMER)
    assert info.num_ack_pending >= 1  # the batch this counter holds
    async with asyncio.timeout(10):  # the retry gives way to the stop, without waiting it out
        await stopping.server.close()
    await database.execute("ALTER TABLE counter.signatures_away RENAME TO signatures")

    # Handed back at the stop, the batch goes to the next counter without waiting for the
    # acknowledgement wait (30 s) to run out.
    await start_counter()
    await counted(petition, 2)


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name: state, parent, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _children(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == parent:
                    children.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue  # ended meanwhile
    return children


class Freeze:
    """Every process of a PostgreSQL server stopped (SIGSTOP): its connections stay open and
    nothing answers, as when a failover leaves the old address silent."""

    def __init__(self, server: PostgresServer) -> None:
        assert server.process is not None
        self._postmaster = server.process.pid
        self._stopped: list[int] = []

    def freeze(self) -> None:
        # The postmaster first, so that it forks no backend meanwhile; each backend leads a
        # session of its own, so a signal to the postmaster's group would miss them.
        self._stop(self._postmaster)
        for child in _children(self._postmaster):
            self._stop(child)
        for pid in self._stopped:
            with contextlib.suppress(FileNotFoundError):
                while _stat(pid)[0] != "T":  # stopped for sure before any query is sent
                    time.sleep(0.001)

    def thaw(self) -> None:
        for pid in self._stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._stopped.clear()

    @property
    def frozen(self) -> bool:
        return bool(self._stopped)

    def _stop(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # a backend ending meanwhile
            os.kill(pid, signal.SIGSTOP)
            self._stopped.append(pid)


async def test_counting_goes_on_while_postgresql_is_silent(
    counter: Client,
    petition: str,
    sign: Sign,
    counted: Counted,
    until: Until,
    metric: Metric,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def reconciled() -> bool:
        return counter.app[RECONCILIATION].passes >= 1

    await until(reconciled)  # its pass at start is done: the counting loop alone reads below
    signatures = counter.app[CONSUMER]
    postgresql = Freeze(postgres_server)
    monkeypatch.setattr(consumer, "SETTLE_TIMEOUT", 0.5)
    monkeypatch.setattr(consumer, "STORE_TIMEOUT", 0.5)
    # The first settle of the petition finds PostgreSQL silent: every process stopped as it
    # asks.
    record_thresholds_reached = store.record_thresholds_reached
    silenced = asyncio.Event()

    async def silent_once(
        db: store.Queryable, thresholds: Sequence[int], petitions: Collection[str]
    ) -> list[store.ThresholdReached]:
        if not silenced.is_set() and petition in petitions:
            silenced.set()
            postgresql.freeze()
        return await record_thresholds_reached(db, thresholds, petitions)

    monkeypatch.setattr(store, "record_thresholds_reached", silent_once)
    fetch = signatures._fetch
    fetched_while_frozen: list[Msg] = []

    async def watched_fetch() -> list[Msg]:
        messages = await fetch()
        if postgresql.frozen:
            fetched_while_frozen.extend(messages)
        return messages

    monkeypatch.setattr(signatures, "_fetch", watched_fetch)

    try:
        await sign(petition)
        async with asyncio.timeout(10):
            await silenced.wait()
        await sign(petition)

        # The settle gives up in time, the loop takes the next batch from JetStream, and each
        # try to store it gives up in time too.
        async def later_batch_tried_again() -> bool:
            failures = await metric(counter, "counter_batch_failures_total")
            return bool(fetched_while_frozen) and failures >= 2

        await until(later_batch_tried_again)
        assert await metric(counter, "counter_settle_failures_total") >= 1
    finally:
        postgresql.thaw()
        monkeypatch.undo()  # the usual timeouts: a loaded machine may need more than 0.5 s

    # PostgreSQL answers again: the later batch is stored, and both settles complete.
    await counted(petition, 2)
