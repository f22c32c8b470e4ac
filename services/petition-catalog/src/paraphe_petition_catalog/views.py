"""Thin handlers of the public API and the pages: read the request, ask the store."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web
from pydantic import ValidationError

from paraphe_common.auth import authenticate
from paraphe_common.problems import Problem
from paraphe_common.tokens import SERVICE
from paraphe_petition_catalog import authors
from paraphe_petition_catalog.inputs import (
    choice_parameter,
    int_parameter,
    invalid_body,
    petition_id,
    petition_not_found,
    text_parameter,
)
from paraphe_petition_catalog.store import (
    PUBLIC_STATUS_FILTERS,
    SORTS,
    STORE,
    Petition,
    PetitionQuery,
)

MAX_PER_PAGE: Final = 100
MAX_PAGE: Final = 10_000
MAX_QUERY_LENGTH: Final = 200
_LARGEST_THRESHOLD: Final = 2**31 - 1
OPENAPI: Final = Path(__file__).parent / "openapi.json"
OPENAPI_DOCUMENT: Final = web.AppKey("openapi_document", bytes)


@dataclass(frozen=True)
class ListAddress:
    """How an address of the public list names its filters and their choices.

    The JSON API speaks the store's English words; the list page speaks French to citizens
    (pages.PAGE_ADDRESS). ``statuses`` and ``sorts`` map a choice as the address writes it to
    the store's (PUBLIC_STATUS_FILTERS, SORTS). With ``labels``, a wrong choice is answered
    with the choices as the form shows them (committees by their names), not as values.
    """

    status: str
    committee: str
    threshold: str
    sort: str
    statuses: Mapping[str, str]
    sorts: Mapping[str, str]
    labels: Mapping[str, str] | None = None


API_ADDRESS: Final = ListAddress(
    status="status",
    committee="committee",
    threshold="threshold",
    sort="sort",
    statuses={status: status for status in PUBLIC_STATUS_FILTERS},
    sorts={sort: sort for sort in SORTS},
)


def petition_query(
    request: web.Request, address: ListAddress = API_ADDRESS
) -> tuple[PetitionQuery, int]:
    """The public list's query string, checked: a 400 problem names what is wrong."""
    committees = request.app[STORE].committees
    labels = address.labels
    if labels is not None:
        labels = {**labels, **{c.id: c.name for c in committees}}
    page = int_parameter(request, "page", 1, MAX_PAGE) or 1
    per_page = int_parameter(request, "per_page", 20, MAX_PER_PAGE) or 20
    text = text_parameter(request, "q", MAX_QUERY_LENGTH)
    sort = choice_parameter(request, address.sort, address.sorts, labels)
    if sort == "relevance" and text is None:
        sort = None  # nothing to be relevant to: the default order
    query = PetitionQuery(
        text=text,
        status=choice_parameter(request, address.status, address.statuses, labels),
        committee=choice_parameter(
            request, address.committee, {c.id: c.id for c in committees}, labels
        ),
        threshold=int_parameter(request, address.threshold, None, _LARGEST_THRESHOLD),
        sort=sort or ("relevance" if text is not None else "newest"),
        limit=per_page,
        offset=(page - 1) * per_page,
    )
    return query, page


async def _page(request: web.Request) -> tuple[list[Petition], int, int, int]:
    query, page = petition_query(request)
    items, total = await request.app[STORE].public_petitions(query)
    return items, total, page, query.limit


async def list_petitions(request: web.Request) -> web.Response:
    items, total, page, per_page = await _page(request)
    return web.json_response(
        {
            "items": [petition.public_json() for petition in items],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
    )


async def get_petition(request: web.Request) -> web.Response:
    petition = await request.app[STORE].public_petition(petition_id(request))
    if petition is None:
        raise petition_not_found()
    return web.json_response(petition.public_json())


async def list_committees(request: web.Request) -> web.Response:
    return web.json_response(
        {"items": [{"id": c.id, "name": c.name} for c in request.app[STORE].committees]}
    )


def openapi_document(committees: Iterable[str]) -> bytes:
    """The OpenAPI document of the package, with the configured committee ids as an enum."""
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    document["components"]["schemas"]["CommitteeId"]["enum"] = list(committees)
    return json.dumps(document, ensure_ascii=False).encode()


async def openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[OPENAPI_DOCUMENT], content_type="application/json", charset="utf-8"
    )


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
        raise invalid_body(exc, "Identité d'auteur invalide.") from None
    await authors.record_author(request.app[STORE].pool, author_id, identity)
    return web.Response(status=204)
