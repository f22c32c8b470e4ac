from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from paraphe_common.committees import Committee, parse_committees
from paraphe_common.settings import (
    NatsSettings,
    PostgresSettings,
    RedisSettings,
    ServiceSettings,
)
from paraphe_common.site import SiteSettings
from paraphe_common.tokens import TokenVerificationSettings
from paraphe_petition_catalog.retention import RetentionSettings


class PetitionCatalogSettings(
    ServiceSettings,
    PostgresSettings,
    RedisSettings,
    NatsSettings,
    TokenVerificationSettings,
    SiteSettings,
    RetentionSettings,
):
    """Read once from the PARAPHE_* environment at start."""

    # The standing committees, a JSON list of {"id", "name"}; unset: the Assemblée
    # nationale's eight. Moderation must be given the same list.
    committees: Annotated[tuple[Committee, ...], NoDecode] = Field(
        default_factory=lambda: parse_committees(None)
    )
    # How long a published petition stays open for signatures, in months (the Sénat counts
    # 100,000 signatures within six months).
    signing_period_months: int = Field(default=6, ge=1, le=60)
    # Seconds between two looks for petitions whose deadline has passed.
    deadline_check_interval: float = Field(default=30.0, gt=0)
    # Seconds between two passes over events left unpublished (JetStream away, a crash).
    outbox_interval: float = Field(default=5.0, gt=0)
    # Seconds one batch of the outbox may take to publish (its rows locked meanwhile) before it
    # is given up and rolled back for the next pass: a lock never released, a PostgreSQL that
    # stops answering cannot hold the pass for good.
    outbox_publish_timeout: float = Field(default=30.0, gt=0)
    # Seconds between two readings of counter's totals into the "most signed" sort.
    signature_count_interval: float = Field(default=30.0, gt=0)

    @field_validator("committees", mode="before")
    @classmethod
    def _read_committees(cls, value: Any) -> Any:
        return parse_committees(value) if isinstance(value, str) or value is None else value


SETTINGS = web.AppKey("settings", PetitionCatalogSettings)
