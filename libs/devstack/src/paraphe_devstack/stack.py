"""The whole local stack: infrastructure, migrations, demo data, the services and the proxy."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paraphe_devstack.binaries import Binaries
from paraphe_devstack.keys import DevSecrets
from paraphe_devstack.proxy import nginx_config
from paraphe_devstack.servers import (
    LOCALHOST,
    ManagedProcess,
    NatsServer,
    NginxProxy,
    PostgresServer,
    RedisServer,
    ServerFailed,
    free_port,
    log_tail,
    port_answers,
    remove_tree,
)
from paraphe_devstack.tls import local_certificates

DATABASE = "paraphe"
FRANCECONNECT_CLIENT_ID = "paraphe-local"
STAFF_CLIENT_ID = "paraphe-local-staff"
# Demo agents of the sandbox and the roles this development stack grants them.
STAFF_ROLES = {
    "marie.moderatrice@assemblee.example": ["moderator"],
    "paul.secretariat@assemblee.example": ["committee-secretariat"],
    "ines.admin@assemblee.example": ["admin", "moderator"],
}


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    needs: frozenset[str] = frozenset()
    migrates: bool = False

    @property
    def module(self) -> str:
        return "paraphe_" + self.name.replace("-", "_")


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("auth-gateway", frozenset({"redis"})),
    ServiceSpec("signature-intake", frozenset({"redis", "nats"})),
    ServiceSpec("counter", frozenset({"postgresql", "redis", "nats"}), migrates=True),
    ServiceSpec("petition-catalog", frozenset({"postgresql", "redis", "nats"}), migrates=True),
    ServiceSpec("moderation", frozenset({"postgresql", "nats"}), migrates=True),
    ServiceSpec("franceconnect-sandbox"),
)

INTAKE = "signature-intake"
_DEFAULT_SERVICE_PORTS = {spec.name: 8101 + i for i, spec in enumerate(SERVICES)}


def _port(variable: str, default: int) -> int:
    value = os.environ.get(variable, "")
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{variable} must be a port number, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class StackPorts:
    proxy: int = 8080
    postgres: int = 15432
    redis: int = 16379
    nats: int = 14222
    nats_monitor: int = 18222
    services: dict[str, int] = field(default_factory=lambda: dict(_DEFAULT_SERVICE_PORTS))

    @classmethod
    def from_env(cls) -> StackPorts:
        """Defaults, each overridable by ``PARAPHE_DEV_<NAME>_PORT``."""
        defaults = cls()
        return cls(
            proxy=_port("PARAPHE_DEV_PROXY_PORT", defaults.proxy),
            postgres=_port("PARAPHE_DEV_POSTGRES_PORT", defaults.postgres),
            redis=_port("PARAPHE_DEV_REDIS_PORT", defaults.redis),
            nats=_port("PARAPHE_DEV_NATS_PORT", defaults.nats),
            nats_monitor=_port("PARAPHE_DEV_NATS_MONITOR_PORT", defaults.nats_monitor),
            services={
                name: _port(f"PARAPHE_DEV_{name.upper().replace('-', '_')}_PORT", port)
                for name, port in defaults.services.items()
            },
        )

    @classmethod
    def free(cls) -> StackPorts:
        """Free ports for everything: for tests that run a whole stack."""
        return cls(
            proxy=free_port(),
            postgres=free_port(),
            redis=free_port(),
            nats=free_port(),
            nats_monitor=free_port(),
            services={spec.name: free_port() for spec in SERVICES},
        )

    def all(self) -> dict[str, int]:
        return {
            "proxy": self.proxy,
            "postgresql": self.postgres,
            "redis": self.redis,
            "nats": self.nats,
            "nats monitoring": self.nats_monitor,
            **self.services,
        }


class ServiceProcess(ManagedProcess):
    start_timeout = 60.0

    def __init__(
        self, spec: ServiceSpec, port: int, env: dict[str, str], log_dir: Path, name: str = ""
    ):
        name = name or spec.name
        super().__init__(name, log_dir / f"{name}.log")
        self.spec = spec
        self.port = port
        self._env = env

    def argv(self) -> Sequence[str]:
        return [sys.executable, "-m", self.spec.module]

    def env(self) -> dict[str, str]:
        return self._env

    def ready(self) -> bool:
        try:
            url = f"http://{LOCALHOST}:{self.port}/readyz"
            with urllib.request.urlopen(url, timeout=1) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False


class Stack:
    def __init__(
        self,
        state_dir: Path,
        ports: StackPorts,
        binaries: Binaries,
        *,
        durable: bool = True,
        access_log: bool = True,
        intake_replicas: int = 1,
        settings: Mapping[str, str] | None = None,
        say: Callable[[str], None] = lambda message: None,
    ) -> None:
        if intake_replicas < 1:
            raise ValueError(f"intake needs one replica at least, not {intake_replicas}")
        self.state_dir = state_dir
        self.ports = ports
        # Intake is stateless: like production's replicas, several processes behind the proxy
        # (the first on ports.services, the others on free ports) share its load; every other
        # service runs once.
        self.replica_ports: dict[str, list[int]] = {
            name: [port] for name, port in ports.services.items()
        }
        self.replica_ports[INTAKE] += [free_port() for _ in range(intake_replicas - 1)]
        self.access_log = access_log
        # The platform's own settings a developer wants to try (PARAPHE_THRESHOLDS=10,20 make
        # run): given to every service, under what the stack sets itself (where the servers
        # are, the secrets), which they cannot change.
        self.settings = dict(settings or {})
        self.binaries = binaries
        self.say = say
        self.postgres = PostgresServer(
            binaries.postgres_bin, state_dir / "postgresql" / "data", ports.postgres,
            durable=durable,
        )  # fmt: skip
        secrets = DevSecrets.load_or_create(state_dir / "secrets.json")
        # Redis asks for a password, over TLS only, as production's does (the services get the
        # password apart, and trust the local authority).
        self.redis = RedisServer(
            binaries.redis_server, state_dir / "redis", ports.redis,
            password=secrets.redis_password,
            tls=local_certificates(state_dir / "redis" / "tls"),
        )  # fmt: skip
        # NATS admits each service as its own user, allowed only its own subjects, over TLS.
        self.nats = NatsServer(
            binaries.nats_server, state_dir / "nats" / "jetstream", ports.nats, ports.nats_monitor,
            passwords=secrets.nats_passwords,
            tls=local_certificates(state_dir / "nats" / "tls"),
        )  # fmt: skip
        self.services: dict[str, ServiceProcess] = {}
        self.proxy: NginxProxy | None = None
        self._started: list[ManagedProcess] = []

    @property
    def database_url(self) -> str:
        return self.postgres.url(DATABASE)

    @property
    def public_url(self) -> str:
        return f"http://localhost:{self.ports.proxy}"

    @property
    def sandbox_url(self) -> str:
        return f"http://localhost:{self.ports.services['franceconnect-sandbox']}"

    def service_env(self, spec: ServiceSpec, port: int | None = None) -> dict[str, str]:
        """Each service's settings (``port``: a replica's); secrets only to the services that
        hold them."""
        secrets = DevSecrets.load_or_create(self.state_dir / "secrets.json")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARAPHE_")}
        env.update(self.settings)
        env.update(
            PARAPHE_HOST=LOCALHOST,
            PARAPHE_PORT=str(port or self.ports.services[spec.name]),
            PARAPHE_DATABASE_URL=self.database_url,
            PARAPHE_REDIS_URL=self.redis.url,
            PARAPHE_NATS_URL=self.nats.url,
            PARAPHE_PUBLIC_URL=self.public_url,
            PARAPHE_TOKEN_VERIFICATION_KEYS=secrets.signing_key.public_jwks,
            # Locally every request is worth a log line (benchmarks turn it off, as production
            # does: there the proxy keeps them).
            PARAPHE_ACCESS_LOG="true" if self.access_log else "false",
        )
        clients = [
            {
                "client_id": client_id,
                "client_secret": secret,
                "redirect_uris": [f"{self.public_url}/auth/callback"],
                "post_logout_redirect_uris": [f"{self.public_url}/auth/logged-out"],
            }
            for client_id, secret in (
                (FRANCECONNECT_CLIENT_ID, secrets.franceconnect_client_secret),
                (STAFF_CLIENT_ID, secrets.staff_client_secret),
            )
        ]
        if "redis" in spec.needs:
            env.update(PARAPHE_REDIS_PASSWORD=secrets.redis_password)
            if self.redis.tls is not None:
                env.update(PARAPHE_REDIS_TLS_CA=str(self.redis.tls.ca))
        if "nats" in spec.needs:
            env.update(PARAPHE_NATS_PASSWORD=secrets.nats_passwords[spec.name])
            if self.nats.tls is not None:
                env.update(PARAPHE_NATS_TLS_CA=str(self.nats.tls.ca))
        if spec.name in {"auth-gateway", INTAKE}:
            env.update(
                PARAPHE_SIGNER_TOKEN_KEYS=secrets.signer_key.secret_jwks,
                PARAPHE_SIGNER_TOKEN_KEY_ID=secrets.signer_key.kid,
            )
        if spec.name == "auth-gateway":
            env.update(
                PARAPHE_TOKEN_SIGNING_KEY=secrets.signing_key.private_pem,
                PARAPHE_TOKEN_SIGNING_KEY_ID=secrets.signing_key.kid,
                PARAPHE_FRANCECONNECT_ISSUER=self.sandbox_url,
                PARAPHE_FRANCECONNECT_CLIENT_ID=FRANCECONNECT_CLIENT_ID,
                PARAPHE_FRANCECONNECT_CLIENT_SECRET=secrets.franceconnect_client_secret,
                PARAPHE_STAFF_ISSUER=f"{self.sandbox_url}/agents",
                PARAPHE_STAFF_CLIENT_ID=STAFF_CLIENT_ID,
                PARAPHE_STAFF_CLIENT_SECRET=secrets.staff_client_secret,
                PARAPHE_STAFF_ROLES=json.dumps(STAFF_ROLES),
                PARAPHE_SIGNER_PEPPERS=json.dumps({"1": secrets.pepper}),
                PARAPHE_CATALOG_URL=f"http://{LOCALHOST}:{self.ports.services['petition-catalog']}",
            )
        if spec.name == "petition-catalog":
            # The sign form of a page seen without JavaScript is forwarded to intake. Deadlines
            # are looked at every 2 s (30 s by default): locally a petition closes on time.
            env.update(
                PARAPHE_INTAKE_URL=f"http://{LOCALHOST}:{self.ports.services[INTAKE]}",
                PARAPHE_DEADLINE_CHECK_INTERVAL="2",
            )
        if spec.name == "moderation":
            # Moderation records its decisions through the catalogue's internal API.
            env.update(
                PARAPHE_CATALOG_URL=f"http://{LOCALHOST}:{self.ports.services['petition-catalog']}"
            )
        if spec.name == "franceconnect-sandbox":
            env.update(
                PARAPHE_SANDBOX_ISSUER=self.sandbox_url,
                PARAPHE_SANDBOX_CLIENTS=json.dumps(clients),
            )
        return env

    def check_ports(self) -> None:
        busy = [f"{what} ({port})" for what, port in self.ports.all().items() if port_answers(port)]
        if busy:
            raise ServerFailed(
                "ports already in use: " + ", ".join(busy) + ". Stop what uses them "
                "(make stop) or choose others with PARAPHE_DEV_<NAME>_PORT."
            )

    def _start(self, process: ManagedProcess) -> None:
        self.say(f"starting {process.name}")
        process.start()
        self._started.append(process)

    def start_infrastructure(self) -> None:
        for server in (self.postgres, self.redis, self.nats):
            self._start(server)
        self.postgres.ensure_database(DATABASE)

    def migrate(self) -> None:
        for spec in SERVICES:
            if spec.migrates:
                self.say(f"migrating {spec.name}")
                self._run(spec, [sys.executable, "-m", spec.module, "migrate"])

    def load_demo_petitions(self) -> None:
        catalog = next(spec for spec in SERVICES if spec.name == "petition-catalog")
        self.say("loading demo petitions")
        self._run(catalog, [sys.executable, "-m", f"{catalog.module}.demo"])

    def _run(self, spec: ServiceSpec, argv: list[str]) -> None:
        done = subprocess.run(argv, env=self.service_env(spec), capture_output=True, text=True)
        if done.returncode != 0:
            raise ServerFailed(
                f"{' '.join(argv[1:])} failed:\n{done.stderr.strip() or done.stdout.strip()}"
            )

    def start_services(self) -> None:
        log_dir = self.state_dir / "logs"
        for spec in SERVICES:
            for replica, port in enumerate(self.replica_ports[spec.name], start=1):
                name = spec.name if replica == 1 else f"{spec.name}-{replica}"
                env = self.service_env(spec, port)
                process = ServiceProcess(spec, port, env, log_dir, name)
                self.services[name] = process
                self.say(f"starting {name}")
                process.start(wait=False)
                self._started.append(process)
        for process in self.services.values():
            process.wait_ready()

    def start_proxy(self) -> None:
        if self.binaries.nginx is None:
            raise ServerFailed("nginx is required for the proxy")
        prefix = self.state_dir / "nginx"
        config = nginx_config(prefix, self.ports.proxy, self.replica_ports)
        self.proxy = NginxProxy(self.binaries.nginx, prefix, self.ports.proxy, config)
        self.proxy.prepare()
        for temp in (prefix / "temp").iterdir():
            temp.chmod(0o777)  # nginx workers run unprivileged
        self._start(self.proxy)

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.check_ports()
        try:
            self.start_infrastructure()
            self.migrate()
            self.load_demo_petitions()
            self.start_services()
            self.start_proxy()
        except BaseException:
            self.stop()
            raise

    def exited(self) -> list[str]:
        """What stopped by itself, with the end of its log."""
        return [
            f"{p.name} exited ({p.process.returncode if p.process else '?'}):\n"
            + log_tail(p.log_path)
            for p in self._started
            if not p.running
        ]

    def stop(self) -> None:
        while self._started:
            process = self._started.pop()
            self.say(f"stopping {process.name}")
            process.stop()


@contextlib.contextmanager
def temporary_stack(
    binaries: Binaries, *, access_log: bool = True, intake_replicas: int = 1
) -> Iterator[Stack]:
    """A whole stack on free ports under a directory of its own, removed afterwards (tests,
    benchmarks)."""
    # Not under pytest's tmp_path: PostgreSQL runs as its own account and must reach its data.
    state_dir = Path(tempfile.mkdtemp(prefix="paraphe-test-stack-"))
    state_dir.chmod(0o755)
    stack = Stack(
        state_dir,
        StackPorts.free(),
        binaries,
        durable=False,
        access_log=access_log,
        intake_replicas=intake_replicas,
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        remove_tree(state_dir)
