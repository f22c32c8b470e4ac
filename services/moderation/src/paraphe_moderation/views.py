"""The JSON API under /api/moderation/: staff handlers check the staff token and its role first.

Handlers are thin: they read and check the request, call the store or the decisions, and turn
the answer into JSON. Reports are the one anonymous endpoint.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from aiohttp import web

from paraphe_common import follow_up
from paraphe_common.auth import authenticate, bearer_token, presented_token
from paraphe_common.petition_states import PETITION_STATES
from paraphe_common.problems import Problem
from paraphe_common.site import require_same_origin
from paraphe_common.tokens import ADMIN, STAFF, STAFF_ROLES
from paraphe_moderation import store
from paraphe_moderation.context import CONTEXT, PUBLIC_ORIGIN, Context
from paraphe_moderation.decisions import (
    ITEM_DECISIONS,
    KIND_ROLES,
    PETITION_DECISIONS,
    decision_document,
    kinds_seen_by,
    read_decision,
    require_kind_seen,
    require_role,
)
from paraphe_moderation.reasons import REPORT_REASONS
from paraphe_moderation.reports import ReportError, accept_report
from paraphe_moderation.store import KINDS, QueueItem, Staff

MAX_PER_PAGE: Final = 100
ALL_ITEM_DECISIONS: Final = tuple(d for kind in KINDS for d in ITEM_DECISIONS.get(kind, ()))
MAX_PAGE: Final = 10_000
_NO_STORE: Final = {"Cache-Control": "no-store"}


# ---- who is asking --------------------------------------------------------------------------


def staff_of(request: web.Request) -> Staff:
    """The signed-in agent; 401 without a valid staff token, 403 without any staff role."""
    claims = authenticate(request, STAFF)
    roles = claims.roles & STAFF_ROLES
    if not roles:
        raise Problem(403, "Votre compte n'a pas accès à la modération.", kind="missing-role")
    name = claims.extra.get("name")
    return Staff(claims.subject, name if isinstance(name, str) else "", roles)


def staff_changing(request: web.Request) -> Staff:
    """The agent, for a request that changes something.

    A browser sends the session cookie by itself, so a change authenticated by the cookie must
    also come from the site's own pages (SameSite=Lax already keeps it off cross-site posts);
    a bearer token is never sent by a browser on its own.
    """
    staff = staff_of(request)
    if bearer_token(request) is None:  # the token came from the cookie (presented_token)
        require_same_origin(request, request.app[PUBLIC_ORIGIN])
    return staff


def staff_token(request: web.Request) -> str:
    return presented_token(request, STAFF) or ""


def context(request: web.Request) -> Context:
    return request.config_dict[CONTEXT]


# ---- reading the request --------------------------------------------------------------------


def path_uuid(request: web.Request, name: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise Problem(404, f"{what} introuvable.") from None


def query_uuid(request: web.Request, name: str) -> uuid.UUID | None:
    if name not in request.query:
        return None
    try:
        return uuid.UUID(request.query[name])
    except ValueError:
        raise Problem(400, f"« {name} » doit être un UUID.", kind="invalid-query") from None


def paging(request: web.Request) -> tuple[int, int]:
    try:
        page = int(request.query.get("page", "1"))
        per_page = int(request.query.get("per_page", "25"))
    except ValueError:
        raise Problem(
            400, "« page » et « per_page » sont des entiers.", kind="invalid-query"
        ) from None
    if not 1 <= page <= MAX_PAGE or not 1 <= per_page <= MAX_PER_PAGE:
        raise Problem(
            400,
            f"« page » va de 1 à {MAX_PAGE}, « per_page » de 1 à {MAX_PER_PAGE}.",
            kind="invalid-query",
        )
    return page, per_page


def queue_filters(request: web.Request) -> tuple[str | None, store.Status]:
    kind = request.query.get("kind")
    if kind is not None and kind not in KINDS:
        raise Problem(400, "« kind » vaut review, report ou follow-up.", kind="invalid-query")
    status = request.query.get("status", "open")
    if status not in ("open", "resolved", "all"):
        raise Problem(400, "« status » vaut open, resolved ou all.", kind="invalid-query")
    return kind, status  # type: ignore[return-value]


async def json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise Problem(415, "Envoyez un objet JSON (application/json).")
    # Malformed JSON, invalid UTF-8, an unknown charset, arrays nested past the parser's depth.
    try:
        return await request.json()
    except (ValueError, LookupError, RecursionError):
        raise Problem(400, "Le corps de la requête n'est pas du JSON valide.") from None


# ---- documents ------------------------------------------------------------------------------


def item_document(item: QueueItem) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "kind": item.kind,
        "petition_id": str(item.petition_id),
        "title": item.title,
        "body": item.body,
        "suggested_committee": item.suggested_committee,
        "author_committee": item.details.get("author_committee"),
        "committee_scores": item.details.get("scores", []),
        "threshold": item.details.get("threshold"),
        "signatures": item.details.get("signatures"),
        "reports": item.details.get("reports"),
        "created_at": item.created_at.isoformat(),
        "age_seconds": round(item.age_seconds),
        "claimed_by": item.claimed_by,
        "claimed_by_name": item.claimed_by_name,
        "claim_expires_at": item.claim_expires_at.isoformat() if item.claim_expires_at else None,
        "resolved_at": item.resolved_at.isoformat() if item.resolved_at else None,
        "resolution": item.resolution,
        "decisions": list(ITEM_DECISIONS.get(item.kind, ())),
    }


async def open_item(request: web.Request, staff: Staff) -> QueueItem:
    item_id = path_uuid(request, "item_id", "Élément de la file")
    item = await store.get_item(context(request).pool, item_id)
    if item is None:
        raise Problem(404, "Élément de la file introuvable.")
    require_role(staff, KIND_ROLES[item.kind])
    return item


# ---- staff handlers -------------------------------------------------------------------------


async def me(request: web.Request) -> web.Response:
    """The signed-in agent's roles, as auth-gateway's configuration granted them."""
    claims = authenticate(request, STAFF)
    return web.json_response(
        {"name": claims.extra.get("name", ""), "roles": sorted(claims.roles)}, headers=_NO_STORE
    )


async def queue(request: web.Request) -> web.Response:
    staff = staff_of(request)
    kind, status = queue_filters(request)
    if kind is not None:
        require_kind_seen(staff, kind)
    page, per_page = paging(request)
    items, total = await store.list_items(
        context(request).pool,
        kinds=[kind] if kind is not None else kinds_seen_by(staff),
        status=status,
        petition_id=query_uuid(request, "petition_id"),
        limit=per_page,
        offset=(page - 1) * per_page,
    )
    return web.json_response(
        {
            "items": [item_document(item) for item in items],
            "total": total,
            "page": page,
            "per_page": per_page,
        },
        headers=_NO_STORE,
    )


async def get_item(request: web.Request) -> web.Response:
    staff = staff_of(request)
    item = await open_item(request, staff)
    document = item_document(item)
    if item.kind == store.REPORT:
        document["report_list"] = [
            {
                "reason_code": r.reason_code,
                "message": r.message,
                "received_at": r.received_at.isoformat(),
            }
            for r in await store.reports_of(context(request).pool, item.id)
        ]
    return web.json_response(document, headers=_NO_STORE)


async def claim_item(request: web.Request) -> web.Response:
    staff = staff_changing(request)
    item = await open_item(request, staff)
    ctx = context(request)
    claimed = await store.claim(ctx.pool, item.id, staff, ctx.settings.claim_lease_seconds)
    if claimed is None:
        raise claim_refused(await store.get_item(ctx.pool, item.id))
    return web.json_response(item_document(claimed), headers=_NO_STORE)


def claim_refused(item: QueueItem | None) -> Problem:
    if item is None or not item.is_open:
        return Problem(409, "Cet élément a déjà été traité.", kind="already-resolved")
    return Problem(
        409,
        f"{item.claimed_by_name or 'Un autre agent'} examine déjà cet élément.",
        kind="already-claimed",
        claimed_by_name=item.claimed_by_name,
        claim_expires_at=item.claim_expires_at.isoformat() if item.claim_expires_at else None,
    )


async def claim_next(request: web.Request) -> web.Response:
    staff = staff_changing(request)
    kind = request.query.get("kind")
    if kind is not None and kind not in KINDS:
        raise Problem(400, "« kind » vaut review, report ou follow-up.", kind="invalid-query")
    if kind is not None:
        require_role(staff, KIND_ROLES[kind])
    # Without a kind, the oldest item of any queue the agent works on.
    kinds = [kind] if kind is not None else kinds_seen_by(staff)
    ctx = context(request)
    item = await store.claim_next(ctx.pool, kinds, staff, ctx.settings.claim_lease_seconds)
    return web.json_response({"item": item_document(item) if item else None}, headers=_NO_STORE)


async def release_item(request: web.Request) -> web.Response:
    staff = staff_changing(request)
    item = await open_item(request, staff)
    if not await store.release(context(request).pool, item.id, staff):
        raise Problem(409, "Vous n'aviez pas cet élément en charge.", kind="not-claimed")
    return web.Response(status=204)


async def decide_item(request: web.Request) -> web.Response:
    staff = staff_changing(request)
    item_id = path_uuid(request, "item_id", "Élément de la file")
    ctx = context(request)
    decision, chosen_id = read_decision(await json_body(request), ctx.settings, ALL_ITEM_DECISIONS)
    outcome = await ctx.decisions.on_item(item_id, staff, staff_token(request), decision, chosen_id)
    return web.json_response(outcome.document(), headers=_NO_STORE)


async def decide_petition(request: web.Request) -> web.Response:
    staff = staff_changing(request)
    petition_id = path_uuid(request, "petition_id", "Pétition")
    ctx = context(request)
    decision, chosen_id = read_decision(await json_body(request), ctx.settings, PETITION_DECISIONS)
    outcome = await ctx.decisions.on_petition(
        petition_id, staff, staff_token(request), decision, chosen_id
    )
    return web.json_response(outcome.document(), headers=_NO_STORE)


async def audit(request: web.Request) -> web.Response:
    staff = staff_of(request)
    require_role(staff, frozenset({ADMIN}))
    page, per_page = paging(request)
    entries, total = await store.audit_log(
        context(request).pool,
        petition_id=query_uuid(request, "petition_id"),
        limit=per_page,
        offset=(page - 1) * per_page,
    )
    return web.json_response(
        {
            "entries": [decision_document(e) | {"id": e.id} for e in entries],
            "total": total,
            "page": page,
            "per_page": per_page,
        },
        headers=_NO_STORE,
    )


async def vocabulary(request: web.Request) -> web.Response:
    """Committees, reason codes and follow-up steps, with their French labels."""
    settings = context(request).settings
    return web.json_response(
        {
            "committees": [{"id": c.id, "name": c.name} for c in settings.committees],
            "reason_codes": [{"code": r.code, "label": r.label} for r in settings.reason_codes],
            "report_reasons": [{"code": r.code, "label": r.label} for r in REPORT_REASONS],
            "follow_up_steps": [
                {"step": s, "label": label} for s, label in follow_up.STEPS.items()
            ],
        },
        headers={"Cache-Control": "public, max-age=300"},
    )


# ---- public reports -------------------------------------------------------------------------


async def post_report(request: web.Request) -> web.Response:
    ctx = context(request)
    try:
        await accept_report(
            ctx, request.config_dict[PETITION_STATES], request, await json_body(request)
        )
    except ReportError as error:
        raise Problem(
            error.status, error.message, kind="invalid-report", field=error.field
        ) from None
    return web.json_response(
        {"received": True, "message": "Merci : votre signalement sera examiné par un modérateur."},
        status=202,
    )


async def report_reasons(request: web.Request) -> web.Response:
    return web.json_response(
        [{"code": r.code, "label": r.label} for r in REPORT_REASONS],
        headers={"Cache-Control": "public, max-age=300"},
    )
