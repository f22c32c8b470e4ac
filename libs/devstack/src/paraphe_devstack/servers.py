"""Real PostgreSQL, Redis, NATS and nginx processes, started and stopped by us.

Each server runs in its own session (so a signal reaches it, not our terminal), writes its
output to a log file, and is waited for until it answers. ``stop`` asks politely with the
signal each server treats as a fast clean shutdown; ``kill`` is the crash a test inflicts.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import nats
import redis
import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient
from redis.exceptions import RedisError

from paraphe_common.marks import HASH_MAX_LISTPACK_ENTRIES
from paraphe_common.resources import redis_tls_options
from paraphe_devstack.nats_access import ADMIN, authorization, password_variable
from paraphe_devstack.tls import TlsFiles

LOCALHOST = "127.0.0.1"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class ServerFailed(RuntimeError):
    pass


def ephemeral_ports() -> range:
    """Where the kernel takes the local ports of outgoing connections."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, for a server about to start.

    Chosen outside the kernel's range for outgoing connections: a port asked of the kernel
    (bind to 0) comes from that range, and any client connecting meanwhile (a service starting
    up, to Redis or NATS) may be given it before our server binds it ("address already in
    use", seen in tests). Never the same port twice in one process.
    """
    ephemeral = ephemeral_ports()
    candidates = [p for p in range(10_000, 65_536) if p not in ephemeral]
    for _ in range(200):
        if not candidates:
            break
        port = random.choice(candidates)  # noqa: S311 - spreading, not secrecy
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOCALHOST, port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def port_answers(port: int, host: str = LOCALHOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ManagedProcess:
    """A child process with a name, a log file and a polite way to stop."""

    stop_signal = signal.SIGTERM
    start_timeout = 30.0

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def argv(self) -> Sequence[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def user(self) -> str | None:
        return None

    def ready(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """Work to do before the first start (create a data directory...)."""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True) -> None:
        if self.running:
            return
        self.prepare()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(self.argv()),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            user=self.user(),
            start_new_session=True,
        )
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.kill()  # and its log closed: nobody will stop what did not start
                raise

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerFailed(
                    f"{self.name} exited with status {self.process.returncode}:\n"
                    + log_tail(self.log_path)
                )
            if self.ready():
                return
            time.sleep(0.05)
        raise ServerFailed(f"{self.name} did not become ready:\n{log_tail(self.log_path)}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop with the server's clean-shutdown signal; kill it if it will not go."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the crash, not the shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class PostgresServer(ManagedProcess):
    """One PostgreSQL cluster; with ``tls``, it offers TLS with ``tls.cert``, as
    CloudNativePG's servers do with theirs (clients choose to verify it: ``PGSSLMODE``)."""

    stop_signal = signal.SIGINT  # "fast" shutdown: roll back sessions, checkpoint, exit

    def __init__(
        self,
        bindir: Path,
        data_dir: Path,
        port: int,
        *,
        durable: bool = True,
        tls: TlsFiles | None = None,
    ) -> None:
        super().__init__("postgresql", data_dir.parent / "postgresql.log")
        self.bindir = bindir
        self.data_dir = data_dir
        self.port = port
        self.durable = durable
        self.tls = tls

    def user(self) -> str | None:
        # PostgreSQL refuses to run as root; Debian's package created this account.
        return "postgres" if os.geteuid() == 0 else None

    def prepare(self) -> None:
        self._initdb()
        if self.tls is not None:
            # Inside the data directory, the server's account its only reader: PostgreSQL
            # refuses a key others may read.
            account = self.user()
            for source, name in ((self.tls.cert, "server.crt"), (self.tls.key, "server.key")):
                target = self.data_dir / name
                shutil.copyfile(source, target)
                target.chmod(0o600)
                if account is not None:
                    entry = pwd.getpwnam(account)
                    os.chown(target, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        account = self.user()
        if account is not None:
            entry = pwd.getpwnam(account)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            self.log_path.touch()
            os.chown(self.log_path, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "--pgdata", str(self.data_dir),
                "--username", "postgres",
                "--auth", "trust",
                "--encoding", "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            user=account,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip

    def argv(self) -> Sequence[str]:
        argv = [
            str(self.bindir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", f"listen_addresses={LOCALHOST}",
            "-c", "unix_socket_directories=",
            "-c", "max_connections=200",
        ]  # fmt: skip
        if not self.durable:
            # Test servers trade crash safety for speed: their data dies with the test run.
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            argv += ["-c", "full_page_writes=off"]
        if self.tls is not None:
            argv += ["-c", "ssl=on", "-c", "ssl_cert_file=server.crt"]
            argv += ["-c", "ssl_key_file=server.key"]
        return argv

    def ready(self) -> bool:
        answer = subprocess.run(
            [str(self.bindir / "pg_isready"), "-q", "-h", LOCALHOST, "-p", str(self.port)],
            check=False,
        )
        return answer.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{LOCALHOST}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        answer = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X", "-q", "-A", "-t",
                "-v", "ON_ERROR_STOP=1",
                "-h", LOCALHOST, "-p", str(self.port), "-U", "postgres",
                "-d", database,
                "-c", sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
        return answer.stdout.strip()

    def ensure_database(self, name: str) -> str:
        if not _DATABASE_NAME.match(name):
            raise ValueError(f"not a database name: {name!r}")
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")  # noqa: S608
        if not exists:
            self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)


class RedisServer(ManagedProcess):
    """One redis-server; with ``password``, it asks every client for it, as production's do
    (``requirepass``, and ``masterauth`` for a replica), read from a file of its own; with
    ``tls``, it speaks TLS only (to its clients and, as a replica, to its master), presenting
    ``tls.cert``."""

    def __init__(
        self,
        binary: Path,
        work_dir: Path,
        port: int,
        *,
        password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        super().__init__("redis", work_dir / "redis.log")
        self.binary = binary
        self.work_dir = work_dir
        self.port = port
        self.password = password
        self.tls = tls

    @property
    def config_path(self) -> Path:
        return self.work_dir / "redis.conf"

    def prepare(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # The password in a file only its owner reads, never on the command line (ps).
        self.config_path.unlink(missing_ok=True)
        self.config_path.touch(mode=0o600)
        lines = []
        if self.password is not None:
            lines += [f"requirepass {self.password}", f"masterauth {self.password}"]
        lines += redis_tls_lines(self.tls, self.port)
        self.config_path.write_text("".join(f"{line}\n" for line in lines))

    def argv(self) -> Sequence[str]:
        return [
            str(self.binary),
            str(self.config_path),
            *(() if self.tls is not None else ("--port", str(self.port))),
            "--bind", LOCALHOST,
            "--save", "",
            "--appendonly", "no",
            # Signed marks in the compact hash encoding, as deployed (paraphe_common.marks).
            "--hash-max-listpack-entries", str(HASH_MAX_LISTPACK_ENTRIES),
            "--dir", str(self.work_dir),
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip

    def client(self) -> redis.Redis:
        """A client of this server's own (its checks, tests), with the password it asks."""
        return redis.Redis(
            LOCALHOST, self.port, password=self.password, socket_timeout=1,
            decode_responses=True, **self.tls_options,
        )  # fmt: skip

    def async_client(self) -> aioredis.Redis:
        """An asyncio client, as the services connect (for tests and tools)."""
        return aioredis.Redis(
            host=LOCALHOST, port=self.port, password=self.password, **self.tls_options
        )

    @property
    def tls_options(self) -> dict[str, Any]:
        """What a redis-py client needs to verify this server: nothing without TLS."""
        return redis_client_tls(self.tls)

    def ready(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except (RedisError, OSError):
            return False

    @property
    def url(self) -> str:
        """Where the services connect, their password given apart (``PARAPHE_REDIS_PASSWORD``),
        as production's Secret gives it; with TLS they trust ``tls.ca``
        (``PARAPHE_REDIS_TLS_CA``)."""
        scheme = "redis" if self.tls is None else "rediss"
        return f"{scheme}://{LOCALHOST}:{self.port}/0"


def redis_tls_lines(tls: TlsFiles | None, port: int) -> list[str]:
    """A Redis server's or a sentinel's configuration for TLS alone on ``port``, as
    production's: no port in clear, clients authenticated by the password rather than by a
    certificate, TLS to the servers it replicates from or watches."""
    if tls is None:
        return []
    return [
        "port 0",
        f"tls-port {port}",
        f"tls-cert-file {tls.cert}",
        f"tls-key-file {tls.key}",
        f"tls-ca-cert-file {tls.ca}",
        "tls-auth-clients no",
        "tls-replication yes",
    ]


def redis_client_tls(tls: TlsFiles | None) -> dict[str, Any]:
    """A redis-py client's options for a server of ``tls``: as the services verify it."""
    if tls is None:
        return {}
    return {"ssl": True, **redis_tls_options(tls.ca)}


class NatsServer(ManagedProcess):
    """One nats-server with JetStream; with ``passwords`` (user → password), it admits only
    the services' users and ``admin``, each allowed what paraphe_devstack.nats_access says;
    with ``tls``, only clients that speak TLS, to which it presents ``tls.cert``."""

    def __init__(
        self,
        binary: Path,
        store_dir: Path,
        port: int,
        monitor_port: int,
        name: str = "nats",
        *,
        passwords: Mapping[str, str] | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        super().__init__(name, store_dir.parent / f"{name}.log")
        self.binary = binary
        self.store_dir = store_dir
        self.port = port
        self.monitor_port = monitor_port
        self.server_name = name
        self.passwords = dict(passwords) if passwords is not None else None
        self.tls = tls
        self.config_path = store_dir.parent / f"{name}.conf"

    def config(self) -> str:
        """nats.conf: the users' block and the TLS block, as the Kubernetes overlays' have."""
        blocks = [authorization()] if self.passwords is not None else []
        if self.tls is not None:
            blocks.append(tls_block(self.tls))
        return "\n".join(blocks)

    def prepare(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # The passwords stay in the environment, as in the Kubernetes overlays.
        self.config_path.write_text(self.config())

    def argv(self) -> Sequence[str]:
        return [
            str(self.binary),
            "--config", str(self.config_path),
            "--addr", LOCALHOST,
            "--port", str(self.port),
            "--http_port", str(self.monitor_port),
            "--jetstream",
            "--store_dir", str(self.store_dir),
            "--server_name", self.server_name,
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        env = super().env()
        for user, password in (self.passwords or {}).items():
            env[password_variable(user)] = password
        return env

    def ready(self) -> bool:
        url = f"http://{LOCALHOST}:{self.monitor_port}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as answer:
                return bool(json.load(answer).get("status") == "ok")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    @property
    def url(self) -> str:
        """Where clients connect; a service with users gives its own name and password, and
        with TLS, trusts ``tls.ca`` (``PARAPHE_NATS_TLS_CA``)."""
        return f"nats://{LOCALHOST}:{self.port}"

    def refusals(self) -> list[str]:
        """What the server refused a client, from its log: a permission a service lacks
        (paraphe_devstack.nats_access), or a client with no or a wrong password."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if " Violation" in line]

    @property
    def admin_url(self) -> str:
        """``url`` as the operators' user, allowed everything (tests, tools); ``url`` itself
        when the server has no users."""
        if self.passwords is None:
            return self.url
        password = urllib.parse.quote(self.passwords[ADMIN], safe="")
        return f"nats://{ADMIN}:{password}@{LOCALHOST}:{self.port}"

    def greeting(self) -> dict[str, Any]:
        """The INFO a client reads first on connecting: what the server asks of it (its
        ``tls_required``, ``auth_required``...)."""
        with socket.create_connection((LOCALHOST, self.port), timeout=5) as connection:
            line = connection.makefile("rb").readline()
        return dict(json.loads(line.removeprefix(b"INFO ")))

    @property
    def client_tls(self) -> ssl.SSLContext | None:
        """What a client verifies this server with (None: the server speaks no TLS)."""
        return self.tls.client_context() if self.tls is not None else None

    async def admin_connection(self, **options: Any) -> NatsClient:
        """A connection as ``admin`` (tests, tools), over TLS when the server has it."""
        return await nats.connect(self.admin_url, tls=self.client_tls, **options)


def tls_block(files: TlsFiles, indent: str = "") -> str:
    """nats.conf's ``tls`` block: the certificate this server presents, with its key, and the
    authority it verifies its peers' with (a cluster's routes are mutual TLS)."""
    return "\n".join(
        [
            f"{indent}tls {{",
            f'{indent}  cert_file: "{files.cert}"',
            f'{indent}  key_file: "{files.key}"',
            f'{indent}  ca_file: "{files.ca}"',
            f"{indent}  timeout: 2",
            f"{indent}}}",
        ]
    )


class NginxProxy(ManagedProcess):
    stop_signal = signal.SIGQUIT  # graceful: finish the requests being served

    def __init__(self, binary: Path, prefix: Path, port: int, config: str) -> None:
        super().__init__("nginx", prefix / "nginx.log")
        self.binary = binary
        self.prefix = prefix
        self.port = port
        self.config = config

    def prepare(self) -> None:
        for temp in ("client_body", "proxy"):
            (self.prefix / "temp" / temp).mkdir(parents=True, exist_ok=True)
        (self.prefix / "nginx.conf").write_text(self.config)

    def argv(self) -> Sequence[str]:
        return [
            str(self.binary),
            "-p", str(self.prefix),
            "-c", str(self.prefix / "nginx.conf"),
            "-e", "stderr",
            "-g", "daemon off;",
        ]  # fmt: skip

    def ready(self) -> bool:
        return port_answers(self.port)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
