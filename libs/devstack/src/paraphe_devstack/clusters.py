"""Clustered data layers on loopback, as production runs them: for the tests that kill nodes.

- :class:`NatsCluster`: three ``nats-server`` processes joined by routes into one JetStream
  cluster (a stream at 3 replicas survives the loss of any one node), clients and routes in
  TLS, clients as the services' users.
- :class:`RedisSentinelGroup`: a Redis master, two replicas and three sentinels that promote a
  replica when the master dies (quorum 2).

Every process is a :class:`~paraphe_devstack.servers.ManagedProcess`: started in its own
session, logging to a file, stopped politely or killed (``kill -9``) by a test.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nats
import redis
from nats.aio.client import Client as NatsClient
from redis.exceptions import RedisError

from paraphe_devstack.binaries import Binaries
from paraphe_devstack.keys import new_nats_passwords, new_redis_password
from paraphe_devstack.servers import (
    LOCALHOST,
    ManagedProcess,
    NatsServer,
    RedisServer,
    ServerFailed,
    free_port,
    redis_client_tls,
    redis_tls_lines,
    tls_block,
)
from paraphe_devstack.tls import TlsFiles, local_certificates

NATS_CLUSTER_NAME = "paraphe"
SENTINEL_MASTER = "paraphe"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    """Poll ``condition()`` until it is true, or fail saying that ``what`` (what the condition
    tells) did not come in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise ServerFailed(f"not within {timeout:.0f} s: {what}")


class NatsClusterNode(NatsServer):
    """One server of a JetStream cluster: its client port, its route port, its peers' routes."""

    start_timeout = 60.0

    def __init__(
        self,
        binary: Path,
        store_dir: Path,
        name: str,
        cluster_port: int,
        routes: Sequence[str],
        passwords: Mapping[str, str] | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        super().__init__(
            binary, store_dir, free_port(), free_port(), name=name, passwords=passwords, tls=tls
        )
        self.cluster_port = cluster_port
        self.routes = list(routes)

    def config(self) -> str:
        # As production's nats.conf: the routes in TLS too, when the clients' are.
        routes = "\n".join(f'    "{route}"' for route in self.routes)
        cluster = [
            "cluster {",
            f"  name: {NATS_CLUSTER_NAME}",
            f"  listen: {LOCALHOST}:{self.cluster_port}",
            f"  routes: [\n{routes}\n  ]",
            *([tls_block(self.tls, indent="  ")] if self.tls is not None else []),
            "}",
        ]
        return "\n".join([super().config(), *cluster])

    def ready(self) -> bool:
        # Without js-enabled-only, healthz waits for the meta leader and for this server's
        # streams and consumers to have caught up: a restarted node is ready once it is current.
        url = f"http://{LOCALHOST}:{self.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as answer:
                return bool(json.load(answer).get("status") == "ok")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def monitor(self, endpoint: str) -> dict[str, Any]:
        """A monitoring endpoint's JSON (``jsz``, ``routez``...)."""
        url = f"http://{LOCALHOST}:{self.monitor_port}/{endpoint}"
        with urllib.request.urlopen(url, timeout=2) as answer:
            return dict(json.load(answer))


class NatsCluster:
    """Three JetStream servers on loopback, each routed to the other two, admitting the
    services' users and ``admin`` as production's do (paraphe_devstack.nats_access), over TLS
    (clients trust ``tls.ca``)."""

    def __init__(self, binary: Path, base_dir: Path, size: int = 3) -> None:
        cluster_ports = [free_port() for _ in range(size)]
        self.passwords = new_nats_passwords()
        self.tls = local_certificates(base_dir / "tls")
        self.nodes = [
            NatsClusterNode(
                binary,
                base_dir / f"nats-{n}" / "jetstream",
                f"nats-{n}",
                port,
                [f"nats://{LOCALHOST}:{other}" for other in cluster_ports if other != port],
                self.passwords,
                self.tls,
            )
            for n, port in enumerate(cluster_ports)
        ]

    @property
    def url(self) -> str:
        """Every server's URL, separated by commas, as ``PARAPHE_NATS_URL`` takes them."""
        return ",".join(node.url for node in self.nodes)

    @property
    def admin_url(self) -> str:
        """``url`` as the operators' user."""
        return ",".join(node.admin_url for node in self.nodes)

    async def admin_connection(self, **options: Any) -> NatsClient:
        """A connection as ``admin`` to whichever server answers first, over TLS."""
        return await nats.connect(
            self.admin_url.split(","), tls=self.tls.client_context(), **options
        )

    def node(self, name: str) -> NatsClusterNode:
        return next(node for node in self.nodes if node.server_name == name)

    def start(self) -> None:
        # Together: none is healthy before a majority has elected a meta leader.
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_ready()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


class RedisReplica(RedisServer):
    def __init__(
        self,
        binary: Path,
        work_dir: Path,
        port: int,
        master_port: int,
        password: str | None,
        tls: TlsFiles | None,
    ) -> None:
        super().__init__(binary, work_dir, port, password=password, tls=tls)
        self.name = work_dir.name
        self.master_port = master_port

    def argv(self) -> Sequence[str]:
        return [*super().argv(), "--replicaof", LOCALHOST, str(self.master_port)]

    def ready(self) -> bool:
        return super().ready() and _replication(self).get("master_link_status") == "up"


class RedisSentinel(ManagedProcess):
    """``redis-server --sentinel`` with a configuration file of its own, which it rewrites;
    with ``tls``, in TLS alone, to its clients, the servers it watches and the other
    sentinels."""

    def __init__(
        self,
        binary: Path,
        work_dir: Path,
        port: int,
        master_port: int,
        password: str | None,
        tls: TlsFiles | None,
    ) -> None:
        super().__init__(work_dir.name, work_dir / "sentinel.log")
        self.binary = binary
        self.work_dir = work_dir
        self.port = port
        self.master_port = master_port
        self.password = password
        self.tls = tls

    @property
    def config_path(self) -> Path:
        return self.work_dir / "sentinel.conf"

    def prepare(self) -> None:
        if self.config_path.exists():
            return  # a restart keeps what this sentinel learnt (the current master...)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # As production's: the sentinel asks its clients for the password, and gives it to
        # the servers it watches.
        password = (
            f"requirepass {self.password}\nsentinel auth-pass {SENTINEL_MASTER} {self.password}\n"
            if self.password is not None
            else ""
        )
        listen = redis_tls_lines(self.tls, self.port) or [f"port {self.port}"]
        self.config_path.touch(mode=0o600)
        self.config_path.write_text(
            "".join(f"{line}\n" for line in listen) + f"bind {LOCALHOST}\n"
            f"dir {self.work_dir}\n"
            f"sentinel monitor {SENTINEL_MASTER} {LOCALHOST} {self.master_port} 2\n"
            f"{password}"
            # Short delays, so a test sees a failover in seconds rather than in a minute.
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
            f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n"
            f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
        )

    def argv(self) -> Sequence[str]:
        return [str(self.binary), str(self.config_path), "--sentinel", "--loglevel", "warning"]

    def client(self) -> redis.Redis:
        return redis.Redis(
            LOCALHOST, self.port, password=self.password, socket_timeout=1,
            decode_responses=True, **redis_client_tls(self.tls),
        )  # fmt: skip

    def ready(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except (RedisError, OSError):
            return False

    def master_port_seen(self) -> int | None:
        try:
            with self.client() as client:
                address = client.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
        except (RedisError, OSError):
            return None
        return int(address[1]) if address else None

    def knows_the_group(self, replicas: int, sentinels: int) -> bool:
        """This sentinel has discovered the replicas and the other sentinels (failover needs
        a majority of sentinels that know each other)."""
        try:
            with self.client() as client:
                master = client.sentinel_master(SENTINEL_MASTER)
        except (RedisError, OSError):
            return False
        return (
            int(master.get("num-slaves", 0)) >= replicas
            and int(master.get("num-other-sentinels", 0)) >= sentinels - 1
        )


def _replication(server: RedisServer) -> dict[str, object]:
    try:
        with server.client() as client:
            return dict(client.info("replication"))
    except (RedisError, OSError):
        return {}


class RedisSentinelGroup:
    """A master, two replicas and three sentinels: the production Redis, on loopback, in TLS
    (every server and sentinel presenting the same certificate, as production's)."""

    def __init__(self, binary: Path, base_dir: Path, replicas: int = 2, sentinels: int = 3):
        master_port = free_port()
        # One password for the servers and the sentinels, as production's Secret paraphe-redis.
        self.password = new_redis_password()
        self.tls = local_certificates(base_dir / "tls")
        self.master = RedisServer(
            binary, base_dir / "redis-0", master_port, password=self.password, tls=self.tls
        )
        self.master.name = "redis-0"
        secured = (self.password, self.tls)
        self.replicas = [
            RedisReplica(binary, base_dir / f"redis-{n}", free_port(), master_port, *secured)
            for n in range(1, replicas + 1)
        ]
        self.sentinels = [
            RedisSentinel(binary, base_dir / f"sentinel-{n}", free_port(), master_port, *secured)
            for n in range(sentinels)
        ]

    @property
    def servers(self) -> list[RedisServer]:
        return [self.master, *self.replicas]

    @property
    def sentinel_addresses(self) -> str:
        """``host:port,...``, as ``PARAPHE_REDIS_SENTINELS`` takes them."""
        return ",".join(f"{LOCALHOST}:{sentinel.port}" for sentinel in self.sentinels)

    def start(self) -> None:
        self.master.start()
        for replica in self.replicas:
            replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        wait_until(
            lambda: all(
                s.knows_the_group(len(self.replicas), len(self.sentinels)) for s in self.sentinels
            ),
            "the sentinels discover the replicas and each other",
            timeout=30,
        )

    def current_master(self) -> RedisServer:
        """The server the sentinels agree is the master now."""
        seen = {sentinel.master_port_seen() for sentinel in self.sentinels if sentinel.running}
        if len(seen) != 1 or None in seen:
            raise ServerFailed(f"the sentinels disagree on the master: ports {seen}")
        port = seen.pop()
        return next(server for server in self.servers if server.port == port)

    def wait_for_failover(self, old_master: RedisServer, timeout: float = 30) -> RedisServer:
        """The replica the sentinels promoted once ``old_master`` died, once it takes writes."""

        def promoted() -> bool:
            seen = {s.master_port_seen() for s in self.sentinels if s.running}
            if len(seen) != 1 or old_master.port in seen or None in seen:
                return False
            port = next(iter(seen))
            server = next((server for server in self.servers if server.port == port), None)
            return server is not None and _replication(server).get("role") == "master"

        wait_until(promoted, "the sentinels promote a replica", timeout)
        return self.current_master()

    def stop(self) -> None:
        for process in [*reversed(self.sentinels), *reversed(self.replicas), self.master]:
            process.stop()


@contextmanager
def nats_cluster(binaries: Binaries, base_dir: Path) -> Iterator[NatsCluster]:
    cluster = NatsCluster(binaries.nats_server, base_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def redis_sentinel_group(binaries: Binaries, base_dir: Path) -> Iterator[RedisSentinelGroup]:
    group = RedisSentinelGroup(binaries.redis_server, base_dir)
    try:
        group.start()
        yield group
    finally:
        group.stop()
