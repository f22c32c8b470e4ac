"""Migrations: one schema per service, its own version table, concurrent runs serialised."""

import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from paraphe_common.migrations import upgrade

REVISION = """
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute("CREATE TABLE example.things (id int PRIMARY KEY)")
    op.execute("INSERT INTO example.things VALUES (1)")
"""


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(
        "from paraphe_common.migrations import run_migrations_online\n\nrun_migrations_online()\n"
    )
    (tmp_path / "versions" / "0001_things.py").write_text(REVISION)
    return tmp_path


async def test_upgrade_creates_the_schema_and_keeps_its_version_inside(
    database_url: str, migrations: Path
) -> None:
    upgrade(database_url, "example", migrations)
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM example.things") == 1
        assert await connection.fetchval("SELECT version_num FROM example.alembic_version") == (
            "0001"
        )
        assert await connection.fetchval("SELECT to_regclass('public.alembic_version')") is None
    finally:
        await connection.close()


async def test_concurrent_upgrades_apply_each_revision_once(
    database_url: str, migrations: Path
) -> None:
    # Processes, as two pods or a Job and a developer would be (Alembic's state is global).
    code = "import sys; from paraphe_common.migrations import upgrade; upgrade(*sys.argv[1:])"
    runs = [
        subprocess.Popen([sys.executable, "-c", code, database_url, "example", str(migrations)])
        for _ in range(3)
    ]
    assert [run.wait(timeout=60) for run in runs] == [0, 0, 0]
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM example.things") == 1
    finally:
        await connection.close()


def test_schema_names_are_checked_before_reaching_sql(database_url: str, migrations: Path) -> None:
    with pytest.raises(ValueError, match="not a schema name"):
        upgrade(database_url, 'x"; DROP TABLE y; --', migrations)
