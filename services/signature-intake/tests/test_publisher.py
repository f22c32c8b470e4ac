"""The acked publisher against a real NATS server: what JetStream stored, what it already had,
and every way an ack can fail to come."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from paraphe_common.streams import SIGNATURES, ensure_signatures_stream, signature_subject
from paraphe_devstack.servers import NatsServer
from paraphe_signature_intake.publisher import AckedPublisher, PublishFailed

PETITION = "11111111-1111-4111-8111-111111111111"


@pytest.fixture
async def connection(nats_server: NatsServer) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_server.url)
    await ensure_signatures_stream(client.jetstream(), 1)
    yield client
    await client.close()


@pytest.fixture
async def publisher(connection: NatsClient) -> AsyncIterator[AckedPublisher]:
    publisher = AckedPublisher(connection, timeout=0.5)
    await publisher.start()
    yield publisher
    await publisher.close()


async def test_a_message_is_stored_once_and_its_repeat_is_a_duplicate(
    publisher: AckedPublisher, connection: NatsClient
) -> None:
    subject = signature_subject(PETITION)
    stream = connection.jetstream()
    before = (await stream.stream_info(SIGNATURES)).state.messages
    assert await publisher.publish(subject, b"key-1", message_id="key-1") is False
    assert await publisher.publish(subject, b"key-1", message_id="key-1") is True
    assert await publisher.publish(subject, b"key-2", message_id="key-2") is False
    assert (await stream.stream_info(SIGNATURES)).state.messages == before + 2


async def test_many_publishes_in_flight_each_get_their_own_answer(
    publisher: AckedPublisher,
) -> None:
    subject = signature_subject(PETITION)
    keys = [f"many-{n % 500}" for n in range(1000)]  # every key twice, in flight together
    answers = await asyncio.gather(*(publisher.publish(subject, k.encode(), k) for k in keys))
    assert answers.count(False) == 500
    assert answers.count(True) == 500


async def test_a_subject_no_stream_listens_on_fails_at_once(publisher: AckedPublisher) -> None:
    # The server's no-responders status, not the sweep's "no ack in time".
    with pytest.raises(PublishFailed, match="status 503"):
        await publisher.publish("nobody.listens.here", b"x", message_id="x")


async def test_an_ack_that_never_comes_fails_after_the_timeout(
    publisher: AckedPublisher, connection: NatsClient
) -> None:
    silent = await connection.subscribe("silent.subject")  # takes it, never answers
    started = time.monotonic()
    with pytest.raises(PublishFailed, match="no ack in time"):
        await publisher.publish("silent.subject", b"x", message_id="x")
    assert time.monotonic() - started >= 0.5  # not before its timeout
    await silent.unsubscribe()


async def test_an_error_answer_fails_the_publish(
    publisher: AckedPublisher, connection: NatsClient
) -> None:
    async def refuse(msg: Msg) -> None:
        await msg.respond(b'{"error":{"code":503,"description":"no quorum"}}')

    responder = await connection.subscribe("refusing.subject", cb=refuse)
    with pytest.raises(PublishFailed, match="no quorum"):
        await publisher.publish("refusing.subject", b"x", message_id="x")
    await responder.unsubscribe()


async def test_closing_fails_what_still_waits(
    publisher: AckedPublisher, connection: NatsClient
) -> None:
    silent = await connection.subscribe("silent.subject")
    waiting = asyncio.create_task(publisher.publish("silent.subject", b"x", message_id="y"))
    await asyncio.sleep(0.05)
    await publisher.close()
    with pytest.raises(PublishFailed, match="closing"):
        await waiting
    await silent.unsubscribe()
