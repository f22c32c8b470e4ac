"""Short-lived state in memory: pending authorizations, codes, access tokens.

The sandbox runs as one process for development and tests, so a dictionary is enough. Every
entry of a store lives as long as the others, so insertion order is expiry order and expired
entries are dropped from the front as new ones arrive: memory follows the request rate.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TransientStore(Generic[T]):
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        # An OrderedDict drops its oldest entry in constant time; a dict would rescan the
        # slots it has already emptied.
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def __len__(self) -> int:
        self._forget_expired()
        return len(self._entries)

    def add(self, value: T) -> str:
        """Keep ``value`` for ``ttl`` seconds under a new unguessable key, and return the key."""
        key = secrets.token_urlsafe(32)
        self.put(key, value)
        return key

    def put(self, key: str, value: T) -> None:
        """Keep ``value`` for ``ttl`` seconds under ``key``, replacing what it held."""
        self._forget_expired()
        self._entries.pop(key, None)
        self._entries[key] = (self._clock() + self.ttl, value)

    def get(self, key: str) -> T | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def take(self, key: str) -> T | None:
        """The value, removed: a second ``take`` of the same key finds nothing."""
        entry = self._entries.pop(key, None)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._entries:
            oldest = next(iter(self._entries))
            if self._entries[oldest][0] > now:
                return
            self._entries.popitem(last=False)
