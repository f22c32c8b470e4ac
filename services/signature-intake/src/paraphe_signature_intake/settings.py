from pydantic import Field

from paraphe_common.settings import MarksSettings, NatsSettings, RedisSettings, ServiceSettings
from paraphe_common.tokens import SignerTokenSettings, TokenVerificationSettings


class SignatureIntakeSettings(
    ServiceSettings,
    RedisSettings,
    NatsSettings,
    TokenVerificationSettings,
    SignerTokenSettings,
    MarksSettings,
):
    """Read once from the PARAPHE_* environment at start."""

    # How long a "pending" mark lives when its publish never completes (intake killed between
    # the mark and the ack): shorter than JetStream's dedupe window, so a retry within it is
    # recognised by JetStream, and after it the person may simply sign again.
    pending_ttl: int = Field(default=60, ge=5, le=170)
    publish_timeout: float = Field(default=2.0, gt=0)
    # Seconds a batch of marks may wait for Redis's answer before signing goes on without it
    # (a Redis that hangs rather than refuses: a stopped process, a partitioned network).
    # Redis answers in well under a millisecond; redis-py's own limit is 5 s.
    marks_timeout: float = Field(default=0.5, gt=0, le=10)
    # Signature attempts one signer may make per minute on this replica, all petitions together.
    signer_attempts_per_minute: int = Field(default=60, ge=1)
