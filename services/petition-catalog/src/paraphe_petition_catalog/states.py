"""The catalogue owns petition states and publishes them to the PETITIONS bucket.

At start every petition's state is written, so the bucket converges on the database whatever
happened while the catalogue was away; each transition writes its petition's state again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web
from nats.js.kv import KeyValue

from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.resources import JETSTREAM, POSTGRES, CleanupContext, DependencyUnavailable
from paraphe_common.streams import petitions_bucket

log = logging.getLogger(__name__)

BUCKET = web.AppKey("petitions_bucket", KeyValue)


def petition_states_publisher(replicas: int) -> CleanupContext:
    async def publish_petition_states(app: web.Application) -> AsyncIterator[None]:
        bucket = await petitions_bucket(app[JETSTREAM], replicas)
        try:
            rows = await app[POSTGRES].fetch(
                "SELECT id, status, extract(epoch FROM closes_at)::float8 AS closes_at"
                " FROM catalog.petitions"
            )
        except asyncpg.UndefinedTableError:
            raise DependencyUnavailable(
                "PostgreSQL schema catalog",
                "the database",
                "not migrated: run `paraphe-petition-catalog migrate` first",
            ) from None
        for row in rows:
            await publish_state(
                bucket, str(row["id"]), PetitionState(row["status"], row["closes_at"])
            )
        log.info("published the states of %d petitions", len(rows))
        app[BUCKET] = bucket
        yield

    return publish_petition_states
