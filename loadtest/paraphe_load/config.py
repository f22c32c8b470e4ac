"""A campaign's parameters, read once from ``PARAPHE_LOADTEST_*`` variables.

Locust's own variables (``LOCUST_HOST``, ``LOCUST_PROCESSES``...) keep their meaning; these add
what a petition campaign needs: the shape, the mix of people, their pace and the thresholds.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

PREFIX = "PARAPHE_LOADTEST_"
SHAPES = ("surge", "steady", "steps", "campaign", "none")


class ConfigurationError(ValueError):
    """A variable that cannot be read: the message names it, never a secret."""


@dataclass(frozen=True)
class Config:
    # Which load shape drives the users (shapes.py); "none" leaves it to Locust's -u/-r/-t.
    shape: str = "steady"
    # The petition signed and watched; empty: the first open petition the catalogue lists.
    petition: str = ""
    # A unique text per run, so that generated people of two runs never meet.
    run_id: str = ""

    # surge: from a few users to the peak in ramp seconds, held, then back down.
    peak_users: int = 600
    ramp_seconds: float = 60.0
    hold_seconds: float = 240.0
    decay_seconds: float = 60.0
    # steady: this many users for this long.
    users: int = 200
    duration_seconds: float = 120.0
    spawn_rate: float = 50.0
    # steps: STEP_USERS more users every STEP_SECONDS, up to MAX_USERS: where does it saturate?
    step_users: int = 20
    step_seconds: float = 30.0
    max_users: int = 200
    # campaign: this many distinct people sign, by so many users at once, within the timeout.
    signers: int = 10_000
    campaign_users: int = 100
    campaign_timeout_seconds: float = 600.0

    # The mix of people (Locust weights).
    watcher_weight: int = 60
    stream_watcher_weight: int = 10
    signer_weight: int = 30
    author_weight: int = 1
    moderator_weight: int = 1
    # The staff sign-in of moderators (a demo agent of the sandbox with the moderator role).
    moderator_login_hint: str = "marie-moderatrice"

    # Pace: a watcher polls the count every poll_seconds; a signer starts a new person every
    # signer_pace_seconds (0: at once, to find the capacity).
    poll_seconds: float = 2.0
    signer_pace_seconds: float = 0.0
    # Among those who signed: share who double-click, share who come back later to sign again.
    double_click_share: float = 0.1
    come_back_share: float = 0.05
    # Whether a signer's browser loads the petition's page, before signing in and again after
    # the callback's redirect (false: the sign-in and the signature only, for capacity).
    signer_pages: bool = True

    # Pass/fail, checked at the end: no failed request, p95 of every request and of the whole
    # sign-in-and-sign journey under these bounds, and the final count exactly as expected.
    max_p95_ms: float = 500.0
    max_journey_p95_ms: float = 2000.0
    # The count a streaming page shows includes a new signature within this (p99), when
    # measured (one Locust process with streaming pages: paraphe_load/freshness.py).
    max_freshness_p99_ms: float = 1000.0
    check_count: bool = True
    count_timeout_seconds: float = 60.0
    # Where run.py keeps the reports: summary.json goes there too.
    report_dir: str = ""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        environ = dict(os.environ if environ is None else environ)
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = PREFIX + field.name.upper()
            raw = environ.get(name, "").strip()
            if not raw:
                continue
            values[field.name] = _parse(name, raw, hints[field.name])
        config = cls(**values)
        config.validate()
        if not config.run_id:
            config = cls(**{**values, "run_id": uuid.uuid4().hex[:12]})
        return config

    def validate(self) -> None:
        if self.shape not in SHAPES:
            raise ConfigurationError(f"{PREFIX}SHAPE must be one of {', '.join(SHAPES)}")
        for name in ("double_click_share", "come_back_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigurationError(f"{PREFIX}{name.upper()} must be between 0 and 1")
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigurationError(f"{PREFIX}{field.name.upper()} must not be negative")
        if self.poll_seconds <= 0:
            raise ConfigurationError(f"{PREFIX}POLL_SECONDS must be positive")


def _parse(name: str, raw: str, kind: Any) -> object:
    try:
        if kind is bool:
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes"}
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a {kind.__name__}, not {raw!r}") from None
    return raw
