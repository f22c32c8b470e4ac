"""How soon the count a watching page shows includes a new signature (single-process runs).

Each new person's signature is timed when its 2xx answer arrives; each count a streaming page
receives is timed on arrival. The i-th signature accepted during the run (in time order) is
shown once some page has seen a count of at least ``before + i + 1``: the delay between the
two is that signature's freshness. Both clocks are this process's, so the measure needs every
signer and watcher in one Locust process; with ``--processes`` it is left out.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field


@dataclass
class Freshness:
    accepted: list[float] = field(default_factory=list)
    seen: list[tuple[float, int]] = field(default_factory=list)

    def signature_accepted(self) -> None:
        self.accepted.append(time.monotonic())

    def count_seen(self, signatures: int) -> None:
        self.seen.append((time.monotonic(), signatures))

    def delays(self, before: int) -> list[float]:
        """Seconds from each accepted signature to the first count that includes it."""
        if not self.accepted or not self.seen:
            return []
        accepted = sorted(self.accepted)
        # When each count was first reached: times of the running maximum's rises.
        reached_at: list[float] = []
        reached: list[int] = []
        for at, signatures in sorted(self.seen):
            if not reached or signatures > reached[-1]:
                reached_at.append(at)
                reached.append(signatures)
        delays = []
        for i, at in enumerate(accepted):
            k = bisect.bisect_left(reached, before + i + 1)
            if k == len(reached):
                break  # not shown before the end of the run: left out, not counted as late
            # A count may include a signature before its answer reached us: no delay then.
            delays.append(max(0.0, reached_at[k] - at))
        return delays


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(freshness: Freshness, before: int | None) -> dict[str, object]:
    if before is None:
        return {"measured": False, "why": "the count before the run is unknown"}
    delays = freshness.delays(before)
    if not delays:
        return {"measured": False, "why": "no streaming page, or no signature shown"}
    return {
        "measured": True,
        "signatures": len(delays),
        "of_accepted": len(freshness.accepted),
        "p50_ms": round(1000 * percentile(delays, 0.50)),
        "p95_ms": round(1000 * percentile(delays, 0.95)),
        "p99_ms": round(1000 * percentile(delays, 0.99)),
        "max_ms": round(1000 * max(delays)),
    }
