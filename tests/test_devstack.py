"""The local stack's own pieces: the ports it picks, the proxy it writes, the tests' waits."""

import asyncio
import socket
from pathlib import Path

import pytest

from paraphe_devstack.checks import mid_run
from paraphe_devstack.proxy import nginx_config
from paraphe_devstack.servers import LOCALHOST, ephemeral_ports, free_port


def test_free_ports_are_bindable_distinct_and_outside_the_outgoing_range() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    # The kernel gives outgoing connections ports from this range: a port from it could be
    # taken by a client between our choice and the server's bind.
    assert not set(ports) & set(ephemeral_ports())
    for port in ports[:20]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOCALHOST, port))


def test_the_proxy_sends_a_service_round_its_replicas(tmp_path: Path) -> None:
    config = nginx_config(tmp_path, 8080, {"signature-intake": [9001, 9002], "counter": [9003]})
    assert (
        "upstream signature_intake { server 127.0.0.1:9001; server 127.0.0.1:9002; keepalive 64; }"
        in config
    )
    assert "upstream counter { server 127.0.0.1:9003; keepalive 64; }" in config


async def test_chaos_waits_for_the_campaign_to_be_under_way() -> None:
    answers: list[int] = []

    async def answering() -> None:
        for _ in range(100):
            answers.append(202)
            await asyncio.sleep(0.001)

    campaign = asyncio.create_task(answering())
    await mid_run(answers, 20, 100)
    assert 20 <= len(answers) < 100
    await campaign


async def test_chaos_after_the_campaign_ended_is_a_failure_not_a_pass() -> None:
    with pytest.raises(AssertionError, match="ended"):
        await mid_run([202] * 100, 20, 100)
    with pytest.raises(TimeoutError):
        await mid_run([202] * 5, 20, 100, within=0.05)
