"""Sign a petition; ask whether one has signed. Thin: the rules live in signatures.py."""

from __future__ import annotations

import functools
import json
import time

from aiohttp import web
from redis.exceptions import RedisError

from paraphe_common.auth import authenticate
from paraphe_common.peppers import PEPPER_SCHEDULE, signer_key_for
from paraphe_common.petition_states import PETITION_STATES, PetitionState
from paraphe_common.problems import Problem
from paraphe_common.tokens import SIGNER, Claims
from paraphe_signature_intake.context import INTAKE
from paraphe_signature_intake.signatures import JetStreamUnavailable, Outcome, dedupe_key


def _open_petition(request: web.Request) -> tuple[str, PetitionState]:
    petition_id = request.match_info["petition_id"]
    state = request.app[PETITION_STATES].get(petition_id)
    if state is None:
        raise Problem(404, "Cette pétition n'existe pas.", kind="petition-not-found")
    if not state.is_open(time.time()):
        raise Problem(
            409,
            "Cette pétition n'est pas ouverte à la signature.",
            kind="petition-not-open",
            petition_status="closed" if state.status == "published" else state.status,
        )
    return petition_id, state


def _signer_key(request: web.Request, claims: Claims, state: PetitionState) -> str:
    schedule = request.app[PEPPER_SCHEDULE]
    return signer_key_for(claims, state, schedule)


async def sign(request: web.Request) -> web.Response:
    intake = request.app[INTAKE]
    claims = authenticate(request, SIGNER)
    petition_id, state = _open_petition(request)
    signer = _signer_key(request, claims, state)  # under the petition's pepper
    wait = intake.limit.retry_after(claims.subject)
    if wait:
        intake.metrics.refused.labels("rate-limited").inc()
        raise Problem(
            429,
            "Trop de tentatives de signature : merci de patienter un instant.",
            kind="rate-limited",
            headers={"Retry-After": str(wait)},
        )
    try:
        outcome = await intake.core.accept(petition_id, dedupe_key(signer, petition_id))
    except JetStreamUnavailable:
        intake.metrics.refused.labels("jetstream-unavailable").inc()
        raise Problem(
            503,
            "Votre signature n'a pas pu être enregistrée : merci de réessayer dans un instant.",
            kind="signature-not-recorded",
            headers={"Retry-After": "2"},
        ) from None
    intake.metrics.by_outcome[outcome].inc()
    return web.Response(
        body=_answer(petition_id, outcome),
        status=200 if outcome is Outcome.ALREADY_SIGNED else 202,
        content_type="application/json",
    )


@functools.lru_cache(maxsize=4096)
def _answer(petition_id: str, outcome: Outcome) -> bytes:
    """The same bytes for every answer of a kind: encoded once per petition."""
    return json.dumps({"petition_id": petition_id, "status": outcome.value}).encode()


async def my_signature(request: web.Request) -> web.Response:
    intake = request.app[INTAKE]
    claims = authenticate(request, SIGNER)
    petition_id = request.match_info["petition_id"]
    state = request.app[PETITION_STATES].get(petition_id)
    if state is None:
        raise Problem(404, "Cette pétition n'existe pas.", kind="petition-not-found")
    try:
        signer = _signer_key(request, claims, state)
        signed = await intake.core.has_signed(petition_id, dedupe_key(signer, petition_id))
    except (RedisError, OSError) as exc:
        raise Problem(
            503, "Impossible de le vérifier pour le moment.", headers={"Retry-After": "2"}
        ) from exc
    return web.json_response(
        {"petition_id": petition_id, "signed": signed}, headers={"Cache-Control": "no-store"}
    )
