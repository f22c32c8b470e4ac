"""The whole local stack, as ``make run`` starts it, answers through the proxy."""

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from paraphe_devstack.binaries import Binaries
from paraphe_devstack.cli import platform_settings
from paraphe_devstack.servers import LOCALHOST
from paraphe_devstack.stack import SERVICES, Stack, StackPorts, temporary_stack

pytestmark = pytest.mark.stack


def fetch(stack: Stack, path: str, accept: str = "application/json") -> tuple[int, str, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.ports.proxy}{path}", headers={"Accept": accept}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.mark.parametrize("service", [spec.name for spec in SERVICES])
def test_each_service_answers_its_probes_through_the_proxy(stack: Stack, service: str) -> None:
    assert fetch(stack, f"/_/{service}/healthz")[0] == 200
    status, _, body = fetch(stack, f"/_/{service}/readyz")
    assert status == 200, body
    needs = next(spec.needs for spec in SERVICES if spec.name == service)
    assert set(needs) <= set(json.loads(body)["dependencies"])
    status, content_type, metrics = fetch(stack, f"/_/{service}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert "http_server_requests_total" in metrics


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/internal/authors/a"])
def test_the_services_own_endpoints_are_not_served_on_the_sites_origin(
    stack: Stack, path: str
) -> None:
    """The catalogue takes every path no other route claims: not these (nor does the Ingress)."""
    status, _, body = fetch(stack, path)
    assert status == 404
    assert "http_server_requests_total" not in body


def test_make_run_gives_every_service_the_platform_settings_of_its_environment(
    binaries: Binaries, tmp_path: Path
) -> None:
    """PARAPHE_THRESHOLDS=10,20 make run: the platform's own settings reach the services; the
    stack's (where the servers are, the secrets) cannot be changed that way."""
    settings = platform_settings(
        {
            "PARAPHE_THRESHOLDS": "10,20",
            "PARAPHE_REDIS_URL": "rediss://elsewhere:6379/0",
            "PARAPHE_DEV_PROXY_PORT": "9080",
            "HOME": "/root",
        }
    )
    assert settings == {
        "PARAPHE_THRESHOLDS": "10,20",
        "PARAPHE_REDIS_URL": "rediss://elsewhere:6379/0",
    }
    stack = Stack(tmp_path, StackPorts(), binaries, settings=settings)
    for spec in SERVICES:
        env = stack.service_env(spec)
        assert env["PARAPHE_THRESHOLDS"] == "10,20"
        assert env["PARAPHE_REDIS_URL"] == stack.redis.url
        assert "PARAPHE_DEV_PROXY_PORT" not in env


def test_nats_asks_every_client_for_tls_and_a_password(stack: Stack) -> None:
    """As in production: a client that does not speak TLS is turned away by the server itself,
    and every service that speaks NATS verifies it with the stack's authority."""
    greeting = stack.nats.greeting()
    assert greeting["tls_required"] is True
    assert greeting["auth_required"] is True
    assert stack.nats.tls is not None
    for spec in SERVICES:
        env = stack.service_env(spec)
        if "nats" in spec.needs:
            assert env["PARAPHE_NATS_TLS_CA"] == str(stack.nats.tls.ca)
        else:
            assert "PARAPHE_NATS_TLS_CA" not in env


def test_redis_asks_every_client_for_tls_and_a_password(stack: Stack) -> None:
    """As in production: a client in clear is turned away, a client in TLS without the password
    too, and every service that uses Redis has both the password and the stack's authority."""
    assert stack.redis.tls is not None
    with (
        redis.Redis(
            LOCALHOST, stack.redis.port, password=stack.redis.password, socket_timeout=2
        ) as in_clear,
        pytest.raises(redis.ConnectionError),
    ):
        in_clear.ping()
    with (
        redis.Redis(
            LOCALHOST, stack.redis.port, socket_timeout=2, **stack.redis.tls_options
        ) as anonymous,
        pytest.raises(redis.AuthenticationError),
    ):
        anonymous.ping()
    for spec in SERVICES:
        env = stack.service_env(spec)
        if "redis" in spec.needs:
            assert env["PARAPHE_REDIS_PASSWORD"] == stack.redis.password
            assert env["PARAPHE_REDIS_TLS_CA"] == str(stack.redis.tls.ca)
            assert env["PARAPHE_REDIS_URL"].startswith("rediss://")
        else:
            assert "PARAPHE_REDIS_PASSWORD" not in env
            assert "PARAPHE_REDIS_TLS_CA" not in env


def test_demo_petitions_are_served_through_the_proxy(stack: Stack) -> None:
    status, _, body = fetch(stack, "/api/petitions")
    assert status == 200
    assert json.loads(body)["total"] >= 3
    status, content_type, page = fetch(stack, "/", accept="text/html")
    assert status == 200
    assert content_type.startswith("text/html")
    assert "Pétitions" in page


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/auth/login", "auth-gateway"),
        ("/api/petitions/p1/signatures", "signature-intake"),
        ("/api/petitions/p1/count", "counter"),
        ("/api/moderation/queue", "moderation"),
        ("/api/petitions/p1", "petition-catalog"),
    ],
)
def test_proxy_routes_each_path_to_its_service(stack: Stack, path: str, service: str) -> None:
    before = stack_requests(stack, service)
    fetch(stack, path)
    assert stack_requests(stack, service) == before + 1


def stack_requests(stack: Stack, service: str) -> float:
    """Requests a service answered, from its own metrics (read directly, not via the proxy)."""
    port = stack.ports.services[service]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        lines = answer.read().decode().splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("http_server_requests_total{") and 'route="/metrics"' not in line
    )


def test_every_process_stops_cleanly(binaries: Binaries) -> None:
    with temporary_stack(binaries) as stack:
        processes = [*stack.services.values()]
        stack.stop()
        assert {p.name: p.process.returncode for p in processes if p.process} == {
            spec.name: 0 for spec in SERVICES
        }
