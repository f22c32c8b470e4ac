import asyncpg
import pytest

from paraphe_common.migrations import upgrade
from paraphe_moderation.__main__ import MIGRATIONS


async def test_the_audit_log_is_append_only(database_url: str) -> None:
    upgrade(database_url, "moderation", MIGRATIONS)
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO moderation.audit_log (actor, action, reason)"
            " VALUES ('moderator-1', 'reject', 'not-in-french')"
        )
        for statement in (
            "UPDATE moderation.audit_log SET reason = 'rewritten'",
            "DELETE FROM moderation.audit_log",
            "TRUNCATE moderation.audit_log",
        ):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await connection.execute(statement)
        assert await connection.fetchval("SELECT reason FROM moderation.audit_log") == (
            "not-in-french"
        )
    finally:
        await connection.close()
