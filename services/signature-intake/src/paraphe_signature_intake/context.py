"""The intake of one process: its clients, its limits and its metrics, built at start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from paraphe_common.metrics import METRICS
from paraphe_common.rate_limits import TokenBuckets
from paraphe_common.resources import JETSTREAM, NATS, REDIS, CleanupContext
from paraphe_common.streams import ensure_signatures_stream
from paraphe_signature_intake.publisher import AckedPublisher
from paraphe_signature_intake.settings import SignatureIntakeSettings
from paraphe_signature_intake.signatures import Intake, Outcome


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "signature_intake_signatures",
            "Signature requests answered, by outcome (accepted, already-signed).",
            ["outcome"],
            registry=registry,
        )
        self.refused = Counter(
            "signature_intake_refusals",
            "Signature requests refused before an outcome, by reason.",
            ["reason"],
            registry=registry,
        )
        self.redis_unavailable = Counter(
            "signature_intake_redis_unavailable",
            "Signatures taken without Redis (deduplicated by JetStream and PostgreSQL only).",
            registry=registry,
        )
        # Resolved once: a labels() lookup takes a lock at every request.
        self.by_outcome = {outcome: self.outcomes.labels(outcome.value) for outcome in Outcome}


@dataclass
class IntakeContext:
    core: Intake
    limit: TokenBuckets  # attempts per signer, in this process
    metrics: IntakeMetrics
    # Days an ended petition's marks are kept (the counter's PARAPHE_MARKS_KEPT_DAYS).
    marks_kept_days: int


INTAKE = web.AppKey("intake", IntakeContext)


def intake_context(settings: SignatureIntakeSettings) -> CleanupContext:
    async def intake(app: web.Application) -> AsyncIterator[None]:
        await ensure_signatures_stream(app[JETSTREAM], settings.nats_stream_replicas)
        metrics = IntakeMetrics(app[METRICS])
        publisher = AckedPublisher(app[NATS], settings.publish_timeout)
        await publisher.start()
        app[INTAKE] = IntakeContext(
            core=Intake(
                app[REDIS],
                publisher,
                pending_ttl=settings.pending_ttl,
                marks_timeout=settings.marks_timeout,
                redis_unavailable=metrics.redis_unavailable.inc,
            ),
            limit=TokenBuckets(settings.signer_attempts_per_minute, 60.0, max_keys=200_000),
            metrics=metrics,
            marks_kept_days=settings.marks_kept_days,
        )
        yield
        await app[INTAKE].core.marks.drain()
        await publisher.close()

    return intake
