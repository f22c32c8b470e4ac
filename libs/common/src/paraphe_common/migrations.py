"""Versioned, forward-only schema migrations with Alembic, one PostgreSQL schema per service.

A service keeps its revisions in ``<package>/migrations/versions`` and an ``env.py`` that calls
:func:`run_migrations_online` with its schema. The schema holds its own version table, and an
advisory lock serialises concurrent runs (two pods, or a Job and a developer).
"""

from __future__ import annotations

import logging
import re
import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from paraphe_common.resources import DependencyUnavailable
from paraphe_common.settings import describe_endpoint

log = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _sqlalchemy_url(database_url: str) -> str:
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in {"postgres", "postgresql"}:
        raise ValueError("PARAPHE_DATABASE_URL must be a postgresql:// URL")
    return f"postgresql+psycopg://{rest}"


def upgrade(database_url: str, schema: str, script_location: Path) -> None:
    """Bring ``schema`` to its newest revision."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"not a schema name: {schema!r}")
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = schema
    try:
        command.upgrade(config, "head")
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        raise DependencyUnavailable("PostgreSQL", describe_endpoint(database_url), reason) from None


def run_migrations_online() -> None:
    """The body of every service's ``env.py``."""
    database_url = context.config.attributes["database_url"]
    schema = context.config.attributes["schema"]
    engine = create_engine(
        _sqlalchemy_url(database_url),
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )
    with engine.connect() as connection:
        connection.execute(
            text("SELECT pg_advisory_lock(:key)"), {"key": zlib.crc32(schema.encode())}
        )
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.execute(text(f'SET search_path TO "{schema}", public'))
        connection.commit()
        context.configure(
            connection=connection,
            version_table_schema=schema,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    engine.dispose()
    log.info("schema %s is at its newest revision", schema)
