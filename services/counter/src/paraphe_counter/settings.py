from pydantic import Field

from paraphe_common.settings import (
    MarksSettings,
    NatsSettings,
    PostgresSettings,
    RedisSettings,
    ServiceSettings,
    ThresholdSettings,
)


class CounterSettings(
    ServiceSettings,
    PostgresSettings,
    RedisSettings,
    NatsSettings,
    ThresholdSettings,
    MarksSettings,
):
    """Read once from the PARAPHE_* environment at start."""

    # Signatures taken from JetStream and stored in one PostgreSQL transaction.
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    # Seconds a fetch waits for signatures when none are queued: it bounds how late a lone
    # signature is counted, so it stays well under a second.
    fetch_timeout: float = Field(default=0.1, ge=0.01, le=1.0)
    # Seconds at least between two fetches that found less than a full batch: under load,
    # batches grow instead of multiplying (each batch costs a transaction, a pool round and the
    # settling of its petitions, whatever its size), for at most this much later a count.
    batch_linger: float = Field(default=0.05, ge=0, le=0.5)
    # Rows each petition's count is spread over, so concurrent batches do not queue on one.
    count_shards: int = Field(default=16, ge=1, le=1024)
    # Seconds between two readings of the consumer's backlog (pending, unacknowledged).
    backlog_interval: float = Field(default=5.0, gt=0)
    # Seconds between two comparisons of the stored signatures with the counts, and between
    # two passes forgetting the marks of petitions ended PARAPHE_MARKS_KEPT_DAYS ago.
    reconciliation_interval: float = Field(default=600.0, gt=0)
    # Seconds a count read from Redis is served from memory before it is read again.
    count_refresh_interval: float = Field(default=0.25, gt=0, le=5.0)
    # Seconds between two comments on an idle live-count stream, so proxies keep it open.
    count_stream_heartbeat: float = Field(default=15.0, gt=0)
