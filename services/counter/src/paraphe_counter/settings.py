import itertools
import json
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from paraphe_common.settings import NatsSettings, PostgresSettings, RedisSettings, ServiceSettings

# counter.thresholds_reached.threshold is a PostgreSQL integer.
_LARGEST_THRESHOLD = 2**31 - 1


class CounterSettings(ServiceSettings, PostgresSettings, RedisSettings, NatsSettings):
    """Read once from the PARAPHE_* environment at start."""

    # Signatures taken from JetStream and stored in one PostgreSQL transaction.
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    # Seconds a fetch waits for signatures when none are queued: it bounds how late a lone
    # signature is counted, so it stays well under a second.
    fetch_timeout: float = Field(default=0.1, ge=0.01, le=1.0)
    # Rows each petition's count is spread over, so concurrent batches do not queue on one.
    count_shards: int = Field(default=16, ge=1, le=1024)
    # Totals that emit a petition event when reached: 100,000 sends the petition to a
    # committee, 500,000 may bring a debate in public session. A JSON list or "a,b,c".
    thresholds: Annotated[tuple[int, ...], NoDecode] = (100_000, 500_000)
    # Seconds between two readings of the consumer's backlog (pending, unacknowledged).
    backlog_interval: float = Field(default=5.0, gt=0)
    # Seconds between two comparisons of the stored signatures with the counts.
    reconciliation_interval: float = Field(default=600.0, gt=0)
    # Seconds a count read from Redis is served from memory before it is read again.
    count_refresh_interval: float = Field(default=0.25, gt=0, le=5.0)
    # Seconds between two comments on an idle live-count stream, so proxies keep it open.
    count_stream_heartbeat: float = Field(default=15.0, gt=0)

    @field_validator("thresholds", mode="before")
    @classmethod
    def _read_threshold_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("thresholds")
    @classmethod
    def _positive_and_ascending(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not all(0 < threshold <= _LARGEST_THRESHOLD for threshold in value):
            raise ValueError(f"each threshold must be between 1 and {_LARGEST_THRESHOLD}")
        if any(lower >= higher for lower, higher in itertools.pairwise(value)):
            raise ValueError("thresholds must be in strictly ascending order")
        return value
