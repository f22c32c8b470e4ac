"""NATS admits each service as its own user, allowed its own subjects and no others.

A real nats-server with the authorization block the local stack and the Kubernetes overlays
use (paraphe_devstack.nats_access). Each refusal is read where the server says it (a
"Permissions Violation" for that subject, sent to the client) and checked to have changed
nothing. That the services can still do all their work under these users is what every
whole-stack test shows: the local stack runs with them, and its NATS log is checked for
refusals when it stops (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NatsClient

from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.resources import inbox_prefix
from paraphe_common.streams import (
    COUNTER_CONSUMER,
    PETITION_EVENTS,
    SIGNATURE_SUBJECTS,
    SIGNATURES,
    ensure_petition_events_stream,
    ensure_signatures_stream,
    petition_event_subject,
    petitions_bucket,
    signature_subject,
)
from paraphe_devstack.binaries import Binaries
from paraphe_devstack.keys import new_nats_passwords
from paraphe_devstack.nats_access import ADMIN, SERVICE_PERMISSIONS, THRESHOLD_EVENTS
from paraphe_devstack.servers import NatsServer, free_port

PETITION = "7c1e4f0a-2b3d-4e5f-8a9b-0c1d2e3f4a5b"
INTAKE, COUNTER, CATALOG, MODERATION = SERVICE_PERMISSIONS
OTHERS_THAN = {
    service: [s for s in SERVICE_PERMISSIONS if s != service] for service in SERVICE_PERMISSIONS
}


@pytest.fixture(scope="module")
def server(binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    base = tmp_path_factory.mktemp("nats-access")
    nats_server = NatsServer(
        binaries.nats_server, base / "js", free_port(), free_port(),
        passwords=new_nats_passwords(),
    )  # fmt: skip
    nats_server.start()
    try:
        yield nats_server
    finally:
        nats_server.stop()


class Session:
    """A connection as one user, with what the server told it went wrong."""

    def __init__(self, client: NatsClient, errors: list[Exception]) -> None:
        self.client = client
        self.errors = errors

    async def refusal(self) -> str:
        """The server's "Permissions Violation" for the last thing asked, within 2 s."""
        await self.client.flush()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            for error in self.errors:
                if "permissions violation" in str(error).lower():
                    return str(error)
            await asyncio.sleep(0.02)
        raise AssertionError(f"the server refused nothing; errors: {self.errors!r}")


async def connect(server: NatsServer, user: str, password: str | None = None) -> Session:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    assert server.passwords is not None
    client = await nats.connect(
        server.url,
        user=user,
        password=password if password is not None else server.passwords[user],
        inbox_prefix=inbox_prefix(user),
        error_cb=on_error,
        allow_reconnect=False,
        connect_timeout=2,
    )
    return Session(client, errors)


@pytest.fixture
async def session(server: NatsServer) -> AsyncIterator[Callable[[str], Awaitable[Session]]]:
    opened: list[Session] = []

    async def open_as(user: str) -> Session:
        opened.append(await connect(server, user))
        return opened[-1]

    yield open_as
    for each in opened:
        await each.client.close()


@pytest.fixture
async def streams(server: NatsServer) -> None:
    """The streams and the bucket, made by the operators' user; one petition's state in it."""
    client = await nats.connect(server.admin_url)
    try:
        jetstream = client.jetstream()
        await ensure_signatures_stream(jetstream)
        await ensure_petition_events_stream(jetstream)
        bucket = await petitions_bucket(jetstream)
        await publish_state(bucket, PETITION, PetitionState("published", time.time() + 86400))
    finally:
        await client.close()


async def stream_messages(server: NatsServer, stream: str) -> int:
    client = await nats.connect(server.admin_url)
    try:
        return (await client.jetstream().stream_info(stream)).state.messages
    finally:
        await client.close()


# --- What each service needs, it may do ---------------------------------------------------


@pytest.mark.usefixtures("streams")
async def test_intake_publishes_a_signature_and_reads_petition_states(
    server: NatsServer, session: Callable[[str], Awaitable[Session]]
) -> None:
    intake = await session(INTAKE)
    jetstream = intake.client.jetstream()
    await ensure_signatures_stream(jetstream)
    before = await stream_messages(server, SIGNATURES)
    ack = await jetstream.publish(
        signature_subject(PETITION), b"a" * 64, headers={"Nats-Msg-Id": "a" * 64}
    )
    assert ack.stream == SIGNATURES
    assert await stream_messages(server, SIGNATURES) == before + 1
    watcher = await (await petitions_bucket(jetstream)).watchall()
    entry = await watcher.updates(timeout=2)  # type: ignore[no-untyped-call]
    assert entry is not None
    assert entry.key == PETITION
    await watcher.stop()  # type: ignore[no-untyped-call]
    assert intake.errors == []


@pytest.mark.usefixtures("streams")
async def test_catalog_writes_petition_states_and_publishes_lifecycle_events(
    server: NatsServer, session: Callable[[str], Awaitable[Session]]
) -> None:
    catalog = await session(CATALOG)
    jetstream = catalog.client.jetstream()
    bucket = await petitions_bucket(jetstream)
    await publish_state(bucket, PETITION, PetitionState("published", time.time() + 86400))
    before = await stream_messages(server, PETITION_EVENTS)
    ack = await jetstream.publish(petition_event_subject("petition-published"), b"{}")
    assert ack.stream == PETITION_EVENTS
    assert await stream_messages(server, PETITION_EVENTS) == before + 1
    assert catalog.errors == []


@pytest.mark.usefixtures("streams")
async def test_counter_takes_signatures_off_the_queue_and_publishes_thresholds(
    server: NatsServer, session: Callable[[str], Awaitable[Session]]
) -> None:
    intake, counter = await session(INTAKE), await session(COUNTER)
    await intake.client.jetstream().publish(
        signature_subject(PETITION), b"b" * 64, headers={"Nats-Msg-Id": "b" * 64}
    )
    jetstream = counter.client.jetstream()
    pulled = await jetstream.pull_subscribe(
        SIGNATURE_SUBJECTS, durable=COUNTER_CONSUMER, stream=SIGNATURES
    )
    messages = await pulled.fetch(100, timeout=2)
    assert messages
    for message in messages:
        await message.ack_sync()
    assert await stream_messages(server, SIGNATURES) == 0  # a work queue: acked is gone
    ack = await jetstream.publish(THRESHOLD_EVENTS, b"{}")
    assert ack.stream == PETITION_EVENTS
    assert counter.errors == []
    assert intake.errors == []


# --- What is not theirs, they may not ------------------------------------------------------


async def refused_request(other: Session, subject: str) -> None:
    """A JetStream API request the server refuses before JetStream sees it."""
    await other.client.publish(subject, b"{}", reply=other.client.new_inbox())
    assert f'publish to "{subject.lower()}"' in (await other.refusal()).lower()


@pytest.mark.usefixtures("streams")
@pytest.mark.parametrize("service", OTHERS_THAN[INTAKE])
async def test_only_intake_publishes_signatures(
    server: NatsServer, session: Callable[[str], Awaitable[Session]], service: str
) -> None:
    other = await session(service)
    before = await stream_messages(server, SIGNATURES)
    subject = signature_subject(PETITION)
    await other.client.publish(subject, b"c" * 64, headers={"Nats-Msg-Id": "c" * 64})
    assert f'publish to "{subject}"' in (await other.refusal()).lower()
    assert await stream_messages(server, SIGNATURES) == before


@pytest.mark.usefixtures("streams")
@pytest.mark.parametrize("service", OTHERS_THAN[COUNTER])
@pytest.mark.parametrize(
    "subject",
    [
        f"$JS.API.CONSUMER.MSG.NEXT.{SIGNATURES}.counter",  # pull the counter's signatures
        f"$JS.API.CONSUMER.DURABLE.CREATE.{SIGNATURES}.mine",  # a consumer of one's own
        f"$JS.API.CONSUMER.CREATE.{SIGNATURES}",
    ],
)
async def test_only_counter_consumes_signatures(
    session: Callable[[str], Awaitable[Session]], service: str, subject: str
) -> None:
    await refused_request(await session(service), subject)


@pytest.mark.usefixtures("streams")
@pytest.mark.parametrize("service", OTHERS_THAN[CATALOG])
async def test_only_the_catalog_writes_petition_states(
    server: NatsServer, session: Callable[[str], Awaitable[Session]], service: str
) -> None:
    other = await session(service)
    before = await stream_messages(server, "KV_PETITIONS")
    subject = f"$KV.PETITIONS.{PETITION}"
    await other.client.publish(subject, b'{"status": "closed"}')
    assert f'publish to "{subject.lower()}"' in (await other.refusal()).lower()
    assert await stream_messages(server, "KV_PETITIONS") == before


@pytest.mark.usefixtures("streams")
@pytest.mark.parametrize(
    ("service", "subject"),
    [
        (INTAKE, THRESHOLD_EVENTS),
        (CATALOG, THRESHOLD_EVENTS),  # the catalogue publishes the others, never this one
        (MODERATION, THRESHOLD_EVENTS),
        (INTAKE, "petitions.events.petition-published"),
        (COUNTER, "petitions.events.petition-published"),
        (MODERATION, "petitions.events.petition-published"),
    ],
)
async def test_petition_events_come_from_their_own_service(
    server: NatsServer, session: Callable[[str], Awaitable[Session]], service: str, subject: str
) -> None:
    other = await session(service)
    before = await stream_messages(server, PETITION_EVENTS)
    await other.client.publish(subject, b"{}")
    assert f'publish to "{subject}"' in (await other.refusal()).lower()
    assert await stream_messages(server, PETITION_EVENTS) == before


@pytest.mark.usefixtures("streams")
@pytest.mark.parametrize("service", list(SERVICE_PERMISSIONS))
@pytest.mark.parametrize(
    "subject",
    [
        f"$JS.API.STREAM.DELETE.{SIGNATURES}",
        f"$JS.API.STREAM.PURGE.{SIGNATURES}",
        f"$JS.API.STREAM.MSG.DELETE.{SIGNATURES}",
        f"$JS.API.CONSUMER.DELETE.{SIGNATURES}.counter",
        f"$JS.API.STREAM.DELETE.{PETITION_EVENTS}",
        "$JS.API.STREAM.DELETE.KV_PETITIONS",
    ],
)
async def test_no_service_deletes_or_purges(
    session: Callable[[str], Awaitable[Session]], service: str, subject: str
) -> None:
    await refused_request(await session(service), subject)


@pytest.mark.usefixtures("streams")
@pytest.mark.parametrize("service", list(SERVICE_PERMISSIONS))
async def test_a_service_reads_no_subject_but_its_own_inbox(
    session: Callable[[str], Awaitable[Session]], service: str
) -> None:
    other = await session(service)
    for subject in ("signatures.>", "_INBOX.>", f"{inbox_prefix(OTHERS_THAN[service][0])}.>"):
        other.errors.clear()
        await other.client.subscribe(subject)
        assert f'subscription to "{subject.lower()}"' in (await other.refusal()).lower()


@pytest.mark.parametrize(("user", "password"), [(INTAKE, "not-its-password"), (None, None)])
async def test_a_wrong_password_or_none_is_turned_away(
    server: NatsServer, user: str | None, password: str | None
) -> None:
    client = NatsClient()
    try:
        with pytest.raises(nats.errors.Error, match=r"[Aa]uthorization"):
            await client.connect(
                server.url, user=user, password=password, allow_reconnect=False,
                connect_timeout=2,
            )  # fmt: skip
    finally:
        await client.close()  # nats-py leaves the refused connection's socket open otherwise


def test_the_server_reads_the_passwords_from_its_environment(server: NatsServer) -> None:
    """None is written in its configuration file: it names variables only."""
    assert server.passwords is not None
    configuration = Path(server.config_path).read_text()
    for user, password in server.passwords.items():
        assert password not in configuration, user
    assert f'user: "{ADMIN}"' in configuration
