"""PostgreSQL, Redis and NATS: one cleanup context each, opened before ``yield``, closed after.

A context that cannot reach its dependency at start raises :class:`DependencyUnavailable`, which
the runner turns into one line on stderr. Each context registers a readiness check, so
``/readyz`` turns 503 while the dependency is gone and 200 once it is back; the clients
reconnect by themselves, without a restart. Closing falls back to a hard close, and says so,
when the graceful one fails or takes too long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import nats
import redis.asyncio as aioredis
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from paraphe_common.health import READINESS
from paraphe_common.settings import (
    NatsSettings,
    PostgresSettings,
    RedisSettings,
    describe_endpoint,
)

log = logging.getLogger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


@contextlib.asynccontextmanager
async def running(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """``work`` as a task while the block lasts (a service's loop, between a cleanup context's
    start and its end): cancelled, and awaited, when the block ends."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


POSTGRES = web.AppKey("postgres_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
NATS = web.AppKey("nats", NatsClient)
JETSTREAM = web.AppKey("jetstream", JetStreamContext)

CLOSE_TIMEOUT = 10.0


class DependencyUnavailable(Exception):
    """A dependency the service needs did not answer at start."""

    def __init__(self, dependency: str, endpoint: str, reason: BaseException | str) -> None:
        self.dependency = dependency
        self.endpoint = endpoint
        why = reason if isinstance(reason, str) else (str(reason) or type(reason).__name__)
        super().__init__(f"{dependency} at {endpoint} is unreachable: {why}")


def session_settings(settings: PostgresSettings) -> dict[str, str]:
    """What every session of the services sets on the server."""
    milliseconds = round(settings.database_idle_in_transaction_timeout * 1000)
    return {"idle_in_transaction_session_timeout": str(milliseconds)}


def postgres(settings: PostgresSettings) -> CleanupContext:
    dsn = settings.database_url.get_secret_value()
    endpoint = describe_endpoint(dsn)

    async def postgres_pool(app: web.Application) -> AsyncIterator[None]:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=settings.database_pool_min_size,
                max_size=settings.database_pool_max_size,
                timeout=settings.database_connect_timeout,
                server_settings=session_settings(settings),
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DependencyUnavailable("PostgreSQL", endpoint, exc) from exc
        app[POSTGRES] = pool
        app[READINESS].add("postgresql", lambda: pool.fetchval("SELECT 1"))
        try:
            yield
        finally:
            try:
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
            except (TimeoutError, asyncpg.InterfaceError) as exc:
                # Connections still busy after the grace period belong to requests that will
                # not finish now; terminating them is the only way left to stop.
                log.warning("PostgreSQL pool did not close cleanly (%r); terminating it", exc)
                pool.terminate()

    return postgres_pool


def redis_tls_options(ca: Path | None) -> dict[str, Any]:
    """What a redis-py connection needs to speak TLS to a server of the authority ``ca``, the
    certificate required and the name connected to checked against it; nothing without an
    authority. The services' connections and the local tools' (paraphe_devstack) alike."""
    if ca is None:
        return {}
    return {"ssl_ca_certs": str(ca), "ssl_cert_reqs": "required", "ssl_check_hostname": True}


def _redis_client(settings: RedisSettings) -> tuple[aioredis.Redis, list[aioredis.Redis], str]:
    """The client, the sentinel clients behind it (to close too), and where it points."""
    password = (
        settings.redis_password.get_secret_value() if settings.redis_password is not None else None
    )
    tls = redis_tls_options(settings.redis_tls_ca)
    if settings.redis_url is not None:
        url = settings.redis_url.get_secret_value()
        # TLS by the authority's setting, not by the scheme: redis:// does not turn it off.
        in_tls: dict[str, Any] = {"connection_class": SSLConnection, **tls} if tls else {}
        # A password in the URL wins over PARAPHE_REDIS_PASSWORD.
        client = aioredis.from_url(
            url,
            password=password,
            socket_connect_timeout=settings.redis_connect_timeout,
            max_connections=settings.redis_max_connections,
            **in_tls,
        )
        return client, [], describe_endpoint(url)
    common = {"socket_connect_timeout": settings.redis_connect_timeout, "password": password}
    if tls:
        common |= {"ssl": True} | tls  # for the sentinels, and for the servers they name
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_addresses,
        sentinel_kwargs=common,
        db=settings.redis_database,
        **common,
    )
    endpoint = f"master {settings.redis_sentinel_master} through sentinels " + ",".join(
        settings.redis_sentinels
    )
    master = sentinel.master_for(
        settings.redis_sentinel_master, max_connections=settings.redis_max_connections
    )
    return master, sentinel.sentinels, endpoint


def redis(settings: RedisSettings) -> CleanupContext:
    """A Redis client: to one server, or to the master a group of sentinels designates."""

    async def redis_client(app: web.Application) -> AsyncIterator[None]:
        client, sentinels, endpoint = _redis_client(settings)

        async def close() -> None:
            for each in (client, *sentinels):
                await each.aclose()

        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await close()
            raise DependencyUnavailable("Redis", endpoint, exc) from exc
        app[REDIS] = client
        app[READINESS].add("redis", client.ping)
        try:
            yield
        finally:
            try:
                await asyncio.wait_for(close(), CLOSE_TIMEOUT)
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("Redis client did not close cleanly: %r", exc)

    return redis_client


def inbox_prefix(service: str) -> str:
    """Where a service's replies are delivered: ``_INBOX.<service>``, and ``.>`` below."""
    return f"_INBOX.{service}"


def nats_connection(settings: NatsSettings, *, name: str) -> CleanupContext:
    """A NATS connection with JetStream, drained on shutdown so nothing in flight is lost."""
    servers = settings.nats_servers
    endpoint = describe_endpoint(",".join(servers))

    async def nats_client(app: web.Application) -> AsyncIterator[None]:
        client = NatsClient()

        async def on_error(exc: Exception) -> None:
            log.warning("NATS error: %r", exc)

        async def on_disconnected() -> None:
            if not (client.is_draining or client.is_closed):
                log.warning("NATS connection lost; reconnecting")

        async def on_reconnected() -> None:
            log.info("NATS connection restored")

        options: dict[str, Any] = {
            "servers": servers,
            "name": name,
            # Replies (acks, JetStream's answers, pulled messages) come to inboxes under the
            # service's name: its NATS user may subscribe there and nowhere else.
            "inbox_prefix": inbox_prefix(name),
            "connect_timeout": settings.nats_connect_timeout,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "error_cb": on_error,
            "disconnected_cb": on_disconnected,
            "reconnected_cb": on_reconnected,
        }
        if settings.nats_password is not None:
            options |= {"user": name, "password": settings.nats_password.get_secret_value()}
        if settings.nats_tls_ca is not None:
            options["tls"] = ssl.create_default_context(cafile=str(settings.nats_tls_ca))
        # Each try may take a timeout to connect, one for the greeting, one for TLS's handshake.
        tries = 2 * len(servers)
        deadline = tries * (3 * settings.nats_connect_timeout + options["reconnect_time_wait"])
        try:
            # The first connection gets two tries (nats-py counts attempts beyond the first);
            # once connected, a lost connection is retried forever. Bounded: after a failed TLS
            # handshake, nats-py waits forever for the connection to close (nats.py#718).
            async with asyncio.timeout(deadline):
                await client.connect(**options | {"max_reconnect_attempts": 1})
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            # "no servers available" says less than the last connection error behind it.
            raise DependencyUnavailable("NATS", endpoint, client.last_error or exc) from exc
        client.options["max_reconnect_attempts"] = -1
        jetstream = client.jetstream()
        app[NATS] = client
        app[JETSTREAM] = jetstream

        async def jetstream_answers() -> None:
            if not client.is_connected:
                raise ConnectionError("NATS is not connected")
            await jetstream.account_info()

        app[READINESS].add("nats", jetstream_answers)
        try:
            yield
        finally:
            try:
                await asyncio.wait_for(client.drain(), CLOSE_TIMEOUT)
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                log.warning("NATS connection did not drain (%r); closing it", exc)
                await client.close()

    return nats_client
