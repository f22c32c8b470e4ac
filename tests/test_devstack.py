"""The local stack's own pieces: the ports it picks, the proxy it writes, the tests' waits."""

import asyncio
import json
import socket
from dataclasses import asdict
from pathlib import Path

import pytest
import redis

from paraphe_devstack.binaries import Binaries
from paraphe_devstack.checks import mid_run
from paraphe_devstack.keys import DevSecrets
from paraphe_devstack.proxy import nginx_config
from paraphe_devstack.servers import LOCALHOST, RedisServer, ephemeral_ports, free_port


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


def test_secrets_of_an_older_state_directory_gain_what_is_new_and_keep_the_rest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secrets.json"
    first = DevSecrets.load_or_create(path)
    older = asdict(first)
    del older["redis_password"]  # as written before Redis asked for a password
    del older["nats_passwords"]["counter"]  # and before the counter had a NATS user
    path.write_text(json.dumps(older))
    again = DevSecrets.load_or_create(path)
    assert again.redis_password
    assert again.nats_passwords["counter"]
    assert again.nats_passwords["signature-intake"] == first.nats_passwords["signature-intake"]
    assert (again.signing_key, again.signer_key, again.pepper) == (
        first.signing_key,
        first.signer_key,
        first.pepper,
    )
    assert DevSecrets.load_or_create(path) == again  # written back: made once
    assert path.stat().st_mode & 0o077 == 0  # its owner's only


def test_a_redis_with_a_password_turns_away_a_client_without_it(
    binaries: Binaries, tmp_path: Path
) -> None:
    server = RedisServer(binaries.redis_server, tmp_path / "redis", free_port(), password="s3cret")
    server.start()
    try:
        with server.client() as client:
            assert client.ping()
        with (
            redis.Redis(LOCALHOST, server.port, socket_timeout=1) as anonymous,
            pytest.raises(redis.AuthenticationError),
        ):
            anonymous.ping()
        assert "s3cret" not in server.url  # what the services get: the password apart
    finally:
        server.stop()
