"""Thin handlers: read the request, ask the store, turn absences into 404s."""

from __future__ import annotations

import uuid

import aiohttp_jinja2
from aiohttp import web
from pydantic import ValidationError

from paraphe_common.auth import authenticate
from paraphe_common.problems import Problem
from paraphe_common.resources import POSTGRES
from paraphe_common.tokens import SERVICE
from paraphe_petition_catalog import authors, store

MAX_PER_PAGE = 100


def _positive_int(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise Problem(
            400,
            f"Le paramètre « {name} » doit être un entier entre 1 et {maximum}.",
            kind="invalid-parameter",
            invalid_params=[{"name": name, "reason": f"entier entre 1 et {maximum} attendu"}],
        )
    return int(raw)


def _petition_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["petition_id"])
    except ValueError:
        raise Problem(404, "Cette pétition n'existe pas.", kind="petition-not-found") from None


async def _page(request: web.Request) -> tuple[list[store.PublicPetition], int, int, int]:
    page = _positive_int(request, "page", 1, 10_000)
    per_page = _positive_int(request, "per_page", 20, MAX_PER_PAGE)
    items, total = await store.public_petitions(
        request.app[POSTGRES], limit=per_page, offset=(page - 1) * per_page
    )
    return items, total, page, per_page


async def list_petitions(request: web.Request) -> web.Response:
    items, total, page, per_page = await _page(request)
    return web.json_response(
        {
            "items": [petition.as_json() for petition in items],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
    )


async def get_petition(request: web.Request) -> web.Response:
    petition = await store.public_petition(request.app[POSTGRES], _petition_id(request))
    if petition is None:
        raise Problem(404, "Cette pétition n'existe pas.", kind="petition-not-found")
    return web.json_response(petition.as_json())


@aiohttp_jinja2.template("home.html")
async def home_page(request: web.Request) -> dict[str, object]:
    items, total, page, per_page = await _page(request)
    return {"petitions": items, "total": total, "page": page, "per_page": per_page}


@aiohttp_jinja2.template("petition.html")
async def petition_page(request: web.Request) -> dict[str, object]:
    petition = await store.public_petition(request.app[POSTGRES], _petition_id(request))
    if petition is None:
        raise Problem(404, "Cette pétition n'existe pas.", kind="petition-not-found")
    return {"petition": petition}


async def put_author(request: web.Request) -> web.Response:
    """auth-gateway hands over an author's identity after a FranceConnect sign-in."""
    caller = authenticate(request, SERVICE)
    if caller.subject != "auth-gateway":
        raise Problem(403, "Seul le service d'authentification dépose des identités.")
    author_id = request.match_info["author_id"]
    if not authors.AUTHOR_ID.match(author_id):
        raise Problem(404, "Auteur inconnu.", kind="author-not-found")
    try:
        identity = authors.AuthorIdentity.model_validate_json(await request.read())
    except ValidationError as exc:
        raise Problem(
            422,
            "Identité d'auteur invalide.",
            kind="invalid-body",
            invalid_params=[
                {"name": ".".join(str(p) for p in error["loc"]), "reason": error["msg"]}
                for error in exc.errors(include_input=False, include_url=False)
            ],
        ) from None
    await authors.record_author(request.app[POSTGRES], author_id, identity)
    return web.Response(status=204)
