"""A service's NATS connection in TLS: kept through a server's restart, without false alarms."""

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from paraphe_common.app import create_service_app
from paraphe_common.logs import configure_logging
from paraphe_common.resources import NATS, nats_connection
from paraphe_common.settings import NatsSettings, ServiceSettings
from paraphe_devstack.binaries import Binaries
from paraphe_devstack.servers import NatsServer, free_port
from paraphe_devstack.tls import local_certificates


class Settings(ServiceSettings, NatsSettings):
    pass


@pytest.fixture
def pytest_logging_after() -> Iterator[None]:
    """pytest's logging handlers back after a test that set the services' own."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_a_nats_restart_over_tls_is_followed_without_a_false_alarm(
    aiohttp_client: AiohttpClient,
    binaries: Binaries,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    pytest_logging_after: None,
) -> None:
    configure_logging("example")  # JSON lines on the stdout capfd reads, as a service logs
    tls = local_certificates(tmp_path / "tls")
    server = NatsServer(
        binaries.nats_server, tmp_path / "nats" / "js", free_port(), free_port(), tls=tls
    )
    server.start()
    try:
        settings = Settings(nats_url=server.url, nats_tls_ca=tls.ca)
        app = create_service_app("example", settings, [nats_connection(settings, name="example")])
        client = await aiohttp_client(app)
        assert (await client.get("/readyz")).status == 200
        await asyncio.to_thread(server.stop)  # the server closes the TLS connection
        await asyncio.to_thread(server.start)
        connection = app[NATS]
        deadline = asyncio.get_running_loop().time() + 10
        while not (connection.stats["reconnects"] and connection.is_connected):
            assert asyncio.get_running_loop().time() < deadline, "NATS not reconnected"
            await asyncio.sleep(0.05)
        assert (await client.get("/readyz")).status == 200
    finally:
        server.stop()
    logged = capfd.readouterr().out
    assert "NATS connection restored" in logged  # over TLS again
    assert "eof_received" not in logged
