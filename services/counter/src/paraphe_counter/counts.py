"""Counts as readers get them: from memory, refreshed from Redis, PostgreSQL behind it.

Tens of thousands of people may watch one petition's counter. Each process reads a petition's
total from Redis at most once per refresh interval, however many requests ask meanwhile (they
share one read), and keeps the JSON body ready to send, encoded again only when the count
changes. When Redis has no total (flushed) or does not answer, the sum of the shards is read
from PostgreSQL and written back.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import asyncpg
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from redis.exceptions import RedisError

from paraphe_common.resources import POSTGRES, REDIS, CleanupContext
from paraphe_counter import store
from paraphe_counter.settings import CounterSettings
from paraphe_counter.totals import Totals

log = logging.getLogger(__name__)

# Seconds PostgreSQL may take to sum a petition's shards for a reader.
_POSTGRES_TIMEOUT: Final = 1.0
_REDIS_ERRORS: Final = (RedisError, OSError, TimeoutError)
_POSTGRES_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
# A CDN in front serves each count for a second to everyone polling it.
COUNT_CACHE_CONTROL: Final = "public, max-age=1"


@dataclass(frozen=True, slots=True)
class Count:
    """A petition's count, with its JSON body and entity tag ready to send."""

    petition_id: str
    signatures: int
    body: bytes
    etag: str
    headers: CIMultiDictProxy[str]  # of the answer: type, caching, entity tag

    @classmethod
    def of(cls, petition_id: str, signatures: int) -> Count:
        body = json.dumps(
            {"petition_id": petition_id, "signatures": signatures}, separators=(",", ":")
        ).encode()
        etag = f'"{signatures}"'
        headers = CIMultiDict(
            {"Content-Type": "application/json", "Cache-Control": COUNT_CACHE_CONTROL, "ETag": etag}
        )
        return cls(petition_id, signatures, body, etag, CIMultiDictProxy(headers))


class CountUnavailable(Exception):
    """Neither Redis nor PostgreSQL answered, and no count was known before."""


@dataclass(frozen=True, slots=True)
class _Cached:
    count: Count
    fresh_until: float  # time.monotonic()


class CountCache:
    def __init__(self, pool: asyncpg.Pool, totals: Totals, refresh_interval: float) -> None:
        self._pool = pool
        self._totals = totals
        self._refresh_interval = refresh_interval
        self._cached: dict[str, _Cached] = {}
        self._refreshes: dict[str, asyncio.Task[Count]] = {}
        # Said once when Redis stops answering and once when it is back, not at every read.
        self._redis_answers = True

    def fresh(self, petition_id: str) -> Count | None:
        """The petition's count if read within the refresh interval, without waiting."""
        cached = self._cached.get(petition_id)
        if cached is not None and time.monotonic() < cached.fresh_until:
            return cached.count
        return None

    async def count(self, petition_id: str) -> Count:
        """The petition's count, at most one refresh interval old."""
        fresh = self.fresh(petition_id)
        if fresh is not None:
            return fresh
        cached = self._cached.get(petition_id)
        refresh = self._refreshes.get(petition_id)
        if refresh is None:
            refresh = asyncio.create_task(self._refresh(petition_id, cached))
            self._refreshes[petition_id] = refresh
            refresh.add_done_callback(functools.partial(self._forget_refresh, petition_id))
        try:
            # Shielded: a reader who hangs up must not cancel the read others are waiting for.
            return await asyncio.shield(refresh)
        except CountUnavailable:
            if cached is not None:
                return cached.count  # an older count is better than an error
            raise

    async def close(self) -> None:
        refreshes = list(self._refreshes.values())
        for refresh in refreshes:
            refresh.cancel()
        await asyncio.gather(*refreshes, return_exceptions=True)

    def _forget_refresh(self, petition_id: str, refresh: asyncio.Task[Count]) -> None:
        if self._refreshes.get(petition_id) is refresh:
            del self._refreshes[petition_id]
        if not refresh.cancelled():
            refresh.exception()  # retrieved here, whether or not a reader is still waiting

    async def _refresh(self, petition_id: str, cached: _Cached | None) -> Count:
        signatures, redis_answered = await self._read_redis(petition_id)
        if signatures is None:
            signatures = await self._read_postgres(petition_id)
            if redis_answered:
                await self._write_back(petition_id, signatures)
        count = (
            cached.count
            if cached is not None and cached.count.signatures == signatures
            else Count.of(petition_id, signatures)
        )
        self._cached[petition_id] = _Cached(count, time.monotonic() + self._refresh_interval)
        return count

    async def _read_redis(self, petition_id: str) -> tuple[int | None, bool]:
        try:
            signatures = await self._totals.read(petition_id)
        except _REDIS_ERRORS as exc:
            if self._redis_answers:
                log.warning("Redis gives no counts (%r); reading them from PostgreSQL", exc)
            self._redis_answers = False
            return None, False
        if not self._redis_answers:
            log.info("Redis gives counts again")
        self._redis_answers = True
        return signatures, True

    async def _read_postgres(self, petition_id: str) -> int:
        try:
            async with asyncio.timeout(_POSTGRES_TIMEOUT):
                return await store.counted_total(self._pool, petition_id)
        except _POSTGRES_ERRORS as exc:
            log.warning("PostgreSQL did not give a count either (%r)", exc)
            raise CountUnavailable(petition_id) from exc

    async def _write_back(self, petition_id: str, signatures: int) -> None:
        try:
            # Raise only: a counter may have written a higher total since our read.
            await self._totals.raise_to({petition_id: signatures})
        except _REDIS_ERRORS as exc:
            log.warning("could not write a count back to Redis: %r", exc)


COUNT_CACHE = web.AppKey("count_cache", CountCache)


def count_cache(settings: CounterSettings) -> CleanupContext:
    """The read side; needs PostgreSQL and Redis before it."""

    async def serve_counts(app: web.Application) -> AsyncIterator[None]:
        cache = CountCache(app[POSTGRES], Totals(app[REDIS]), settings.count_refresh_interval)
        app[COUNT_CACHE] = cache
        try:
            yield
        finally:
            await cache.close()

    return serve_counts
