"""The catalogue's retention pass on a real, migrated PostgreSQL: authors' personal data is
erased a period after their last petition ended; only published names stay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import pytest

import paraphe_petition_catalog
from paraphe_common.migrations import upgrade
from paraphe_petition_catalog.authors import AuthorIdentity, record_author
from paraphe_petition_catalog.retention import (
    ANONYMOUS_FAMILY_NAME,
    ANONYMOUS_GIVEN_NAMES,
    anonymise_authors_past_retention,
)

MIGRATIONS = Path(paraphe_petition_catalog.__file__).parent / "migrations"
YEAR = timedelta(days=365)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    upgrade(database_url, "catalog", MIGRATIONS)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def author(pool: asyncpg.Pool, name: str, *, known_for: str = "3 years") -> str:
    """An author who signed in once, ``known_for`` ago."""
    author_id = name.ljust(64, "0")[:64]
    await pool.execute(
        """
        INSERT INTO catalog.authors (id, given_names, family_name, birthdate, email, created_at,
            signed_in_at)
        VALUES ($1, $2, 'Durand', '1980-04-02', $2 || '@example.fr',
            now() - $3::text::interval, now() - $3::text::interval)
        """,
        author_id,
        name,
        known_for,
    )
    return author_id


async def petition(
    pool: asyncpg.Pool, author_id: str, status: str, *, ended: str, published: bool
) -> None:
    """A petition whose last move was ``ended`` ago."""
    petition_id = await pool.fetchval(
        """
        INSERT INTO catalog.petitions (author_id, title, body, status, created_at, published_at,
            closes_at)
        VALUES ($1, 'Une pétition assez longue', 'Un texte de pétition assez long pour passer.',
            $2, now() - $3::text::interval - interval '1 month',
            CASE WHEN $4 THEN now() - $3::text::interval - interval '7 months' END,
            CASE WHEN $4 THEN now() - $3::text::interval END)
        RETURNING id
        """,
        author_id,
        status,
        ended,
        published,
    )
    await pool.execute(
        "INSERT INTO catalog.transitions (petition_id, from_status, to_status, actor, at)"
        " VALUES ($1, 'published', $2, 'deadline', now() - $3::text::interval)",
        petition_id,
        status,
        ended,
    )


async def identity(pool: asyncpg.Pool, author_id: str) -> dict[str, object]:
    row = await pool.fetchrow(
        "SELECT given_names, family_name, birthdate, email, anonymised_at IS NOT NULL AS gone"
        " FROM catalog.authors WHERE id = $1",
        author_id,
    )
    assert row is not None
    return dict(row)


async def test_authors_are_anonymised_a_period_after_their_last_petition_ended(
    pool: asyncpg.Pool,
) -> None:
    published_long_ago = await author(pool, "camille")
    await petition(pool, published_long_ago, "closed", ended="2 years", published=True)
    rejected_long_ago = await author(pool, "jean")
    await petition(pool, rejected_long_ago, "rejected", ended="2 years", published=False)
    closed_recently = await author(pool, "amina")
    await petition(pool, closed_recently, "closed", ended="2 months", published=True)
    still_open = await author(pool, "chloe")
    await petition(pool, still_open, "closed", ended="2 years", published=True)
    await petition(pool, still_open, "published", ended="3 years", published=True)
    new_author = await author(pool, "lea", known_for="1 month")
    never_deposited = await author(pool, "hugo")

    assert await anonymise_authors_past_retention(pool, YEAR) == 3

    # Published names stay on the petition's page; everything else about the person goes.
    assert await identity(pool, published_long_ago) == {
        "given_names": "camille", "family_name": "Durand", "birthdate": None, "email": None,
        "gone": True,
    }  # fmt: skip
    for unpublished in (rejected_long_ago, never_deposited):
        assert await identity(pool, unpublished) == {
            "given_names": ANONYMOUS_GIVEN_NAMES, "family_name": ANONYMOUS_FAMILY_NAME,
            "birthdate": None, "email": None, "gone": True,
        }  # fmt: skip
    # Within the period, or with a petition still open, or just arrived: kept whole.
    for kept in (closed_recently, still_open, new_author):
        assert (await identity(pool, kept))["email"] is not None
        assert (await identity(pool, kept))["gone"] is False
    # A second pass finds nobody due: the job is idempotent.
    assert await anonymise_authors_past_retention(pool, YEAR) == 0


async def test_the_period_is_configuration(pool: asyncpg.Pool) -> None:
    closed = await author(pool, "paul")
    await petition(pool, closed, "closed", ended="2 months", published=True)
    assert await anonymise_authors_past_retention(pool, YEAR) == 0
    assert await anonymise_authors_past_retention(pool, timedelta(days=30)) == 1
    assert (await identity(pool, closed))["birthdate"] is None


async def test_an_author_signing_in_again_is_kept_for_another_period(pool: asyncpg.Pool) -> None:
    # First seen long ago, their petition ended long ago: due, until they come back.
    returning = await author(pool, "ines")
    await petition(pool, returning, "closed", ended="2 years", published=True)
    await record_author(
        pool,
        returning,
        AuthorIdentity(
            given_names="Inès", family_name="Durand", birthdate="1980-04-02",
            email="ines@example.fr",
        ),
    )  # fmt: skip
    # Signed in to deposit a new petition: nothing of them may go before they write it.
    assert await anonymise_authors_past_retention(pool, YEAR) == 0
    assert await identity(pool, returning) == {
        "given_names": "Inès", "family_name": "Durand", "birthdate": date(1980, 4, 2),
        "email": "ines@example.fr", "gone": False,
    }  # fmt: skip


async def test_a_draft_written_within_the_period_keeps_its_author(pool: asyncpg.Pool) -> None:
    writing = await author(pool, "noah")
    await pool.execute(
        """
        INSERT INTO catalog.petitions (author_id, title, body, created_at, updated_at)
        VALUES ($1, 'Une pétition assez longue', 'Un texte de pétition assez long pour passer.',
            now() - interval '2 years', now() - interval '1 month')
        """,
        writing,
    )
    assert await anonymise_authors_past_retention(pool, YEAR) == 0
    assert (await identity(pool, writing))["gone"] is False
    await pool.execute(
        "UPDATE catalog.petitions SET updated_at = now() - interval '13 months'"
        " WHERE author_id = $1",
        writing,
    )
    assert await anonymise_authors_past_retention(pool, YEAR) == 1
