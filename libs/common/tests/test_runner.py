"""Starting and stopping a service process: refusals in one line, graceful SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from paraphe_devstack.binaries import Binaries
from paraphe_devstack.keys import SignerKey, SigningKey
from paraphe_devstack.servers import (
    NatsServer,
    PostgresServer,
    RedisServer,
    free_port,
    port_answers,
    remove_tree,
)
from paraphe_devstack.tls import local_certificates

SLOW_SERVICE = Path(__file__).with_name("slow_service.py")


def service_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAPHE_")}
    env.update({f"PARAPHE_{k.upper()}": v for k, v in settings.items()})
    return env


@contextmanager
def service_process(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while not port_answers(port):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the service did not start listening"
        time.sleep(0.05)


def get_json(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.status, json.load(answer)


def test_sigterm_lets_requests_in_flight_finish_then_exits_zero() -> None:
    port = free_port()
    env = service_env(port=str(port), host="127.0.0.1")
    with service_process([sys.executable, str(SLOW_SERVICE)], env) as process:
        wait_for_port(port, process)
        with ThreadPoolExecutor(4) as pool:
            in_flight = [
                pool.submit(get_json, f"http://127.0.0.1:{port}/slow?seconds=1.5") for _ in range(4)
            ]
            time.sleep(0.5)  # the four requests are now sleeping inside the handler
            process.send_signal(signal.SIGTERM)
            answers = [future.result() for future in in_flight]
        assert answers == [(200, {"finished": True})] * 4
        assert process.wait(timeout=30) == 0
        assert not port_answers(port)
        stdout, _ = process.communicate()
    logs = [json.loads(line) for line in stdout.decode().splitlines() if line]
    assert logs[-1]["message"] == "stopped"
    assert all(entry["service"] == "slow-example" for entry in logs)


def test_a_fast_route_answers_with_the_request_id_headers_metrics_and_access_log() -> None:
    port = free_port()
    env = service_env(port=str(port), host="127.0.0.1", access_log="true")
    with service_process([sys.executable, str(SLOW_SERVICE)], env) as process:
        wait_for_port(port, process)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/fast", headers={"X-Request-Id": "fast-1"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.load(answer) == {"fast": True}
            assert answer.headers["X-Request-Id"] == "fast-1"
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
        # Declined, or failed (a bug): the ordinary way, and its 404 problem.
        for path in ("/fast/not", "/fast/broken"):
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30)
            missing.value.close()
            assert missing.value.code == 404
            assert missing.value.headers["Content-Type"].startswith("application/problem+json")
        # Answered after I/O: the answer, a problem it raised, a bug (a 500 problem, logged).
        later = f"http://127.0.0.1:{port}/fast/later"
        with urllib.request.urlopen(f"{later}/answered", timeout=30) as answer:
            assert json.load(answer) == {"later": True}
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
        for outcome, status in (("refused", 429), ("crash", 500)):
            request = urllib.request.Request(
                f"{later}/{outcome}", headers={"X-Request-Id": f"later-{outcome}"}
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            refused.value.close()
            assert refused.value.code == status
            assert refused.value.headers["Content-Type"].startswith("application/problem+json")
            assert refused.value.headers["X-Request-Id"] == f"later-{outcome}"
            assert refused.value.headers["X-Content-Type-Options"] == "nosniff"
            assert refused.value.headers.get("Retry-After") == ("7" if status == 429 else None)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
            metrics = answer.read().decode()
        assert 'http_server_requests_total{method="GET",route="/fast",status="200"} 2.0' in metrics
        assert 'http_server_requests_total{method="GET",route="/fast",status="429"} 1.0' in metrics
        assert 'http_server_requests_total{method="GET",route="/fast",status="500"} 1.0' in metrics
        # In flight: the metrics request itself, and none of the answers that came back.
        assert "http_server_requests_in_flight 1.0" in metrics
        # A request aiohttp cannot parse: its own 400, before any routing, logged all the same.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            raw.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
            assert raw.recv(100).split(b" ")[1] == b"400"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        stdout, stderr = process.communicate()
    assert stderr == b""
    logs = [json.loads(line) for line in stdout.decode().splitlines() if line]
    access = [entry for entry in logs if entry["message"] == "request"]
    fast = next(entry for entry in access if entry["path"] == "/fast")
    assert (fast["route"], fast["status"], fast["request_id"]) == ("/fast", 200, "fast-1")
    unparsed = [entry for entry in access if entry["status"] == 400]
    assert [entry["route"] for entry in unparsed] == [None]
    not_found = next(entry for entry in access if entry["path"] == "/fast/not")
    assert not_found["route"] == "unmatched"
    assert not [entry for entry in logs if entry["message"] == "Unhandled exception"]
    failed = [entry for entry in logs if entry["message"].startswith("the fast route /fast failed")]
    assert len(failed) == 1
    assert "RuntimeError: a bug in the fast route" in failed[0]["exc_info"]
    waited = {e["message"]: e["request_id"] for e in logs if e["message"].startswith("answering")}
    assert waited["answering later: refused"] == "later-refused"
    crashed = next(entry for entry in logs if entry["message"].startswith("unhandled error"))
    assert crashed["request_id"] == "later-crash"
    assert "RuntimeError: a bug while answering later" in crashed["exc_info"]


def test_a_port_already_taken_ends_with_one_line() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = service_env(port=str(port), host="127.0.0.1")
        done = subprocess.run(
            [sys.executable, str(SLOW_SERVICE)], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert_one_clear_line(done, f"cannot listen on 127.0.0.1:{port}")


def run_service(module: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=service_env(**settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


def intake_keys(signing_key: SigningKey, signer_key: SignerKey) -> dict[str, str]:
    """The keys signature-intake needs to start: verifying access tokens, checking signer
    tokens."""
    return {
        "token_verification_keys": signing_key.public_jwks,
        "signer_token_keys": signer_key.secret_jwks,
        "signer_token_key_id": signer_key.kid,
    }


def assert_one_clear_line(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for text in expected:
        assert text in lines[0]


def test_missing_required_setting_ends_with_one_line_naming_it() -> None:
    done = run_service("paraphe_auth_gateway")
    assert done.returncode == 2
    assert_one_clear_line(
        done, "paraphe-auth-gateway: invalid configuration", "PARAPHE_REDIS_URL is required"
    )


def test_invalid_setting_ends_with_one_line_naming_it() -> None:
    done = run_service("paraphe_auth_gateway", redis_url="redis://127.0.0.1:1/0", port="http")
    assert done.returncode == 2
    assert_one_clear_line(done, "PARAPHE_PORT is invalid")


def test_unreachable_database_at_start_ends_with_one_line(signing_key: SigningKey) -> None:
    port = free_port()
    done = run_service(
        "paraphe_moderation",
        database_url=f"postgresql://paraphe:s3cret@127.0.0.1:{port}/paraphe",
        nats_url="nats://127.0.0.1:1",
        database_connect_timeout="2",
        token_verification_keys=signing_key.public_jwks,
        catalog_url="http://127.0.0.1:1",
        public_url="http://localhost:8080",
    )
    assert done.returncode == 1
    assert_one_clear_line(
        done, "paraphe-moderation: cannot start:", f"PostgreSQL at 127.0.0.1:{port} is unreachable"
    )
    assert "s3cret" not in done.stderr + done.stdout


def test_unreachable_nats_at_start_ends_with_one_line(
    redis_server: RedisServer, signing_key: SigningKey, signer_key: SignerKey
) -> None:
    port = free_port()
    done = run_service(
        "paraphe_signature_intake",
        redis_url=redis_server.url,
        nats_url=f"nats://127.0.0.1:{port}",
        nats_connect_timeout="1",
        **intake_keys(signing_key, signer_key),
    )
    assert done.returncode == 1
    assert_one_clear_line(done, f"NATS at 127.0.0.1:{port} is unreachable")


def test_a_nats_server_whose_certificate_is_not_trusted_ends_with_one_line(
    binaries: Binaries,
    redis_server: RedisServer,
    signing_key: SigningKey,
    signer_key: SignerKey,
    tmp_path: Path,
) -> None:
    """A server presenting a certificate of another authority than PARAPHE_NATS_TLS_CA's
    (a server impersonated, or the wrong authority configured): no connection, one line."""
    server_tls = local_certificates(tmp_path / "server-tls")
    other_authority = local_certificates(tmp_path / "other-tls")
    server = NatsServer(
        binaries.nats_server, tmp_path / "nats" / "js", free_port(), free_port(), tls=server_tls
    )
    server.start()
    try:
        done = run_service(
            "paraphe_signature_intake",
            redis_url=redis_server.url,
            nats_url=server.url,
            nats_tls_ca=str(other_authority.ca),
            nats_connect_timeout="1",
            **intake_keys(signing_key, signer_key),
        )
    finally:
        server.stop()
    assert done.returncode == 1
    assert_one_clear_line(
        done, f"NATS at 127.0.0.1:{server.port} is unreachable", "CERTIFICATE_VERIFY_FAILED"
    )


def test_a_nats_authority_that_is_no_certificate_ends_with_one_line(
    redis_server: RedisServer, signing_key: SigningKey, signer_key: SignerKey, tmp_path: Path
) -> None:
    not_a_certificate = tmp_path / "ca.pem"
    not_a_certificate.write_text("-----BEGIN NOTHING-----\n")
    done = run_service(
        "paraphe_signature_intake",
        redis_url=redis_server.url,
        nats_url="nats://127.0.0.1:1",
        nats_tls_ca=str(not_a_certificate),
        **intake_keys(signing_key, signer_key),
    )
    assert done.returncode == 2
    assert_one_clear_line(done, "PARAPHE_NATS_TLS_CA is invalid", "holds no PEM certificate")


def test_a_redis_server_whose_certificate_is_not_trusted_ends_with_one_line(
    binaries: Binaries, signing_key: SigningKey, signer_key: SignerKey, tmp_path: Path
) -> None:
    """A Redis presenting a certificate of another authority than PARAPHE_REDIS_TLS_CA's: no
    connection, one line (the URL's redis:// does not turn TLS off: the authority decides)."""
    server = RedisServer(
        binaries.redis_server, tmp_path / "redis", free_port(),
        tls=local_certificates(tmp_path / "server-tls"),
    )  # fmt: skip
    other_authority = local_certificates(tmp_path / "other-tls")
    server.start()
    try:
        done = run_service(
            "paraphe_signature_intake",
            redis_url=f"redis://127.0.0.1:{server.port}/0",
            redis_tls_ca=str(other_authority.ca),
            nats_url="nats://127.0.0.1:1",  # never reached: Redis is connected to first
            **intake_keys(signing_key, signer_key),
        )
    finally:
        server.stop()
    assert done.returncode == 1
    assert_one_clear_line(
        done, f"Redis at 127.0.0.1:{server.port} is unreachable", "CERTIFICATE_VERIFY_FAILED"
    )


def test_a_redis_authority_that_is_no_certificate_ends_with_one_line(tmp_path: Path) -> None:
    not_a_certificate = tmp_path / "ca.pem"
    not_a_certificate.write_text("-----BEGIN NOTHING-----\n")
    done = run_service(
        "paraphe_auth_gateway",
        redis_url="redis://127.0.0.1:1/0",
        redis_tls_ca=str(not_a_certificate),
    )
    assert done.returncode == 2
    assert_one_clear_line(done, "PARAPHE_REDIS_TLS_CA is invalid", "holds no PEM certificate")


@pytest.fixture
def tls_postgres(binaries: Binaries, tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL of its own offering TLS, as CloudNativePG's do (not under tmp_path: the
    server runs as its own account, which pytest's private directories shut out)."""
    tls = local_certificates(tmp_path / "postgresql-tls")
    base = Path(tempfile.mkdtemp(prefix="paraphe-test-pg-tls-"))
    base.chmod(0o755)
    server = PostgresServer(
        binaries.postgres_bin, base / "data", free_port(), durable=False, tls=tls
    )
    try:
        server.start()
        server.psql("CREATE DATABASE paraphe")
        yield server
    finally:
        server.stop()
        remove_tree(base)


def verifying(authority: Path) -> dict[str, str]:
    """What production sets for libpq (migrations) and asyncpg (services) alike: TLS, the
    server's certificate verified with this authority (the database cluster's own, which signs
    nothing else: deploy/k8s/components/database-tls)."""
    return {"PGSSLMODE": "verify-ca", "PGSSLROOTCERT": str(authority)}


def test_a_service_verifies_postgresql_and_talks_to_it_in_tls_only(
    tls_postgres: PostgresServer,
    redis_server: RedisServer,
    nats_server: NatsServer,
    signing_key: SigningKey,
) -> None:
    assert tls_postgres.tls is not None
    port = free_port()
    env = service_env(
        port=str(port),
        host="127.0.0.1",
        database_url=tls_postgres.url("paraphe"),
        redis_url=redis_server.url,
        nats_url=nats_server.url,
        token_verification_keys=signing_key.public_jwks,
    ) | verifying(tls_postgres.tls.ca)
    migrate = [sys.executable, "-m", "paraphe_counter", "migrate"]
    migrated = subprocess.run(migrate, env=env, capture_output=True, text=True, timeout=60)
    assert migrated.returncode == 0, migrated.stderr
    with service_process([sys.executable, "-m", "paraphe_counter"], env) as process:
        wait_for_port(port, process)
        assert get_json(f"http://127.0.0.1:{port}/readyz")[0] == 200
        in_clear, in_tls = tls_postgres.psql(
            "SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FILTER (WHERE s.ssl)"
            " FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
            " WHERE a.datname = 'paraphe'"
        ).split("|")
        assert (int(in_clear), int(in_tls) > 0) == (0, True)


def test_a_postgresql_whose_certificate_is_not_trusted_ends_with_one_line(
    tls_postgres: PostgresServer,
    redis_server: RedisServer,
    nats_server: NatsServer,
    signing_key: SigningKey,
    tmp_path: Path,
) -> None:
    """A server presenting a certificate of another authority (an impostor, or the wrong
    authority configured): neither the migrations nor the service go on; one line each."""
    other_authority = local_certificates(tmp_path / "other-tls")
    env = service_env(
        database_url=tls_postgres.url("paraphe"),
        redis_url=redis_server.url,
        nats_url=nats_server.url,
        token_verification_keys=signing_key.public_jwks,
    ) | verifying(other_authority.ca)
    for argv in (["migrate"], []):
        done = subprocess.run(
            [sys.executable, "-m", "paraphe_counter", *argv],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1
        # (libpq says "SSL error", asyncpg "[SSL: CERTIFICATE_VERIFY_FAILED]")
        assert_one_clear_line(done, f"PostgreSQL at 127.0.0.1:{tls_postgres.port}", "SSL")


def test_migrating_an_unreachable_database_ends_with_one_line() -> None:
    port = free_port()
    done = run_service(
        "paraphe_counter", "migrate", database_url=f"postgresql://u:pw@127.0.0.1:{port}/db"
    )
    assert done.returncode == 1
    assert_one_clear_line(done, "cannot migrate:", f"PostgreSQL at 127.0.0.1:{port}")


@pytest.mark.parametrize("module", ["paraphe_signature_intake", "paraphe_moderation"])
def test_a_real_service_stops_cleanly_on_sigterm(
    module: str,
    redis_server: RedisServer,
    nats_server: NatsServer,
    database_url: str,
    signing_key: SigningKey,
    signer_key: SignerKey,
) -> None:
    port = free_port()
    settings = {
        "port": str(port),
        "host": "127.0.0.1",
        "redis_url": redis_server.url,
        "nats_url": nats_server.url,
        "database_url": database_url,
        "token_verification_keys": signing_key.public_jwks,
        "signer_token_keys": signer_key.secret_jwks,
        "signer_token_key_id": signer_key.kid,
        "catalog_url": "http://127.0.0.1:1",
        "public_url": "http://localhost:8080",
    }
    if module == "paraphe_moderation":  # it refuses to start on an unmigrated schema
        migrate = [sys.executable, "-m", module, "migrate"]
        subprocess.run(migrate, env=service_env(**settings), check=True, capture_output=True)
    with service_process([sys.executable, "-m", module], service_env(**settings)) as process:
        wait_for_port(port, process)
        assert get_json(f"http://127.0.0.1:{port}/readyz")[0] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        _, stderr = process.communicate()
    assert stderr == b""


def test_an_unmigrated_database_ends_with_one_line_saying_so(
    database_url: str,
    nats_server: NatsServer,
    redis_server: RedisServer,
    signing_key: SigningKey,
) -> None:
    done = run_service(
        "paraphe_petition_catalog",
        database_url=database_url,
        nats_url=nats_server.url,
        redis_url=redis_server.url,
        token_verification_keys=signing_key.public_jwks,
        public_url="http://localhost:8080",
    )
    assert done.returncode == 1
    assert_one_clear_line(done, "not migrated", "paraphe-petition-catalog migrate")
