"""Sign a petition; ask whether one has signed. Thin: the rules live in signatures.py."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable
from typing import Final

from aiohttp import web
from redis.exceptions import RedisError

from paraphe_common.app import FastRoute
from paraphe_common.auth import TOKEN_VERIFIER, authenticate, presented_token
from paraphe_common.marks import marks_surely_kept
from paraphe_common.peppers import PEPPER_SCHEDULE, signer_key_for
from paraphe_common.petition_states import PETITION_STATES, PetitionState
from paraphe_common.problems import Problem
from paraphe_common.security import CLIENT_NETWORK, is_cross_site
from paraphe_common.tokens import SIGNER, Claims, InvalidToken
from paraphe_common.velocity import SIGNING_GUARD
from paraphe_signature_intake.context import INTAKE
from paraphe_signature_intake.signatures import JetStreamUnavailable, Outcome, dedupe_key

SIGNATURES_ROUTE: Final = "/api/petitions/{petition_id}/signatures"
_PETITIONS: Final = "/api/petitions/"
_SIGNATURES: Final = "/signatures"
_JSON: Final = "application/json"


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


async def sign(request: web.Request) -> web.Response:
    """The ordinary way: every request the fast route (``fast_signing``) declines."""
    app = request.app
    await app[SIGNING_GUARD].admit(request)
    claims = authenticate(request, SIGNER)
    petition_id, state = _open_petition(request)
    return await _accept(app, request, claims, petition_id, state)


async def _accept(
    app: web.Application,
    request: web.BaseRequest,
    claims: Claims,
    petition_id: str,
    state: PetitionState,
) -> web.Response:
    """A signature by an authenticated signer of an open petition, its client admitted."""
    intake = app[INTAKE]
    schedule = app[PEPPER_SCHEDULE]
    signer = signer_key_for(claims, state, schedule)  # under the petition's pepper
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
    if outcome is Outcome.ACCEPTED:
        app[SIGNING_GUARD].accepted(request, petition_id)
        return web.Response(body=_answer(petition_id, outcome), status=202, content_type=_JSON)
    return web.Response(body=_answer(petition_id, outcome), status=200, content_type=_JSON)


def fast_signing(app: web.Application) -> FastRoute:
    """Signatures before routing: the request a surge of signers repeats.

    Taken here: a POST of a signer whose token is valid, to an open petition, not refused as
    cross-site; it is then admitted (the client's limit), limited per signer and accepted
    exactly as the ordinary way does (``_accept``), problems included. Anything else (no token
    or a bad one, an unknown or closed petition, a cross-site form) goes the ordinary way,
    which answers its problem: nothing is counted before that decision.
    """
    verifier = app[TOKEN_VERIFIER]
    states = app[PETITION_STATES]
    network = app[CLIENT_NETWORK]
    guard = app[SIGNING_GUARD]

    def answer(request: web.BaseRequest) -> Awaitable[web.Response] | None:
        path = request.path
        if request.method != "POST" or not (
            path.startswith(_PETITIONS) and path.endswith(_SIGNATURES)
        ):
            return None
        petition_id = path[len(_PETITIONS) : -len(_SIGNATURES)]
        state = states.get(petition_id)
        if state is None or not state.is_open(time.time()):
            return None
        token = presented_token(request, SIGNER)
        if not token or is_cross_site(request, network):
            return None
        try:
            claims = verifier.verify(token, SIGNER)
        except InvalidToken:
            return None
        return _admitted(request, claims, petition_id, state)

    async def _admitted(
        request: web.BaseRequest, claims: Claims, petition_id: str, state: PetitionState
    ) -> web.Response:
        await guard.admit(request)
        return await _accept(app, request, claims, petition_id, state)

    return FastRoute(SIGNATURES_ROUTE, answer)


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
        schedule = request.app[PEPPER_SCHEDULE]
        signer = signer_key_for(claims, state, schedule)
        signed: bool | None = await intake.core.has_signed(
            petition_id, dedupe_key(signer, petition_id)
        )
    except (RedisError, OSError) as exc:
        raise Problem(
            503, "Impossible de le vérifier pour le moment.", headers={"Retry-After": "2"}
        ) from exc
    if not signed and not marks_surely_kept(state, time.time(), intake.marks_kept_days):
        signed = None  # the counter may have forgotten the marks: no longer known
    return web.json_response(
        {"petition_id": petition_id, "signed": signed}, headers={"Cache-Control": "no-store"}
    )
