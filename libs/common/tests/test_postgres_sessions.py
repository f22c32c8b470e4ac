"""The services' PostgreSQL sessions: a transaction its client left open cannot hold its row
locks for good."""

from __future__ import annotations

import asyncpg
from pytest_aiohttp import AiohttpClient

from paraphe_common.app import create_service_app
from paraphe_common.resources import POSTGRES, postgres, session_settings
from paraphe_common.settings import PostgresSettings, ServiceSettings


class Settings(ServiceSettings, PostgresSettings):
    pass


async def test_a_transaction_left_open_is_ended_by_the_server_and_its_lock_freed(
    aiohttp_client: AiohttpClient, database_url: str
) -> None:
    settings = Settings(database_url=database_url, database_idle_in_transaction_timeout=1)
    client = await aiohttp_client(create_service_app("example", settings, [postgres(settings)]))
    pool: asyncpg.Pool = client.app[POSTGRES]
    assert await pool.fetchval("SHOW idle_in_transaction_session_timeout") == "1s"
    await pool.execute("CREATE TABLE held (id int PRIMARY KEY)")
    await pool.execute("INSERT INTO held VALUES (1)")
    # A session as the services open theirs (a connection of its own: the pool would take
    # back, at a moment of its choosing, the one the server ends).
    frozen = await asyncpg.connect(database_url, server_settings=session_settings(settings))
    try:
        await frozen.execute("BEGIN")
        await frozen.execute("SELECT 1 FROM held WHERE id = 1 FOR UPDATE")
        # The client stops talking (frozen, cut off) with the row locked; another session
        # waiting for the lock gets it once the server has ended the idle transaction.
        async with pool.acquire() as other, other.transaction():
            await other.execute("SET LOCAL lock_timeout = '10s'")
            await other.execute("SELECT 1 FROM held WHERE id = 1 FOR UPDATE")
    finally:
        await frozen.close()


async def test_the_idle_timeout_defaults_to_a_minute(
    aiohttp_client: AiohttpClient, database_url: str
) -> None:
    settings = Settings(database_url=database_url)
    client = await aiohttp_client(create_service_app("example", settings, [postgres(settings)]))
    shown = await client.app[POSTGRES].fetchval("SHOW idle_in_transaction_session_timeout")
    assert shown == "1min"
