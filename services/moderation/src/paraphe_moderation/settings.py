from typing import Annotated, Any

from pydantic import AnyHttpUrl, Field, field_validator
from pydantic_settings import NoDecode

from paraphe_common.committees import Committee, parse_committees
from paraphe_common.settings import (
    NatsSettings,
    PostgresSettings,
    ServiceSettings,
    ThresholdSettings,
)
from paraphe_common.tokens import TokenVerificationSettings
from paraphe_moderation.reasons import ReasonCode, parse_reason_codes
from paraphe_moderation.suggestions import CommitteeTerms, parse_committee_terms


class ModerationSettings(
    ServiceSettings, PostgresSettings, NatsSettings, TokenVerificationSettings, ThresholdSettings
):
    """Read once from the PARAPHE_* environment at start.

    The thresholds (PARAPHE_THRESHOLDS, the counter's and the catalog's) say when the committee's
    follow-up may begin and when a debate in public session may be recorded.
    """

    # Where petition-catalog's internal API answers (never through the proxy).
    catalog_url: AnyHttpUrl
    # The site's public origin: forms that change state must come from pages of this origin.
    public_url: AnyHttpUrl
    # Seconds a catalog call may take before the decision is answered with a 503.
    catalog_timeout: float = Field(default=5.0, gt=0, le=60)
    # Seconds a claim on a queue item lasts; a moderator who walks away loses it after this.
    claim_lease_seconds: int = Field(default=900, ge=10, le=24 * 3600)
    # The standing committees (the same list the catalog is given); the Assemblée's by default.
    committees: Annotated[tuple[Committee, ...], NoDecode] = Field(
        default_factory=lambda: parse_committees(None)
    )
    # Admissibility reason codes: a JSON list of {"code", "label"}; a sensible French default.
    reason_codes: Annotated[tuple[ReasonCode, ...], NoDecode] = Field(
        default_factory=lambda: parse_reason_codes(None)
    )
    # Weighted terms per committee for the suggested committee: a JSON object
    # {"<committee id>": {"<term>": weight, ...}}; defaults for the Assemblée's eight.
    committee_terms: Annotated[CommitteeTerms, NoDecode] = Field(
        default_factory=lambda: parse_committee_terms(None)
    )
    # Public reports one client may send, as a burst, refilled over an hour.
    reports_per_hour: int = Field(default=10, ge=1, le=10_000)
    # Characters of a report's optional message.
    report_message_max_length: int = Field(default=1000, ge=0, le=10_000)
    # Seconds between two readings of the queue for the metrics.
    queue_metrics_interval: float = Field(default=15.0, gt=0)

    @field_validator("committees", mode="before")
    @classmethod
    def _read_committees(cls, value: Any) -> Any:
        return parse_committees(value) if isinstance(value, str) or value is None else value

    @field_validator("reason_codes", mode="before")
    @classmethod
    def _read_reason_codes(cls, value: Any) -> Any:
        return parse_reason_codes(value) if isinstance(value, str) or value is None else value

    @field_validator("committee_terms", mode="before")
    @classmethod
    def _read_committee_terms(cls, value: Any) -> Any:
        return parse_committee_terms(value) if isinstance(value, str) or value is None else value

    @property
    def catalog_base(self) -> str:
        return str(self.catalog_url).rstrip("/")
