"""Creating the shared streams at start waits out JetStream's short unavailabilities."""

from __future__ import annotations

import nats.errors
import pytest
from nats.js.errors import BadRequestError, ServiceUnavailableError

from paraphe_common import streams


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
