import asyncpg
import pytest

from paraphe_common.migrations import upgrade
from paraphe_counter.__main__ import MIGRATIONS

PETITION = "6f1c1d0e-8a53-4b8e-9a36-1d7f1c1c0001"


async def test_a_signature_is_stored_once_per_petition_and_key(database_url: str) -> None:
    upgrade(database_url, "counter", MIGRATIONS)
    upgrade(database_url, "counter", MIGRATIONS)  # a second run finds nothing to do
    connection = await asyncpg.connect(database_url)
    try:
        insert = (
            "INSERT INTO counter.signatures (petition_id, dedupe_key, signed_at)"
            " VALUES ($1, $2, date_trunc('hour', now(), 'UTC')) ON CONFLICT DO NOTHING"
        )
        assert await connection.execute(insert, PETITION, b"k" * 32) == "INSERT 0 1"
        assert await connection.execute(insert, PETITION, b"k" * 32) == "INSERT 0 0"
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(insert, PETITION, b"short")
    finally:
        await connection.close()


async def test_a_threshold_is_recorded_once_and_waits_to_be_published(database_url: str) -> None:
    upgrade(database_url, "counter", MIGRATIONS)
    connection = await asyncpg.connect(database_url)
    try:
        insert = (
            "INSERT INTO counter.thresholds_reached (petition_id, threshold, signatures)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING published_at"
        )
        first = await connection.fetch(insert, PETITION, 100_000, 100_042)
        assert [row["published_at"] for row in first] == [None]
        assert await connection.fetch(insert, PETITION, 100_000, 100_043) == []
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(insert, PETITION, 500_000, 499_999)
    finally:
        await connection.close()


async def test_signature_times_finer_than_the_hour_are_refused(database_url: str) -> None:
    upgrade(database_url, "counter", MIGRATIONS)
    connection = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="to_the_hour"):
            await connection.execute(
                "INSERT INTO counter.signatures (petition_id, dedupe_key, signed_at)"
                " VALUES ($1, $2, '2026-11-23 18:42:17+00')",
                PETITION,
                b"t" * 32,
            )
    finally:
        await connection.close()
