"""The shared streams: created at start, waiting out JetStream's short unavailabilities, and
never dropping a message they acknowledged."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import nats.errors
import pytest
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy
from nats.js.errors import APIError, BadRequestError, ServiceUnavailableError

from paraphe_common import streams
from paraphe_devstack.servers import NatsServer

Ensure = Callable[[JetStreamContext], Awaitable[None]]
# Each stream holding what must not be lost, with its maker and a subject of it.
STREAMS_NOT_TO_LOSE = [
    pytest.param(
        streams.ensure_signatures_stream,
        streams.SIGNATURES,
        streams.signature_subject("p"),
        id="signatures",
    ),
    pytest.param(
        streams.ensure_petition_events_stream,
        streams.PETITION_EVENTS,
        streams.petition_event_subject(streams.THRESHOLD_REACHED),
        id="petition-events",
    ),
]


async def test_a_start_asks_again_while_jetstream_settles() -> None:
    answers: list[Exception | str] = [
        nats.errors.TimeoutError(),
        ServiceUnavailableError(),
        "created",
    ]

    async def create() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await streams._once_jetstream_answers(create, "stream X") == "created"
    assert answers == []


async def test_a_start_gives_up_once_jetstream_stays_silent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streams, "_SETTLING_SECONDS", 0.0)
    calls = 0

    async def silent() -> None:
        nonlocal calls
        calls += 1
        raise nats.errors.TimeoutError

    with pytest.raises(nats.errors.TimeoutError):
        await streams._once_jetstream_answers(silent, "stream X")
    assert calls == 1


async def test_a_refusal_is_not_waited_out() -> None:
    async def refused() -> None:
        raise BadRequestError

    with pytest.raises(BadRequestError):
        await streams._once_jetstream_answers(refused, "stream X")


@pytest.fixture
async def jetstream(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    connection = await nats.connect(nats_server.url)
    yield connection.jetstream()
    await connection.close()


@pytest.mark.parametrize(("ensure", "name", "subject"), STREAMS_NOT_TO_LOSE)
async def test_a_stream_that_must_not_lose_messages_refuses_new_ones_when_full(
    jetstream: JetStreamContext, ensure: Ensure, name: str, subject: str
) -> None:
    await ensure(jetstream)
    config = (await jetstream.stream_info(name)).config
    assert config.discard == DiscardPolicy.NEW

    # Should anyone give it a limit, a full stream refuses the next message (intake answers
    # 503, a publisher of events tries again later) rather than drop one it acknowledged.
    await jetstream.update_stream(dataclasses.replace(config, max_msgs=2))
    await jetstream.publish(subject, b"first")
    await jetstream.publish(subject, b"second")
    with pytest.raises(APIError):
        await jetstream.publish(subject, b"third")
    state = (await jetstream.stream_info(name)).state
    assert (state.messages, state.first_seq) == (2, 1)
    assert (await jetstream.get_msg(name, 1)).data == b"first"


@pytest.mark.parametrize(("ensure", "name", "subject"), STREAMS_NOT_TO_LOSE)
async def test_a_stream_made_to_discard_old_messages_is_converged_at_start(
    jetstream: JetStreamContext, ensure: Ensure, name: str, subject: str
) -> None:
    # As an earlier version made it (or an operator by hand), with a message in it.
    await ensure(jetstream)
    config = (await jetstream.stream_info(name)).config
    await jetstream.update_stream(dataclasses.replace(config, discard=DiscardPolicy.OLD))
    assert (await jetstream.stream_info(name)).config.discard == DiscardPolicy.OLD
    await jetstream.publish(subject, b"kept")

    await ensure(jetstream)

    info = await jetstream.stream_info(name)
    assert info.config.discard == DiscardPolicy.NEW
    assert info.state.messages == 1
