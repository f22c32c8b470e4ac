"""pytest fixtures: real PostgreSQL, Redis and NATS servers on free ports, cleaned up after.

PostgreSQL starts once per test session and each test gets a database of its own; Redis and
NATS are cheap to start, so each test that asks gets fresh ones and may kill them.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from paraphe_devstack.binaries import Binaries, ensure_binaries
from paraphe_devstack.keys import SignerKey, SigningKey, new_signer_key, new_signing_key
from paraphe_devstack.servers import (
    NatsServer,
    PostgresServer,
    RedisServer,
    free_port,
    remove_tree,
)


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    return ensure_binaries(with_proxy=True)


@pytest.fixture(scope="session")
def postgres_server(binaries: Binaries) -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: its directories are private to root, and PostgreSQL runs
    # as its own account.
    base = Path(tempfile.mkdtemp(prefix="paraphe-test-pg-"))
    base.chmod(0o755)
    server = PostgresServer(binaries.postgres_bin, base / "data", free_port(), durable=False)
    server.start()
    yield server
    server.stop()
    remove_tree(base)


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres_server.psql(f'CREATE DATABASE "{name}"')
    yield postgres_server.url(name)
    postgres_server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_server(binaries: Binaries, tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(binaries.redis_server, tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_server(binaries: Binaries, tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(binaries.nats_server, tmp_path / "nats" / "js", free_port(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    """The platform-token key of a test session (auth-gateway signs, the others verify)."""
    return new_signing_key("test-key")


@pytest.fixture(scope="session")
def signer_key() -> SignerKey:
    """The secret of signer tokens in a test session (auth-gateway MACs, intake verifies)."""
    return new_signer_key("test-signer")
