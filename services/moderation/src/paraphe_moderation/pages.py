"""Staff pages under /moderation/, and the public report form: French, no JavaScript needed.

Every form is a POST answered by a redirect (303) once it succeeded, or by the same page with
the error when it did not. Forms that change something are refused unless they come from the
site's own pages (Origin, else Referer, against PARAPHE_PUBLIC_URL), on top of the SameSite
session cookie.
"""

from __future__ import annotations

import uuid
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiDictProxy

from paraphe_common import follow_up
from paraphe_common.bodies import read_form
from paraphe_common.petition_states import PETITION_STATES
from paraphe_common.problems import Problem
from paraphe_common.site import require_same_origin, setup_site
from paraphe_common.tokens import ADMIN
from paraphe_moderation import store
from paraphe_moderation.catalog import CatalogRefused, CatalogUnavailable
from paraphe_moderation.context import PUBLIC_ORIGIN
from paraphe_moderation.decisions import (
    FOLLOW_UP_DECISION,
    ITEM_DECISIONS,
    KIND_ROLES,
    MODERATORS,
    SECRETARIATS,
    TAKE_DOWN,
    decision_document,
    follow_up_refusal,
    invalid_params_of,
    kinds_seen_by,
    read_decision,
    require_kind_seen,
    require_role,
)
from paraphe_moderation.reasons import REPORT_REASONS
from paraphe_moderation.reports import ReportError, accept_report
from paraphe_moderation.store import KINDS, QueueItem, Staff
from paraphe_moderation.views import context, staff_of, staff_token

SIGN_IN: Final = "/auth/login?" + urlencode({"flow": "staff", "return_to": "/moderation/"})
PER_PAGE: Final = 25
KIND_LABELS: Final = {
    "review": "Recevabilité",
    "report": "Signalements",
    "follow-up": "Suivi après seuil",
}
RESOLUTION_LABELS: Final = {
    "published": "Publiée",
    "rejected": "Déclarée irrecevable",
    "hidden": "Retirée",
    "dismissed": "Signalement classé sans suite",
    "closed": "Pétition close",
    **follow_up.STEPS,
}
NOTICES: Final = {
    "decided": "La décision est enregistrée.",
    "released": "L'élément est rendu à la file.",
    "nothing": "Aucun élément n'attend dans cette file.",
    "followed-up": "L'étape de suivi est enregistrée.",
    "taken-down": "La pétition est retirée.",
}


def age_fr(seconds: float) -> str:
    """How long an item has waited, in French: « 3 h », « 2 jours »."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "moins d'une minute"
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} jours"


def setup_templates(app: web.Application) -> None:
    setup_site(app, "paraphe_moderation", filters={"age_fr": age_fr})


def _render(
    request: web.Request, template: str, data: dict[str, Any], status: int = 200
) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, data, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _signed_in(request: web.Request) -> Staff | None:
    """The agent, or None when nobody is signed in; a signed-in agent without a role gets 403."""
    try:
        return staff_of(request)
    except Problem as problem:
        if problem.status == 401:
            return None
        raise


def _sign_in_page(request: web.Request) -> web.Response:
    return _render(request, "moderation/sign_in.html", {"sign_in": SIGN_IN}, status=401)


def _check_origin(request: web.Request) -> None:
    require_same_origin(request, request.app[PUBLIC_ORIGIN])


async def _form(request: web.Request) -> MultiDictProxy[Any]:
    return await read_form(request, "Le formulaire envoyé n'est pas lisible.")


def _fields(form: MultiDictProxy[Any], names: tuple[str, ...]) -> dict[str, str]:
    return {name: value for name in names if isinstance(value := form.get(name), str)}


def _field_errors(problem: Problem) -> dict[str, str]:
    """The fields a refused decision names (``invalid_params``), each with its reason."""
    params = invalid_params_of(problem.extensions).get("invalid_params", [])
    return {param["name"]: param["reason"] for param in params}


def _staff_or_sign_in(request: web.Request) -> Staff | web.Response:
    staff = _signed_in(request)
    return staff if staff is not None else _sign_in_page(request)


def _common(staff: Staff, request: web.Request) -> dict[str, Any]:
    return {
        "staff": staff,
        "is_admin": ADMIN in staff.roles,
        "notice": NOTICES.get(request.query.get("notice", ""), ""),
        "kind_labels": KIND_LABELS,
        "resolution_labels": RESOLUTION_LABELS,
        "current": "/moderation/",
    }


# ---- the queue ------------------------------------------------------------------------------


async def queue_page(request: web.Request) -> web.Response:
    staff = _staff_or_sign_in(request)
    if isinstance(staff, web.Response):
        return staff
    kinds = kinds_seen_by(staff)
    kind = request.query.get("kind") or next(iter(kinds), "")
    if kind and kind not in KINDS:
        raise Problem(400, "File inconnue.")
    require_kind_seen(staff, kind)
    status = request.query.get("status", "open")
    if status not in ("open", "resolved"):
        raise Problem(400, "État inconnu.")
    try:
        page = max(1, min(int(request.query.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    items, total = await store.list_items(
        context(request).pool,
        kinds=[kind],
        status=status,  # type: ignore[arg-type]
        petition_id=None,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
    )
    return _render(
        request,
        "moderation/queue.html",
        _common(staff, request)
        | {
            "kinds": kinds,
            "kind": kind,
            "status": status,
            "items": items,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PER_PAGE)),
            "page_href": "/moderation/?" + urlencode({"kind": kind, "status": status}) + "&page=",
        },
    )


async def claim_next_form(request: web.Request) -> web.Response:
    _check_origin(request)
    staff = staff_of(request)
    form = await _form(request)
    kind = form.get("kind")
    if kind not in KINDS:
        raise Problem(400, "File inconnue.")
    require_role(staff, KIND_ROLES[str(kind)])
    ctx = context(request)
    item = await store.claim_next(ctx.pool, [str(kind)], staff, ctx.settings.claim_lease_seconds)
    if item is None:
        raise web.HTTPSeeOther("/moderation/?" + urlencode({"kind": kind, "notice": "nothing"}))
    raise web.HTTPSeeOther(f"/moderation/items/{item.id}")


# ---- one item -------------------------------------------------------------------------------


def _item_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["item_id"])
    except ValueError:
        raise Problem(404, "Élément de la file introuvable.") from None


async def _load_item(request: web.Request, staff: Staff) -> QueueItem:
    item = await store.get_item(context(request).pool, _item_id(request))
    if item is None:
        raise Problem(404, "Élément de la file introuvable.")
    require_role(staff, KIND_ROLES[item.kind])
    return item


async def _petition(
    request: web.Request, petition_id: uuid.UUID
) -> tuple[dict[str, Any] | None, str]:
    """The petition as the catalog has it now, or why it cannot be shown."""
    try:
        return await context(request).catalog.petition(str(petition_id), staff_token(request)), ""
    except CatalogUnavailable:
        return None, "Le catalogue des pétitions ne répond pas : son état actuel n'est pas affiché."
    except CatalogRefused as refused:
        return None, refused.detail or "Le catalogue n'a pas donné cette pétition."


async def _item_view(
    request: web.Request,
    staff: Staff,
    item: QueueItem,
    *,
    error: str = "",
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    ctx = context(request)
    petition, petition_error = (None, "")
    if item.kind != store.REVIEW or not item.body:
        petition, petition_error = await _petition(request, item.petition_id)
    if petition is not None and not item.title and isinstance(petition.get("title"), str):
        await store.fill_title(ctx.pool, item.petition_id, petition["title"])
    reports = await store.reports_of(ctx.pool, item.id) if item.kind == store.REPORT else []
    committees = {c.id: c.name for c in ctx.settings.committees}
    form = form or {}
    return _render(
        request,
        "moderation/item.html",
        _common(staff, request)
        | {
            "item": item,
            "mine": item.is_claimed_by(staff),
            "petition": petition,
            "petition_error": petition_error,
            "reports": reports,
            "report_labels": {r.code: r.label for r in REPORT_REASONS},
            "committees": committees,
            "committee_options": list(committees.items()),
            "reason_options": [(r.code, r.label) for r in ctx.settings.reason_codes],
            "decisions": ITEM_DECISIONS.get(item.kind, ()),
            # The committee sent back after an error, else the suggestion, else none: the
            # moderator chooses, nothing is picked for them.
            "selected_committee": form.get("committee", item.suggested_committee or ""),
            "suggested": item.suggested_committee in committees,
            "form": form,
            "error": error,
            "errors": errors or {},
            "decision_id": form.get("decision_id") or str(uuid.uuid4()),
        },
        status=status,
    )


async def item_page(request: web.Request) -> web.Response:
    staff = _staff_or_sign_in(request)
    if isinstance(staff, web.Response):
        return staff
    return await _item_view(request, staff, await _load_item(request, staff))


async def claim_form(request: web.Request) -> web.Response:
    _check_origin(request)
    staff = staff_of(request)
    item = await _load_item(request, staff)
    ctx = context(request)
    if await store.claim(ctx.pool, item.id, staff, ctx.settings.claim_lease_seconds) is None:
        current = await store.get_item(ctx.pool, item.id) or item
        who = current.claimed_by_name or "Un autre agent"
        message = (
            "Cet élément a déjà été traité."
            if not current.is_open
            else f"{who} examine déjà cet élément."
        )
        return await _item_view(request, staff, current, error=message, status=409)
    raise web.HTTPSeeOther(f"/moderation/items/{item.id}")


async def release_form(request: web.Request) -> web.Response:
    _check_origin(request)
    staff = staff_of(request)
    item = await _load_item(request, staff)
    await store.release(context(request).pool, item.id, staff)
    raise web.HTTPSeeOther("/moderation/?" + urlencode({"kind": item.kind, "notice": "released"}))


async def decision_form(request: web.Request) -> web.Response:
    _check_origin(request)
    staff = staff_of(request)
    item = await _load_item(request, staff)
    form = _fields(
        await _form(request),
        ("decision", "committee", "reason_code", "reason", "decision_id", "reports_seen"),
    )
    ctx = context(request)
    try:
        decision, chosen_id = read_decision(form, ctx.settings, ITEM_DECISIONS.get(item.kind, ()))
        await ctx.decisions.on_item(item.id, staff, staff_token(request), decision, chosen_id)
    except Problem as problem:
        if problem.status in (401, 403):
            raise
        current = await store.get_item(ctx.pool, item.id) or item
        response = await _item_view(
            request, staff, current, error=problem.detail or problem.title,
            errors=_field_errors(problem), form=form, status=problem.status,
        )  # fmt: skip
        response.headers.update(problem.headers)
        return response
    raise web.HTTPSeeOther("/moderation/?" + urlencode({"kind": item.kind, "notice": "decided"}))


# ---- one petition: follow-up and take-down --------------------------------------------------


def _petition_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["petition_id"])
    except ValueError:
        raise Problem(404, "Pétition introuvable.") from None


async def _petition_view(
    request: web.Request,
    staff: Staff,
    petition_id: uuid.UUID,
    *,
    error: str = "",
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    ctx = context(request)
    petition, petition_error = await _petition(request, petition_id)
    if petition is not None and isinstance(petition.get("title"), str):
        await store.fill_title(ctx.pool, petition_id, petition["title"])
    thresholds = ctx.settings.thresholds
    # Which steps the petition is at, when the catalog said; the catalog's answer decides.
    follow_up_closed = follow_up_refusal(petition, None, thresholds) if petition else None
    step_options = [
        (step, label)
        for step, label in follow_up.STEPS.items()
        if petition is None or follow_up_refusal(petition, step, thresholds) is None
    ]
    items, _ = await store.list_items(
        ctx.pool,
        kinds=kinds_seen_by(staff),
        status="all",
        petition_id=petition_id,
        limit=50,
        offset=0,
    )
    return _render(
        request,
        "moderation/petition.html",
        _common(staff, request)
        | {
            "petition_id": petition_id,
            "petition": petition,
            "petition_error": petition_error,
            "items": items,
            "steps": follow_up.STEPS,
            "step_options": step_options,
            "follow_up_closed": follow_up_closed,
            "reason_options": [(r.code, r.label) for r in ctx.settings.reason_codes],
            "may_follow_up": bool(staff.roles & SECRETARIATS),
            "may_take_down": bool(staff.roles & MODERATORS),
            "form": form or {},
            "error": error,
            "errors": errors or {},
            "decision_id": (form or {}).get("decision_id") or str(uuid.uuid4()),
        },
        status=status,
    )


async def petition_page(request: web.Request) -> web.Response:
    staff = _staff_or_sign_in(request)
    if isinstance(staff, web.Response):
        return staff
    return await _petition_view(request, staff, _petition_id(request))


async def petition_decision_form(request: web.Request) -> web.Response:
    _check_origin(request)
    staff = staff_of(request)
    petition_id = _petition_id(request)
    form = _fields(
        await _form(request), ("decision", "step", "note", "reason_code", "reason", "decision_id")
    )
    ctx = context(request)
    try:
        decision, chosen_id = read_decision(form, ctx.settings, (TAKE_DOWN, FOLLOW_UP_DECISION))
        await ctx.decisions.on_petition(
            petition_id, staff, staff_token(request), decision, chosen_id
        )
    except Problem as problem:
        if problem.status in (401, 403):
            raise
        response = await _petition_view(
            request, staff, petition_id, error=problem.detail or problem.title,
            errors=_field_errors(problem), form=form, status=problem.status,
        )  # fmt: skip
        response.headers.update(problem.headers)
        return response
    notice = "followed-up" if decision.decision == FOLLOW_UP_DECISION else "taken-down"
    raise web.HTTPSeeOther(f"/moderation/petitions/{petition_id}?notice={notice}")


# ---- the audit log --------------------------------------------------------------------------


async def audit_page(request: web.Request) -> web.Response:
    staff = _staff_or_sign_in(request)
    if isinstance(staff, web.Response):
        return staff
    require_role(staff, frozenset({ADMIN}))
    try:
        page = max(1, min(int(request.query.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    entries, total = await store.audit_log(
        context(request).pool, petition_id=None, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    return _render(
        request,
        "moderation/audit.html",
        _common(staff, request)
        | {
            "entries": [decision_document(e) | {"at_value": e.at} for e in entries],
            "page": page,
            "pages": max(1, -(-total // PER_PAGE)),
            "page_href": "/moderation/journal?page=",
            "current": "/moderation/journal",
        },
    )


# ---- the public report form -----------------------------------------------------------------


def _report_view(
    request: web.Request, form: dict[str, str], errors: dict[str, str], status: int = 200
) -> web.Response:
    return _render(
        request,
        "moderation/report.html",
        {
            "form": form,
            "errors": errors,
            "reason_options": [(r.code, r.label) for r in REPORT_REASONS],
            "max_length": context(request).settings.report_message_max_length,
        },
        status=status,
    )


async def report_page(request: web.Request) -> web.Response:
    return _report_view(request, {"petition_id": request.query.get("petition", "")}, {})


async def report_form(request: web.Request) -> web.Response:
    _check_origin(request)
    form = _fields(await _form(request), ("petition_id", "reason_code", "message"))
    try:
        await accept_report(context(request), request.config_dict[PETITION_STATES], request, form)
    except ReportError as error:
        return _report_view(request, form, {error.field: error.message}, status=error.status)
    return _render(request, "moderation/report_received.html", {}, status=200)
