"""The author's own space, as JSON: deposit a draft, edit it, submit it, follow it.

The author is the subject of an author token (cookie ``paraphe_author`` or bearer). Another
author's petition does not exist for them: 404, never 403, so ids reveal nothing. A change
made with the cookie from another site's page never reaches them (paraphe_common.security).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from paraphe_common.auth import authenticate
from paraphe_common.problems import Problem
from paraphe_common.tokens import AUTHOR
from paraphe_petition_catalog import lifecycle
from paraphe_petition_catalog.inputs import (
    DraftChanges,
    DraftInput,
    invalid_field,
    petition_id,
    petition_not_found,
    read_json,
)
from paraphe_petition_catalog.jobs import publish_after_commit
from paraphe_petition_catalog.store import STORE, Petition

_INVALID_DRAFT = "La pétition n'est pas valide : corrigez les champs indiqués."


def _author_id(request: web.Request) -> str:
    return authenticate(request, AUTHOR).subject


def _check_committee(request: web.Request, committee: str | None) -> None:
    if committee is not None and committee not in request.app[STORE].committees:
        raise invalid_field("suggested_committee", "commission inconnue", _INVALID_DRAFT)


async def _authors_petition(request: web.Request, author_id: str, pid: uuid.UUID) -> Petition:
    petition = await request.app[STORE].petition(pid)
    if petition is None or petition.author_id != author_id:
        raise petition_not_found()
    return petition


def _conflict(refused: lifecycle.TransitionRefused) -> Problem:
    return Problem(409, refused.detail, kind="invalid-transition", petition_status=refused.status)


async def list_my_petitions(request: web.Request) -> web.Response:
    author_id = _author_id(request)
    petitions = await request.app[STORE].authors_petitions(author_id)
    return web.json_response({"items": [petition.author_json() for petition in petitions]})


async def create_draft(request: web.Request) -> web.Response:
    author_id = _author_id(request)
    draft = await read_json(request, DraftInput, _INVALID_DRAFT)
    _check_committee(request, draft.suggested_committee)
    try:
        pid = await lifecycle.create_draft(
            request.app[STORE].pool,
            author_id,
            lifecycle.Draft(draft.title, draft.body, draft.suggested_committee),
        )
    except lifecycle.UnknownAuthor:
        raise Problem(
            403,
            "Votre identité n'est pas connue du catalogue : identifiez-vous à nouveau.",
            kind="unknown-author",
        ) from None
    petition = await _authors_petition(request, author_id, pid)
    return web.json_response(
        petition.author_json(), status=201, headers={"Location": f"/api/author/petitions/{pid}"}
    )


async def get_my_petition(request: web.Request) -> web.Response:
    author_id = _author_id(request)
    petition = await _authors_petition(request, author_id, petition_id(request))
    return web.json_response(petition.author_json())


async def edit_my_draft(request: web.Request) -> web.Response:
    author_id = _author_id(request)
    pid = petition_id(request)
    changes = await read_json(request, DraftChanges, _INVALID_DRAFT)
    _check_committee(request, changes.suggested_committee)
    try:
        await lifecycle.edit_draft(request.app[STORE].pool, author_id, pid, changes.changes())
    except lifecycle.PetitionNotFound:
        raise petition_not_found() from None
    except lifecycle.TransitionRefused as refused:
        raise _conflict(refused) from None
    petition = await _authors_petition(request, author_id, pid)
    return web.json_response(petition.author_json())


async def delete_my_draft(request: web.Request) -> web.Response:
    author_id = _author_id(request)
    try:
        await lifecycle.delete_draft(request.app[STORE].pool, author_id, petition_id(request))
    except lifecycle.PetitionNotFound:
        raise petition_not_found() from None
    except lifecycle.TransitionRefused as refused:
        raise _conflict(refused) from None
    return web.Response(status=204)


async def submit_my_draft(request: web.Request) -> web.Response:
    author_id = _author_id(request)
    pid = petition_id(request)
    try:
        await lifecycle.submit(request.app[STORE].pool, author_id, pid)
    except lifecycle.PetitionNotFound:
        raise petition_not_found() from None
    except lifecycle.TransitionRefused as refused:
        raise _conflict(refused) from None
    await publish_after_commit(request.app)
    petition = await _authors_petition(request, author_id, pid)
    return web.json_response(petition.author_json())
