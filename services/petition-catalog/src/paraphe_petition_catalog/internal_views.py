"""The internal API moderation calls with the staff member's own token (never proxied).

The catalogue checks the token and the role itself: moderation forwards the staff member's
token and never acts under a power of its own. Publishing, rejecting and taking down need the
moderator (or admin) role; recording a follow-up step, the committee secretariat (or admin).
Reading a petition whole: a submission under review or rejected, the moderator (or admin); a
published one, every staff role; a draft, none (``petitions.READ_ROLES``).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from paraphe_common import follow_up
from paraphe_common.auth import authenticate
from paraphe_common.problems import Problem
from paraphe_common.tokens import STAFF, STAFF_ROLES, Claims
from paraphe_petition_catalog import lifecycle
from paraphe_petition_catalog.inputs import (
    invalid_field,
    petition_id,
    petition_not_found,
    read_decision,
)
from paraphe_petition_catalog.jobs import publish_after_commit
from paraphe_petition_catalog.petitions import DECISION_ROLES, PUBLISH, READ_ROLES
from paraphe_petition_catalog.settings import SETTINGS
from paraphe_petition_catalog.store import STORE

_INVALID_DECISION = "La décision n'est pas valide : corrigez les champs indiqués."


def _staff(request: web.Request) -> Claims:
    claims = authenticate(request, STAFF)
    if not claims.roles & STAFF_ROLES:
        raise Problem(403, "Votre compte n'a pas accès à cette action.", kind="missing-role")
    return claims


async def _staff_view(request: web.Request, pid: uuid.UUID, claims: Claims) -> web.Response:
    petition = await request.app[STORE].petition(pid)
    if petition is None or not READ_ROLES[petition.status]:
        raise petition_not_found()  # a draft is its author's alone
    if not claims.roles & READ_ROLES[petition.status]:
        raise Problem(
            403,
            "Votre compte ne peut lire une pétition qu'une fois publiée : avant, seuls les "
            "modérateurs la lisent.",
            kind="missing-role",
        )
    return web.json_response(petition.staff_json())


async def get_petition(request: web.Request) -> web.Response:
    return await _staff_view(request, petition_id(request), _staff(request))


async def record_decision(request: web.Request) -> web.Response:
    claims = _staff(request)
    pid = petition_id(request)
    decision = await read_decision(request, _INVALID_DECISION)
    if not claims.roles & DECISION_ROLES[decision.decision]:
        raise Problem(403, "Votre compte n'a pas accès à cette décision.", kind="missing-role")
    if decision.decision == PUBLISH and decision.committee not in request.app[STORE].committees:
        raise invalid_field("committee", "commission inconnue", _INVALID_DECISION)
    try:
        await lifecycle.decide(
            request.app[STORE].pool,
            pid,
            lifecycle.Decision(
                id=decision.decision_id,
                decision=decision.decision,
                staff_subject=claims.subject,
                committee=decision.committee,
                reason_code=decision.reason_code,
                reason=decision.reason,
                step=decision.step,
                note=decision.note,
            ),
            signing_period_months=request.app[SETTINGS].signing_period_months,
            thresholds=request.app[SETTINGS].thresholds,
        )
    except lifecycle.PetitionNotFound:
        raise petition_not_found() from None
    except lifecycle.DecisionIdReused:
        raise Problem(
            409,
            "Cet identifiant de décision a déjà servi pour une autre décision.",
            kind="decision-id-reused",
        ) from None
    except lifecycle.FollowUpRefused as refused:
        raise Problem(
            409, refused.detail, kind=follow_up.NOT_ALLOWED, petition_status=refused.status
        ) from None
    except lifecycle.TransitionRefused as refused:
        raise Problem(
            409, refused.detail, kind="invalid-transition", petition_status=refused.status
        ) from None
    await publish_after_commit(request.app)
    return await _staff_view(request, pid, claims)
