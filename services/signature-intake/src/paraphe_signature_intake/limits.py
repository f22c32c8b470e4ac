"""How many attempts one signer may make: a token bucket per signer key, in this process."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class SignerRateLimit:
    def __init__(
        self,
        per_minute: int,
        *,
        max_signers: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = float(per_minute)
        self._refill_per_second = per_minute / 60.0
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_signers = max_signers
        self._clock = clock

    def retry_after(self, signer: str) -> int:
        """0 when the attempt may go ahead (and is counted), else seconds to wait."""
        now = self._clock()
        tokens, at = self._buckets.pop(signer, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._refill_per_second)
        if tokens >= 1:
            self._buckets[signer] = (tokens - 1, now)
            wait = 0
        else:
            self._buckets[signer] = (tokens, now)
            wait = max(1, int((1 - tokens) / self._refill_per_second + 0.999))
        if len(self._buckets) > self._max_signers:
            self._buckets.popitem(last=False)  # the least recently seen signer starts afresh
        return wait
