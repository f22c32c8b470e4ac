"""The production data layer, clustered on loopback: signing and counting go on while a NATS
node or the Redis master dies, and every signer who got an answer is counted exactly once.

intake and counter run as real processes (as in production: several server URLs, a stream at
3 replicas, Redis through Sentinel); clients retry on 503 and on connection errors, as the
site's script does.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import nats
import nats.errors
import pytest
import redis

from paraphe_common.marks import signed_marks
from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.streams import SIGNATURES, petitions_bucket
from paraphe_common.tokens import SIGNER
from paraphe_devstack.binaries import Binaries
from paraphe_devstack.checks import mid_run, public_count, until_ok
from paraphe_devstack.clusters import (
    SENTINEL_MASTER,
    NatsCluster,
    RedisSentinelGroup,
    nats_cluster,
    redis_sentinel_group,
)
from paraphe_devstack.keys import SignerKey, SigningKey
from paraphe_devstack.servers import LOCALHOST, NatsServer, RedisServer, free_port
from paraphe_devstack.stack import SERVICES, ServiceProcess
from paraphe_signature_intake.signatures import dedupe_key

RETRYABLE = {502, 503, 504}
SIGNERS = 3_000


class SigningServices:
    """signature-intake and counter, started against the data layer a test gives them."""

    def __init__(
        self,
        log_dir: Path,
        *,
        database_url: str,
        nats_servers: NatsCluster | NatsServer,
        stream_replicas: int,
        redis: dict[str, str],
        signing_key: SigningKey,
        signer_key: SignerKey,
    ) -> None:
        self.nats_servers = nats_servers
        self.stream_replicas = stream_replicas
        self.signer_key = signer_key
        common = {
            "PARAPHE_HOST": LOCALHOST,
            "PARAPHE_DATABASE_URL": database_url,
            "PARAPHE_NATS_URL": nats_servers.url,
            "PARAPHE_NATS_STREAM_REPLICAS": str(stream_replicas),
            "PARAPHE_TOKEN_VERIFICATION_KEYS": signing_key.public_jwks,
            "PARAPHE_SIGNER_TOKEN_KEYS": signer_key.secret_jwks,
            "PARAPHE_SIGNER_TOKEN_KEY_ID": signer_key.kid,
            **redis,
        }
        if nats_servers.tls is not None:
            common["PARAPHE_NATS_TLS_CA"] = str(nats_servers.tls.ca)
        self.env = {"PATH": "/usr/bin:/bin", **common}
        self.processes: dict[str, ServiceProcess] = {}
        for spec in SERVICES:
            if spec.name in {"signature-intake", "counter"}:
                port = free_port()
                env = self.env | {"PARAPHE_PORT": str(port)}
                if nats_servers.passwords is not None:  # each connects as its own NATS user
                    env["PARAPHE_NATS_PASSWORD"] = nats_servers.passwords[spec.name]
                self.processes[spec.name] = ServiceProcess(spec, port, env, log_dir)

    def url(self, service: str, path: str) -> str:
        return f"http://{LOCALHOST}:{self.processes[service].port}{path}"

    async def start(self) -> None:
        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "paraphe_counter", "migrate", env=self.env
        )
        assert await migrate.wait() == 0
        try:
            for process in self.processes.values():
                process.start(wait=False)
            for process in self.processes.values():
                await asyncio.to_thread(process.wait_ready)
        except BaseException:
            self.stop()  # the others too, and their log files
            raise

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    async def open_petition(self) -> str:
        """A published petition, as petition-catalog publishes its state."""
        petition = str(uuid.uuid4())
        client = await self.nats_servers.admin_connection()
        try:
            bucket = await petitions_bucket(client.jetstream(), self.stream_replicas)
            state = PetitionState("published", time.time() + 86400)
            await publish_state(bucket, petition, state)
        finally:
            await client.close()
        # intake's view follows the bucket: until it knows the petition.
        token = next(iter(self.tokens(1, "view-probe-").values()))
        url = self.url("signature-intake", f"/api/petitions/{petition}/signatures/me")
        await until_ok(url, {"Authorization": f"Bearer {token}"})
        return petition

    def tokens(self, count: int, prefix: str) -> dict[str, str]:
        """Signer keys and their tokens, as auth-gateway issues them after FranceConnect."""
        issuer = self.signer_key.issuer()
        return {
            f"{prefix}{n:06d}": issuer.issue(SIGNER, f"{prefix}{n:06d}", 3600) for n in range(count)
        }

    async def campaign(
        self,
        petition: str,
        tokens: list[str],
        *,
        concurrency: int = 48,
        chaos: Callable[[list[int]], Awaitable[None]] | None = None,
    ) -> list[int]:
        """Every token signs once, as a browser would (retrying 5xx and lost connections);
        the answers' statuses. ``chaos`` runs meanwhile, seeing the statuses so far."""
        url = self.url("signature-intake", f"/api/petitions/{petition}/signatures")
        queue: asyncio.Queue[str] = asyncio.Queue()
        for token in tokens:
            queue.put_nowait(token)
        statuses: list[int] = []
        deadline = time.monotonic() + 90
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def sign(token: str) -> int:
                headers = {"Authorization": f"Bearer {token}"}
                pause = 0.05
                while time.monotonic() < deadline:
                    try:
                        async with session.post(url, headers=headers) as answer:
                            await answer.read()
                            if answer.status not in RETRYABLE:
                                return answer.status
                    except (aiohttp.ClientError, TimeoutError):
                        pass
                    # Backing off keeps a person under intake's limit of attempts per minute.
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 1.0)
                raise TimeoutError("a signature was never answered")

            async def worker() -> None:
                while not queue.empty():
                    statuses.append(await sign(queue.get_nowait()))

            workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
            if chaos is not None:
                await chaos(statuses)
            await asyncio.gather(*workers)
        return statuses

    async def count(self, petition: str, expected: int, within: float = 60.0) -> int:
        """The public count once it reaches ``expected`` (or where it stopped)."""
        url = self.url("counter", f"/api/petitions/{petition}/count")
        return await public_count(url, expected, within)

    async def assert_each_counted_once(
        self, database_url: str, petition: str, signers: list[str]
    ) -> None:
        assert await self.count(petition, len(signers)) == len(signers)
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT encode(dedupe_key, 'hex') AS key FROM counter.signatures"
                " WHERE petition_id = $1",
                petition,
            )
        finally:
            await connection.close()
        stored = sorted(row["key"] for row in rows)
        assert stored == sorted(dedupe_key(signer, petition) for signer in signers)


@pytest.fixture
def cluster(binaries: Binaries, tmp_path: Path) -> Iterator[NatsCluster]:
    with nats_cluster(binaries, tmp_path / "nats") as started:
        yield started


@pytest.fixture
def sentinel_group(binaries: Binaries, tmp_path: Path) -> Iterator[RedisSentinelGroup]:
    with redis_sentinel_group(binaries, tmp_path / "redis") as started:
        yield started


async def signatures_stream(cluster: NatsCluster) -> dict[str, object]:
    """The SIGNATURES stream's replication: its leader and each replica's state."""
    client = await cluster.admin_connection()
    try:
        info = await client.jetstream().stream_info(SIGNATURES)
    finally:
        await client.close()
    assert info.cluster is not None
    return {
        "replicas": info.config.num_replicas,
        "leader": info.cluster.leader,
        "current": sorted(
            [info.cluster.leader or ""]
            + [str(peer.name) for peer in info.cluster.replicas or [] if peer.current]
        ),
    }


async def stream_once(
    cluster: NatsCluster,
    wanted: Callable[[dict[str, object]], bool],
    what: str,
    within: float = 30.0,
) -> dict[str, object]:
    """The SIGNATURES stream's replication once ``wanted`` holds of it. Elections and a
    restarted server's catching up happen in the background: until they are over, no server
    may answer, or an answer may still show the replicas as they were (seen with nats-server
    2.14: the leader listed twice among the current replicas)."""
    deadline = time.monotonic() + within
    stream: dict[str, object] | None = None
    while time.monotonic() < deadline:
        try:
            stream = await signatures_stream(cluster)
        except (nats.errors.Error, TimeoutError, OSError):
            stream = None  # no leader to answer yet
        if stream is not None and wanted(stream):
            return stream
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within:.0f} s: {what} (last seen: {stream})")


async def new_leader(cluster: NatsCluster, *, instead_of: str) -> str:
    """The SIGNATURES stream's leader once it is another node than ``instead_of``."""
    stream = await stream_once(
        cluster,
        lambda stream: stream["leader"] not in (None, "", instead_of),
        f"a leader other than {instead_of}",
    )
    return str(stream["leader"])


async def test_signing_survives_the_loss_and_return_of_the_signatures_stream_leader(
    cluster: NatsCluster,
    redis_server: RedisServer,
    database_url: str,
    signing_key: SigningKey,
    signer_key: SignerKey,
    tmp_path: Path,
) -> None:
    services = SigningServices(
        tmp_path / "logs",
        database_url=database_url,
        nats_servers=cluster,
        stream_replicas=3,
        redis={"PARAPHE_REDIS_URL": redis_server.url},
        signing_key=signing_key,
        signer_key=signer_key,
    )
    # As production's: clients must speak TLS, the routes are mutual TLS and all up.
    for node in cluster.nodes:
        assert node.greeting()["tls_required"] is True
        routes = node.monitor("varz")["cluster"]
        assert (routes["tls_required"], routes["tls_verify"]) == (True, True)
        deadline = time.monotonic() + 10  # (a route may still be joining)
        while node.monitor("routez")["num_routes"] < len(cluster.nodes) - 1:
            assert time.monotonic() < deadline, f"{node.server_name}: routes over TLS not all up"
            await asyncio.sleep(0.1)
    await services.start()
    try:
        before = await signatures_stream(cluster)
        assert before["replicas"] == 3
        assert before["current"] == ["nats-0", "nats-1", "nats-2"]
        leader = cluster.node(str(before["leader"]))
        petition = await services.open_petition()
        tokens = services.tokens(SIGNERS, "nats-cluster-")

        elected: list[str] = []

        async def kill_the_leader_then_restart_it(answered: list[int]) -> None:
            await mid_run(answered, SIGNERS // 5, SIGNERS)
            leader.kill()  # kill -9: whatever it held in memory is gone
            # The other two elect a leader among themselves before it comes back (else it
            # could be elected again, and no failover would have been tried).
            elected.append(await new_leader(cluster, instead_of=leader.server_name))
            await asyncio.to_thread(leader.start)

        statuses = await services.campaign(
            petition, list(tokens.values()), chaos=kill_the_leader_then_restart_it
        )
        assert set(statuses) <= {200, 202}
        await services.assert_each_counted_once(database_url, petition, list(tokens))
        assert len(elected) == 1  # the leader was killed, and another one took the stream over
        # The restarted node catches up: three current replicas again.
        await stream_once(
            cluster,
            lambda stream: stream["current"] == ["nats-0", "nats-1", "nats-2"],
            "the three replicas current",
        )
        # Counting goes on after the node's return, and repeats are still recognised.
        again = await services.campaign(petition, list(tokens.values())[:500])
        assert set(again) == {200}
        # The server intake is connected to goes away: intake moves to another of its URLs.
        holder = next(
            node
            for node in cluster.nodes
            if any(
                connection.get("name") == "signature-intake"
                for connection in node.monitor("connz").get("connections", [])
            )
        )
        holder.kill()
        late = services.tokens(300, "nats-cluster-late-")
        assert set(await services.campaign(petition, list(late.values()))) == {202}
        await asyncio.to_thread(holder.start)
        await services.assert_each_counted_once(database_url, petition, [*tokens, *late])
        # Failovers and reconnections included, the services never lacked a NATS right.
        refused = [line for node in cluster.nodes for line in node.refusals()]
        assert not refused, "NATS refused the services:\n" + "\n".join(refused[-20:])
    finally:
        services.stop()


async def test_signing_survives_a_redis_master_failover_and_nobody_signs_twice(
    sentinel_group: RedisSentinelGroup,
    nats_server: NatsServer,
    database_url: str,
    signing_key: SigningKey,
    signer_key: SignerKey,
    tmp_path: Path,
) -> None:
    services = SigningServices(
        tmp_path / "logs",
        database_url=database_url,
        nats_servers=nats_server,
        stream_replicas=1,
        redis={
            "PARAPHE_REDIS_SENTINELS": sentinel_group.sentinel_addresses,
            "PARAPHE_REDIS_SENTINEL_MASTER": SENTINEL_MASTER,
            # The servers' and the sentinels' password, as production's Secret paraphe-redis,
            # and their authority: every connection, to a sentinel or a server, is TLS.
            "PARAPHE_REDIS_PASSWORD": sentinel_group.password,
            "PARAPHE_REDIS_TLS_CA": str(sentinel_group.tls.ca),
        },
        signing_key=signing_key,
        signer_key=signer_key,
    )
    await services.start()
    try:
        old_master = sentinel_group.current_master()
        # As production's: the servers and the sentinels take no client in clear (the services
        # and the sentinels' own links are TLS).
        ports = [s.port for s in sentinel_group.servers] + [
            s.port for s in sentinel_group.sentinels
        ]
        for port in ports:
            with (
                redis.Redis(
                    LOCALHOST, port, password=sentinel_group.password, socket_timeout=2
                ) as in_clear,
                pytest.raises(redis.ConnectionError),
            ):
                in_clear.ping()
        petition = await services.open_petition()
        tokens = services.tokens(SIGNERS, "sentinel-")
        # Each person tries twice; the repeats come while the failover happens.
        attempts = [*tokens.values(), *tokens.values()]
        promoted: list[RedisServer] = []

        async def kill_the_master(answered: list[int]) -> None:
            await mid_run(answered, SIGNERS // 5, SIGNERS)  # while first attempts go on
            old_master.kill()
            promoted.append(await asyncio.to_thread(sentinel_group.wait_for_failover, old_master))

        statuses = await services.campaign(petition, attempts, chaos=kill_the_master)
        assert set(statuses) <= {200, 202}
        # Every first attempt is accepted. A repeat is told it has signed, or, when it finds
        # its first attempt still pending (the promotion was lost with the master), accepted
        # again while JetStream drops the duplicate: either way, counted once.
        assert statuses.count(202) >= SIGNERS
        await services.assert_each_counted_once(database_url, petition, list(tokens))
        # intake writes its marks to the promoted replica now, and nobody is counted twice.
        third = await services.campaign(petition, list(tokens.values()))
        assert set(third) <= {200, 202}
        await services.assert_each_counted_once(database_url, petition, list(tokens))
        new_master = promoted[0]
        assert new_master.port != old_master.port
        client = new_master.async_client()
        try:
            marks = await signed_marks(client, petition)
        finally:
            await client.aclose()
        assert len(marks) == SIGNERS
        readyz = services.url("signature-intake", "/readyz")
        async with aiohttp.ClientSession() as session, session.get(readyz) as answer:
            assert answer.status == 200
    finally:
        services.stop()
