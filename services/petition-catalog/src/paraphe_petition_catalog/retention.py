"""Retention of authors' personal data: kept while it serves, anonymised after.

The catalogue keeps what FranceConnect gave about an author (names, birth date, email) to
show their petitions and let staff reach them. Once none of their petitions is open any more
(none submitted or published, no draft written within the period), nothing has happened to any
of them and the author has not signed in for ``PARAPHE_AUTHOR_RETENTION_DAYS`` (a year by
default), the job:

- erases the birth date and the email;
- keeps the names only when a petition of theirs was published (they were public, and the
  petition's page still shows them); otherwise replaces them too.

The author's id stays (their rows still point to it) but no longer leads to a person. Signing
in again as an author brings the identity back, from FranceConnect, as at the first time.
Every replica runs the pass: authors are taken ``FOR UPDATE SKIP LOCKED``, 500 at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Final

import asyncpg
from aiohttp import web
from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paraphe_common.metrics import METRICS
from paraphe_common.resources import POSTGRES, CleanupContext
from paraphe_common.settings import ENV_PREFIX

log = logging.getLogger(__name__)

BATCH: Final = 500
ANONYMOUS_GIVEN_NAMES: Final = "Auteur"
ANONYMOUS_FAMILY_NAME: Final = "anonymisé"


class RetentionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # Days an author's identity is kept after their last sign-in and the last thing that
    # happened to their petitions, once none is open any more.
    author_retention_days: int = Field(default=365, ge=1)
    # Seconds between two retention passes.
    retention_interval: float = Field(default=3600.0, gt=0)


_ANONYMISE: Final = f"""
WITH due AS (
    SELECT a.id FROM catalog.authors a
    WHERE a.anonymised_at IS NULL
      AND a.signed_in_at < now() - $1::interval
      AND NOT EXISTS (
          SELECT 1 FROM catalog.petitions p
          WHERE p.author_id = a.id
            AND (p.status IN ('submitted', 'published')
                 OR (p.status = 'draft' AND p.updated_at >= now() - $1::interval))
      )
      AND NOT EXISTS (
          SELECT 1 FROM catalog.petitions p JOIN catalog.transitions t ON t.petition_id = p.id
          WHERE p.author_id = a.id AND t.at >= now() - $1::interval
      )
    ORDER BY a.signed_in_at
    LIMIT {BATCH}
    FOR UPDATE OF a SKIP LOCKED
)
UPDATE catalog.authors a SET
    birthdate = NULL,
    email = NULL,
    given_names = CASE WHEN published.any THEN a.given_names ELSE $2 END,
    family_name = CASE WHEN published.any THEN a.family_name ELSE $3 END,
    anonymised_at = now()
FROM due, LATERAL (
    SELECT EXISTS (
        SELECT 1 FROM catalog.petitions p WHERE p.author_id = due.id AND p.published_at IS NOT NULL
    ) AS any
) AS published
WHERE a.id = due.id
RETURNING a.id
"""  # noqa: S608 - BATCH is a constant of this module, the values are parameters


async def anonymise_authors_past_retention(pool: asyncpg.Pool, retention: timedelta) -> int:
    """Anonymise every author due; returns how many."""
    total = 0
    while True:
        done = await pool.fetch(_ANONYMISE, retention, ANONYMOUS_GIVEN_NAMES, ANONYMOUS_FAMILY_NAME)
        total += len(done)
        if len(done) < BATCH:
            return total  # nobody else is due


def retention_job(settings: RetentionSettings) -> CleanupContext:
    """The retention pass at start and every interval; needs PostgreSQL before it."""

    async def run_retention(app: web.Application) -> AsyncIterator[None]:
        anonymised = Counter(
            "petition_catalog_authors_anonymised",
            "Authors whose personal data the retention pass erased.",
            registry=app[METRICS],
        )
        retention = timedelta(days=settings.author_retention_days)
        pool = app[POSTGRES]
        stopping = asyncio.Event()

        async def every_interval() -> None:
            while not stopping.is_set():
                try:
                    done = await anonymise_authors_past_retention(pool, retention)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                    log.warning("the retention pass failed (%r); trying again later", exc)
                else:
                    if done:
                        anonymised.inc(done)
                        log.info("authors anonymised after retention", extra={"authors": done})
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(settings.retention_interval):
                        await stopping.wait()

        task = asyncio.create_task(every_interval(), name="retention")
        try:
            yield
        finally:
            stopping.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run_retention
