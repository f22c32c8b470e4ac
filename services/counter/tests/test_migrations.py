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
            " VALUES ($1, $2, now()) ON CONFLICT DO NOTHING"
        )
        assert await connection.execute(insert, PETITION, b"k" * 32) == "INSERT 0 1"
        assert await connection.execute(insert, PETITION, b"k" * 32) == "INSERT 0 0"
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(insert, PETITION, b"short")
    finally:
        await connection.close()
