"""Redis in TLS: with PARAPHE_REDIS_TLS_CA set, every connection is TLS, the server verified."""

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pytest_aiohttp import AiohttpClient
from redis.asyncio.connection import SSLConnection

from paraphe_common.app import create_service_app
from paraphe_common.resources import REDIS
from paraphe_common.resources import redis as redis_context
from paraphe_common.settings import RedisSettings, ServiceSettings
from paraphe_devstack.binaries import Binaries
from paraphe_devstack.servers import LOCALHOST, RedisServer, free_port
from paraphe_devstack.tls import local_certificates

PASSWORD = "tls-test-password"


class Settings(ServiceSettings, RedisSettings):
    pass


@pytest.fixture
def tls_redis(binaries: Binaries, tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis that speaks TLS alone and asks for a password, as production's."""
    server = RedisServer(
        binaries.redis_server, tmp_path / "redis", free_port(),
        password=PASSWORD, tls=local_certificates(tmp_path / "tls"),
    )  # fmt: skip
    server.start()
    yield server
    server.stop()


def test_the_server_turns_away_a_client_in_clear(tls_redis: RedisServer) -> None:
    """What makes the test below mean something: no connection in clear reaches this server."""
    with (
        redis.Redis(LOCALHOST, tls_redis.port, password=PASSWORD, socket_timeout=2) as in_clear,
        pytest.raises(redis.ConnectionError),
    ):
        in_clear.ping()


# redis:// too: the authority's setting turns TLS on, not the scheme (a URL copied without
# its "s" must not send the password in clear).
@pytest.mark.parametrize("scheme", ["rediss", "redis"])
async def test_a_service_given_the_authority_speaks_tls_to_redis(
    aiohttp_client: AiohttpClient, tls_redis: RedisServer, scheme: str
) -> None:
    assert tls_redis.tls is not None
    settings = Settings(
        redis_url=f"{scheme}://{LOCALHOST}:{tls_redis.port}/0",
        redis_password=PASSWORD,
        redis_tls_ca=tls_redis.tls.ca,
    )
    app = create_service_app("example", settings, [redis_context(settings)])
    client = await aiohttp_client(app)
    assert (await client.get("/readyz")).status == 200
    service_redis = app[REDIS]
    assert await service_redis.set("tls-probe", "1")
    assert await service_redis.get("tls-probe") == b"1"
    # The pool's connections verify the server's certificate and its name.
    connection = await service_redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        assert isinstance(connection, SSLConnection)
        context = connection.ssl_context.get()
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname is True
    finally:
        await service_redis.connection_pool.release(connection)
