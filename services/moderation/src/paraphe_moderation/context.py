"""What the handlers share, built once the resources it needs are open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from paraphe_common.resources import POSTGRES, CleanupContext
from paraphe_moderation.catalog import CATALOG, Catalog
from paraphe_moderation.decisions import Decisions
from paraphe_moderation.metrics import MODERATION_METRICS, ModerationMetrics
from paraphe_moderation.reports import ReportLimiter
from paraphe_moderation.settings import ModerationSettings


@dataclass(frozen=True)
class Context:
    settings: ModerationSettings
    pool: asyncpg.Pool
    catalog: Catalog
    decisions: Decisions
    metrics: ModerationMetrics
    report_limiter: ReportLimiter


CONTEXT = web.AppKey("moderation_context", Context)
# scheme://host[:port] of PARAPHE_PUBLIC_URL: the Origin of the site's own pages.
PUBLIC_ORIGIN = web.AppKey("public_origin", str)


def moderation_context(settings: ModerationSettings) -> CleanupContext:
    """Needs PostgreSQL and the catalog client before it."""

    async def build_context(app: web.Application) -> AsyncIterator[None]:
        metrics = app[MODERATION_METRICS]
        app[CONTEXT] = Context(
            settings=settings,
            pool=app[POSTGRES],
            catalog=app[CATALOG],
            decisions=Decisions(app[POSTGRES], app[CATALOG], metrics),
            metrics=metrics,
            report_limiter=ReportLimiter(settings.reports_per_hour),
        )
        yield

    return build_context
