"""Public reports ("signaler"): anonymous, rate-limited per client, only of published petitions.

Nothing about the sender is stored: not the address (the rate limit keys it under a secret of
the process, in memory only), not a cookie. Reports of one petition gather on one queue item.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from paraphe_common import security
from paraphe_common.petition_states import PUBLISHED, PetitionStates
from paraphe_common.problems import Problem
from paraphe_common.rate_limits import TokenBuckets
from paraphe_common.texts import has_control_characters, with_line_feeds
from paraphe_moderation import store
from paraphe_moderation.reasons import REPORT_REASONS
from paraphe_moderation.texts import CONTROL_CHARACTERS

if TYPE_CHECKING:
    from paraphe_moderation.context import Context


class ReportLimiter:
    """Reports per client. Addresses are keyed under a secret of this process, never kept."""

    def __init__(self, per_hour: int) -> None:
        self._buckets = TokenBuckets(per_hour, 3600.0)
        self._key = secrets.token_bytes(32)

    def retry_after(self, request: web.Request) -> int:
        peer = security.client_address(request)
        if peer is not None and peer.is_loopback:
            return 0  # the machine itself (operators, tests, load campaigns), as for every limit
        address = client_address(request).encode()
        key = hashlib.blake2b(address, key=self._key, digest_size=16).hexdigest()
        return self._buckets.retry_after(key)


def client_address(request: web.Request) -> str:
    """X-Forwarded-For believed only from the trusted proxies (paraphe_common.security)."""
    return security.client_key(request)


class ReportError(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


async def accept_report(
    ctx: Context, states: PetitionStates, request: web.Request, document: Any
) -> uuid.UUID:
    """Check and store a report: rate limit, published petition, known reason, bounded text
    without control characters."""
    wait = ctx.report_limiter.retry_after(request)
    if wait:
        ctx.metrics.reports_limited.inc()
        raise Problem(
            429,
            "Vous avez envoyé beaucoup de signalements : réessayez plus tard.",
            kind="too-many-reports",
            headers={"Retry-After": str(wait)},
        )
    if not isinstance(document, dict):
        raise ReportError(422, "petition_id", "Le signalement doit être un objet JSON.")
    try:
        petition_id = str(uuid.UUID(str(document.get("petition_id"))))
    except ValueError:
        raise ReportError(404, "petition_id", "Pétition inconnue.") from None
    state = states.get(petition_id)
    if state is None:
        raise ReportError(404, "petition_id", "Pétition inconnue.")
    if state.status != PUBLISHED:
        raise ReportError(
            409, "petition_id", "Seules les pétitions en ligne peuvent être signalées."
        )
    reason_code = document.get("reason_code")
    if not isinstance(reason_code, str) or reason_code not in {r.code for r in REPORT_REASONS}:
        raise ReportError(422, "reason_code", "Choisissez le motif du signalement.")
    message = document.get("message") or ""
    if not isinstance(message, str):
        raise ReportError(422, "message", "Le message doit être un texte.")
    message = message.strip()
    limit = ctx.settings.report_message_max_length
    if len(message) > limit:
        raise ReportError(422, "message", f"Le message ne doit pas dépasser {limit} caractères.")
    if has_control_characters(message):
        raise ReportError(422, "message", CONTROL_CHARACTERS)
    return await store.add_report(ctx.pool, petition_id, reason_code, with_line_feeds(message))
