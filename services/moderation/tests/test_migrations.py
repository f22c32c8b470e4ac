import json

import asyncpg
import pytest
from alembic import command
from alembic.config import Config

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


async def test_a_pending_decision_of_revision_0002_is_kept_by_0003(database_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes |= {"database_url": database_url, "schema": "moderation"}
    command.upgrade(config, "0002")
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO moderation.queue_items (kind, petition_id, source_event_id,"
            " pending_decision) VALUES ('review', gen_random_uuid(), 'e1',"
            ' \'{"decision": "publish", "decision_id": "d1"}\'), '
            "('review', gen_random_uuid(), 'e2', NULL)"
        )
        upgrade(database_url, "moderation", MIGRATIONS)
        rows = await connection.fetch(
            "SELECT pending_decisions FROM moderation.queue_items ORDER BY source_event_id"
        )
        assert [json.loads(row["pending_decisions"]) for row in rows] == [
            [{"decision": "publish", "decision_id": "d1"}],
            [],
        ]
    finally:
        await connection.close()
