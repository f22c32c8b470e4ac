"""Rate limits kept in the process: a token bucket per key, each key forgotten once its bucket
is full again (one period untouched: it holds nothing then), and the least recent keys first
when there are too many.

Each replica counts on its own, so N replicas let through up to N times the limit: enough to
stop a script hammering one endpoint, not a distributed attack (the proxy's job).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    def __init__(
        self,
        capacity: int,
        period_seconds: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``capacity`` attempts at once, refilled evenly over ``period_seconds``."""
        self._capacity = float(capacity)
        self._refill_per_second = capacity / period_seconds
        self._period = period_seconds
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def retry_after(self, key: str) -> int:
        """0 when the attempt may go ahead (and is counted), else whole seconds to wait."""
        now = self._clock()
        self._forget_full(now)
        tokens, at = self._buckets.pop(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._refill_per_second)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            wait = 0
        else:
            self._buckets[key] = (tokens, now)
            wait = max(1, int((1 - tokens) / self._refill_per_second + 0.999))
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)  # the least recently seen key starts afresh
        return wait

    def _forget_full(self, now: float) -> None:
        """Drop the keys untouched for a whole period, least recent first: their buckets are
        full again, as a key never seen starts."""
        buckets, horizon = self._buckets, now - self._period
        while buckets:
            key, (_, at) = next(iter(buckets.items()))
            if at > horizon:
                return
            del buckets[key]

    def __len__(self) -> int:
        """How many keys are kept."""
        return len(self._buckets)
