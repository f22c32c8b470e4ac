"""The catalogue on a migrated database holding the demo petitions, with real NATS and Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import nats
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from nats.aio.client import Client as NatsClient
from pytest_aiohttp import AiohttpClient

from paraphe_common.migrations import upgrade
from paraphe_common.tokens import AUTHOR, STAFF, TokenIssuer
from paraphe_devstack.keys import SigningKey
from paraphe_devstack.servers import NatsServer, RedisServer
from paraphe_petition_catalog.__main__ import MIGRATIONS
from paraphe_petition_catalog.app import create_app
from paraphe_petition_catalog.demo import DEMO_PETITIONS, load_demo_petitions
from paraphe_petition_catalog.settings import PetitionCatalogSettings

Client = TestClient[web.Request, web.Application]
MakeCatalog = Callable[..., Awaitable[Client]]

AUTHOR_A = "a" * 64
AUTHOR_B = "b" * 64


class Tokens:
    """Platform tokens as auth-gateway would issue them, signed with the session's test key."""

    def __init__(self, key: SigningKey) -> None:
        self._issuer = TokenIssuer(key.private_pem, key.kid)

    def author(self, author_id: str = AUTHOR_A) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._issuer.issue(AUTHOR, author_id, 300)}"}

    def staff(self, *roles: str, subject: str = "agent-1") -> dict[str, str]:
        token = self._issuer.issue(STAFF, subject, 300, roles=frozenset(roles))
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(signing_key: SigningKey) -> Tokens:
    return Tokens(signing_key)


@pytest.fixture
def migrated_database(database_url: str) -> str:
    upgrade(database_url, "catalog", MIGRATIONS)
    return database_url


@pytest.fixture
async def db(migrated_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of our own on the catalogue's database, to look behind the API."""
    pool = await asyncpg.create_pool(migrated_database, min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture
async def make_catalog(
    migrated_database: str,
    nats_server: NatsServer,
    redis_server: RedisServer,
    signing_key: SigningKey,
    aiohttp_client: AiohttpClient,  # last: the apps stop before the servers they use
) -> MakeCatalog:
    """A catalogue app; settings may be overridden (intervals, committees...)."""

    async def make(**overrides: Any) -> Client:
        settings = PetitionCatalogSettings.model_validate(
            {
                "database_url": migrated_database,
                "nats_url": nats_server.url,
                "redis_url": redis_server.url,
                "token_verification_keys": signing_key.public_jwks,
                "public_url": "http://localhost:8080",  # the origin forms must come from
                "outbox_interval": 0.2,
                # The tests run the deadline and count passes themselves unless they ask.
                "deadline_check_interval": 3600,
                "signature_count_interval": 3600,
            }
            | overrides
        )
        return await aiohttp_client(create_app(settings))

    return make


@pytest.fixture
async def catalog(make_catalog: MakeCatalog, migrated_database: str) -> Client:
    assert await load_demo_petitions(migrated_database) == len(DEMO_PETITIONS)
    return await make_catalog()


@pytest.fixture
async def authors(db: asyncpg.Pool) -> tuple[str, str]:
    """Two authors whose identities auth-gateway handed over."""
    for author_id, given, family in ((AUTHOR_A, "Chloé", "Bernard"), (AUTHOR_B, "Jean", "Martin")):
        await db.execute(
            "INSERT INTO catalog.authors (id, given_names, family_name, birthdate, email)"
            " VALUES ($1, $2, $3, '1990-01-01', $4)",
            author_id,
            given,
            family,
            f"{family.lower()}@example.org",
        )
    return AUTHOR_A, AUTHOR_B


@pytest.fixture
async def nats_client(nats_server: NatsServer) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.drain()


AddPetition = Callable[..., Awaitable[uuid.UUID]]


@pytest.fixture
def add_petition(db: asyncpg.Pool, authors: tuple[str, str]) -> AddPetition:
    """A petition written straight into the database, in any status, with the thresholds it
    reached flagged."""

    async def add(
        status: str = "published",
        *,
        title: str = "Une pétition pour les essais du catalogue",
        body: str = "Un texte suffisamment long pour être une pétition valable.",
        committee: str | None = "lois",
        author_id: str = AUTHOR_A,
        published_days_ago: float = 1,
        open_days: float = 180,
        signature_count: int = 0,
        reached: tuple[int, ...] = (),
    ) -> uuid.UUID:
        published = status in ("published", "closed", "hidden")
        petition_id: uuid.UUID = await db.fetchval(
            """
            INSERT INTO catalog.petitions (author_id, title, body, status, committee,
                submitted_at, published_at, closes_at, closed_at, signature_count)
            SELECT $1, $2, $3, $4, $5,
                CASE WHEN $4 <> 'draft' THEN at END,
                CASE WHEN $6 THEN at END,
                CASE WHEN $6 THEN at + make_interval(secs => $8 * 86400) END,
                CASE WHEN $4 = 'closed' THEN now() END,
                $9
            FROM (SELECT now() - make_interval(secs => $7 * 86400) AS at) AS t
            RETURNING id
            """,
            author_id,
            title,
            body,
            status,
            committee if published else None,
            published,
            published_days_ago,
            open_days,
            signature_count,
        )
        for threshold in reached:  # as counter's threshold-reached events leave them
            await db.execute(
                "INSERT INTO catalog.thresholds_reached"
                " (petition_id, threshold, signatures, reached_at) VALUES ($1, $2, $3, now())",
                petition_id,
                threshold,
                threshold,
            )
        return petition_id

    return add
