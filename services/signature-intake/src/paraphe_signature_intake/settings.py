from pydantic import Field

from paraphe_common.settings import NatsSettings, RedisSettings, ServiceSettings
from paraphe_common.tokens import SignerTokenSettings, TokenVerificationSettings


class SignatureIntakeSettings(
    ServiceSettings, RedisSettings, NatsSettings, TokenVerificationSettings, SignerTokenSettings
):
    """Read once from the PARAPHE_* environment at start."""

    # How long a "pending" mark lives when its publish never completes (intake killed between
    # the mark and the ack): shorter than JetStream's dedupe window, so a retry within it is
    # recognised by JetStream, and after it the person may simply sign again.
    pending_ttl: int = Field(default=60, ge=5, le=170)
    publish_timeout: float = Field(default=2.0, gt=0)
    # Signature attempts one signer may make per minute on this replica, all petitions together.
    signer_attempts_per_minute: int = Field(default=60, ge=1)
