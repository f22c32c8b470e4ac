"""Each open petition's number of signatures, copied from counter's totals for the sorts.

counter owns the count: it keeps each petition's total in Redis as ``count:<petition_id>``
(services/counter, totals.py). The catalogue reads those totals for its open petitions, and
for a day after they close so the last signatures are in, and keeps a copy in
``catalog.petitions.signature_count``: good enough to sort by "most signed" and to show in a
list; the petition page asks counter for the live figure. The catalogue never reads counter's
schema.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Final

import asyncpg
import redis.asyncio as aioredis

log = logging.getLogger(__name__)

REDIS_TIMEOUT: Final = 2.0
_KEYS_PER_ROUND_TRIP: Final = 1000


def count_key(petition_id: uuid.UUID) -> str:
    """counter's key for a petition's total (paraphe_counter.totals.count_key)."""
    return f"count:{petition_id}"


async def refresh_signature_counts(pool: asyncpg.Pool, client: aioredis.Redis) -> int:
    """Copy counter's totals of the petitions still gathering signatures; how many changed."""
    petitions = await pool.fetch(
        "SELECT id FROM catalog.petitions WHERE status = 'published'"
        " OR (status = 'closed' AND closed_at > now() - interval '1 day')"
    )
    ids: list[uuid.UUID] = [row["id"] for row in petitions]
    counted_ids: list[uuid.UUID] = []
    counts: list[int] = []
    for start in range(0, len(ids), _KEYS_PER_ROUND_TRIP):
        chunk = ids[start : start + _KEYS_PER_ROUND_TRIP]
        # One GET per key in a pipeline rather than MGET: on Redis Cluster the keys of one
        # chunk live on different nodes.
        async with asyncio.timeout(REDIS_TIMEOUT):
            async with client.pipeline(transaction=False) as pipeline:
                for petition_id in chunk:
                    pipeline.get(count_key(petition_id))
                values = await pipeline.execute()
        for petition_id, value in zip(chunk, values, strict=True):
            if value is None:
                continue  # nobody has signed yet, or Redis was flushed: keep what we had
            counted_ids.append(petition_id)
            counts.append(int(value))
    if not counted_ids:
        return 0
    changed = await pool.fetchval(
        """
        WITH changed AS (
            UPDATE catalog.petitions p SET signature_count = t.count
            FROM unnest($1::uuid[], $2::bigint[]) AS t (id, count)
            WHERE p.id = t.id AND p.signature_count IS DISTINCT FROM t.count
            RETURNING 1
        )
        SELECT count(*) FROM changed
        """,
        counted_ids,
        counts,
    )
    return int(changed)
