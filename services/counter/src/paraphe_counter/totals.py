"""Each petition's total in Redis, ``count:<petition_id>``: what readers are served.

Redis is a cache in front of PostgreSQL, never the truth. Counters write totals that only rise,
so two replicas finishing their batches in either order leave the higher, later total; only
reconciliation, which knows the exact count, may lower one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Final

import redis.asyncio as aioredis

# Seconds a Redis command may take before the caller gives up on it: a hung Redis must not
# hold a reader or the counting loop.
REDIS_TIMEOUT: Final = 0.5
_KEYS_PER_ROUND_TRIP: Final = 1000

# Raise the total, or set it when there is none; never lower it. One key per call, so it also
# works on Redis Cluster, where the keys of one batch live on different nodes.
_RAISE_TOTAL: Final = """
local current = redis.call('GET', KEYS[1])
if current == false or tonumber(current) < tonumber(ARGV[1]) then
    redis.call('SET', KEYS[1], ARGV[1])
    return 1
end
return 0
"""


def count_key(petition_id: str) -> str:
    return f"count:{petition_id}"


class Totals:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._raise_total = client.register_script(_RAISE_TOTAL)

    async def raise_to(self, totals: Mapping[str, int]) -> None:
        """Raise each petition's total to the given one, if it is higher."""
        if not totals:
            return
        async with asyncio.timeout(REDIS_TIMEOUT):
            async with self._client.pipeline(transaction=False) as pipeline:
                for petition_id, signatures in totals.items():
                    await self._raise_total(
                        keys=[count_key(petition_id)], args=[signatures], client=pipeline
                    )
                await pipeline.execute()

    async def replace(self, totals: Mapping[str, int]) -> None:
        """Set exact totals, lower or higher: only for counts known to be right."""
        if not totals:
            return
        async with asyncio.timeout(REDIS_TIMEOUT):
            async with self._client.pipeline(transaction=False) as pipeline:
                for petition_id, signatures in totals.items():
                    pipeline.set(count_key(petition_id), signatures)
                await pipeline.execute()

    async def read(self, petition_id: str) -> int | None:
        async with asyncio.timeout(REDIS_TIMEOUT):
            value = await self._client.get(count_key(petition_id))
        return int(value) if value is not None else None

    async def read_many(self, petitions: Collection[str]) -> dict[str, int | None]:
        """Every petition's total, a chunk of keys per round trip."""
        ordered = list(petitions)
        totals: dict[str, int | None] = {}
        for start in range(0, len(ordered), _KEYS_PER_ROUND_TRIP):
            chunk = ordered[start : start + _KEYS_PER_ROUND_TRIP]
            async with asyncio.timeout(REDIS_TIMEOUT):
                async with self._client.pipeline(transaction=False) as pipeline:
                    for petition_id in chunk:
                        pipeline.get(count_key(petition_id))
                    values = await pipeline.execute()
            for petition_id, value in zip(chunk, values, strict=True):
                totals[petition_id] = int(value) if value is not None else None
        return totals
