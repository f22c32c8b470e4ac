"""The counter's domain metrics, on the application's registry.

Labels take a handful of fixed values; a petition id never becomes a label, since there are
thousands of petitions and each would make a time series of its own.
"""

from __future__ import annotations

from typing import Final, Literal

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Signatures per batch, from a lone signature to a full batch under peak load.
BATCH_SIZE_BUCKETS: Final = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000)
# Seconds for one batch: a PostgreSQL transaction, then the acknowledgements.
BATCH_DURATION_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Seconds from signing to being counted: the target is well under one second, the objective
# 5 s (a bound of its own), the tail a stalled counter catching up.
FRESHNESS_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

MalformedPart = Literal["subject", "body"]
CountStore = Literal["shards", "redis"]


class CounterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.signatures_stored = Counter(
            "counter_signatures_stored",
            "Signatures stored for the first time, hence counted.",
            registry=registry,
        )
        self.duplicates_ignored = Counter(
            "counter_duplicate_signatures_ignored",
            "Signatures already stored (a redelivery, or a second signature by the same"
            " person), neither stored nor counted again.",
            registry=registry,
        )
        self.malformed_messages = Counter(
            "counter_malformed_messages",
            "Messages on the signatures stream that do not follow the contract, by the part"
            " that is wrong; they are acknowledged and dropped.",
            ["part"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "counter_batch_size_signatures",
            "Messages taken from JetStream in one batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            "counter_batch_duration_seconds",
            "Time to store a batch and acknowledge its messages.",
            buckets=BATCH_DURATION_BUCKETS,
            registry=registry,
        )
        self.batch_failures = Counter(
            "counter_batch_failures",
            "Batches that could not be stored (PostgreSQL unavailable); they are retried and"
            " their messages stay in JetStream meanwhile.",
            registry=registry,
        )
        self.settle_failures = Counter(
            "counter_settle_failures",
            "Settles of counted petitions (thresholds, their events, Redis totals) that failed:"
            " PostgreSQL or Redis unavailable, or PostgreSQL silent past the settle timeout."
            " Their petitions are settled again a second later; counting goes on meanwhile.",
            registry=registry,
        )
        self.count_freshness = Histogram(
            "counter_count_freshness_seconds",
            "Time from a signature being stored by JetStream (just before intake answers 202)"
            " to the commit that counts it.",
            buckets=FRESHNESS_BUCKETS,
            registry=registry,
        )
        self.threshold_events = Counter(
            "counter_threshold_events",
            "Threshold-reached events published to JetStream (republications it recognised"
            " as duplicates excluded).",
            registry=registry,
        )
        self.reconciliation_discrepancies = Counter(
            "counter_reconciliation_discrepancies",
            "Petitions whose count, in the shards or in Redis, differed from the stored"
            " signatures and was repaired.",
            ["store"],
            registry=registry,
        )
        self.marks_forgotten_petitions = Counter(
            "counter_marks_forgotten_petitions",
            "Petitions whose signed marks were removed from Redis, PARAPHE_MARKS_KEPT_DAYS"
            " after they ended.",
            registry=registry,
        )
        self.marks_forgotten_buckets = Counter(
            "counter_marks_forgotten_buckets",
            "Buckets of signed marks removed from Redis with their petition's marks.",
            registry=registry,
        )
        self.consumer_pending = Gauge(
            "counter_consumer_pending_messages",
            "Signatures in JetStream not yet delivered to any counter.",
            registry=registry,
        )
        self.consumer_ack_pending = Gauge(
            "counter_consumer_ack_pending_messages",
            "Signatures delivered to a counter and not yet acknowledged.",
            registry=registry,
        )
        self.oldest_uncounted_age = Gauge(
            "counter_oldest_uncounted_signature_age_seconds",
            "Time since the oldest signature still waiting in JetStream was accepted, 0 when"
            " none waits: the count's freshness while nothing gets counted.",
            registry=registry,
        )
        for part in ("subject", "body"):
            self.malformed_messages.labels(part)
        for store in ("shards", "redis"):
            self.reconciliation_discrepancies.labels(store)

    def count_malformed(self, part: MalformedPart) -> None:
        self.malformed_messages.labels(part).inc()

    def count_discrepancies(self, store: CountStore, petitions: int) -> None:
        self.reconciliation_discrepancies.labels(store).inc(petitions)


COUNTER_METRICS = web.AppKey("counter_metrics", CounterMetrics)
