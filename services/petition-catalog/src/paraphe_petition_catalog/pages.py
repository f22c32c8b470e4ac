"""The public pages and the author's space, in French, server-rendered with the DSFR.

Every page works without JavaScript; the petition page's live counter and in-page signing are
a static script (static/petition.js) over counter's and intake's APIs. Pages call the
catalogue's domain code in-process (store, lifecycle), as the JSON API does. Forms that change
something are refused unless they come from a page of the site (paraphe_common.site).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import aiohttp
import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from yarl import URL

from paraphe_common.app import request_id_headers
from paraphe_common.auth import COOKIES, TOKEN_VERIFIER, presented_token
from paraphe_common.bodies import read_form
from paraphe_common.problems import Problem
from paraphe_common.resources import REDIS, CleanupContext
from paraphe_common.security import DEPOSIT, forwarded_for, limit_per_client
from paraphe_common.site import require_same_origin, setup_site
from paraphe_common.tokens import AUTHOR, SIGNER, InvalidToken
from paraphe_petition_catalog import lifecycle
from paraphe_petition_catalog.counts import count_key
from paraphe_petition_catalog.inputs import (
    DraftChanges,
    DraftInput,
    invalid_body,
    petition_id,
    petition_not_found,
)
from paraphe_petition_catalog.jobs import publish_after_commit
from paraphe_petition_catalog.petitions import (
    CLOSED,
    DRAFT,
    HIDDEN,
    PUBLIC_STATES,
    PUBLISHED,
    REJECTED,
    SUBMITTED,
)
from paraphe_petition_catalog.settings import SETTINGS
from paraphe_petition_catalog.store import OPEN, STORE, Petition, PetitionQuery
from paraphe_petition_catalog.views import (
    API_ADDRESS,
    MAX_QUERY_LENGTH,
    ListAddress,
    petition_query,
)

log = logging.getLogger(__name__)

STATIC: Final = Path(__file__).parent / "static"
AUTHOR_SPACE: Final = "/mon-espace/"

# The list page's address in French, for citizens: /petitions?statut=ouvertes&tri=plus-signees.
STATUS_LABELS: Final = {"ouvertes": "Ouvertes à la signature", "closes": "Closes"}
SORT_LABELS: Final = {
    "pertinence": "Pertinence",
    "plus-signees": "Les plus signées",
    "plus-recentes": "Les plus récentes",
    "bientot-closes": "Bientôt closes",
}
PAGE_ADDRESS: Final = ListAddress(
    status="statut",
    committee="commission",
    threshold="seuil",
    sort="tri",
    statuses={"ouvertes": OPEN, "closes": CLOSED},
    sorts={
        "pertinence": "relevance",
        "plus-signees": "most-signed",
        "plus-recentes": "newest",
        "bientot-closes": "closing-soon",
    },
    labels={**STATUS_LABELS, **SORT_LABELS},
)
# The API's names, which the list page read before it spoke French: links written with them
# are sent, translated, to the page's own address.
_FORMER_NAMES: Final = {
    API_ADDRESS.status: PAGE_ADDRESS.status,
    API_ADDRESS.committee: PAGE_ADDRESS.committee,
    API_ADDRESS.threshold: PAGE_ADDRESS.threshold,
    API_ADDRESS.sort: PAGE_ADDRESS.sort,
}
_STATUS_WORDS: Final = {store: word for word, store in PAGE_ADDRESS.statuses.items()}
_SORT_WORDS: Final = {store: word for word, store in PAGE_ADDRESS.sorts.items()}
_FORMER_VALUES: Final = {PAGE_ADDRESS.status: _STATUS_WORDS, PAGE_ADDRESS.sort: _SORT_WORDS}
FOLLOW_UP_LABELS: Final = {
    "rapporteur-appointed": "Un rapporteur a été nommé",
    "examined-in-committee": "La pétition a été examinée en commission",
    "classified": "La pétition a été classée",
    "debated-in-public-session": "La pétition a été débattue en séance publique",
    "answer-published": "La réponse a été publiée",
}
# A petition's status in words, for its author (public_status: closed once its deadline passed).
STATUS_WORDS: Final = {
    DRAFT: "Brouillon, que vous seul voyez",
    SUBMITTED: "En cours d'examen par les services du Parlement",
    PUBLISHED: "Ouverte à la signature",
    CLOSED: "Close : elle ne recueille plus de signatures",
    REJECTED: "Déclarée irrecevable",
    HIDDEN: "Retirée par la modération",
}
FIELD_LABELS: Final = {
    "title": "Titre",
    "body": "Texte",
    "suggested_committee": "Commission suggérée",
}
# What the page after a form says happened (the form redirects there: no resubmission).
NOTICES: Final = {
    "enregistree": "Votre brouillon est enregistré : vous pouvez encore le modifier avant de "
    "le soumettre.",
    "soumise": "Votre pétition est soumise : elle sera examinée par les services du Parlement "
    "avant sa publication. Vous lirez ici leur décision.",
}
_INVALID_FORM: Final = "Le formulaire n'a pas pu être lu : rechargez la page et réessayez."
_UNREADABLE: Final = "contient des caractères que le site n'a pas pu lire, à retaper"


def setup_pages(app: web.Application) -> None:
    settings = app[SETTINGS]
    if settings.intake_url is not None:
        app.cleanup_ctx.append(intake_client(str(settings.intake_url)))
    setup_site(app, __package__ or "paraphe_petition_catalog")
    # The DSFR first: /static would otherwise claim its paths.
    app.router.add_static("/static/dsfr", settings.dsfr_dir)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/", home_page)
    app.router.add_get("/petitions", petitions_page)
    app.router.add_get("/petitions/{petition_id}", petition_page)
    app.router.add_post("/petitions/{petition_id}/signature", sign_without_javascript)
    app.router.add_get("/accessibilite", accessibility_page)
    app.router.add_get("/donnees-personnelles", personal_data_page)
    app.router.add_get(AUTHOR_SPACE, author_space)
    app.router.add_get("/mon-espace", to_author_space)
    app.router.add_get("/mon-espace/petitions/nouvelle", new_petition_page)
    app.router.add_post("/mon-espace/petitions", limit_per_client(DEPOSIT)(create_petition))
    app.router.add_get("/mon-espace/petitions/{petition_id}", my_petition_page)
    app.router.add_post("/mon-espace/petitions/{petition_id}", edit_petition)
    app.router.add_post("/mon-espace/petitions/{petition_id}/soumettre", submit_petition)


def public_status(petition: Petition) -> str:
    """The status the public reads: closed as soon as the deadline passed, before the job runs."""
    if petition.status == PUBLISHED and not _is_open(petition):
        return CLOSED
    return petition.status


def _is_open(petition: Petition) -> bool:
    return petition.is_open(datetime.now(UTC))


def _globals(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    return {
        "thresholds": settings.thresholds,
        "public_status": public_status,
        # The search boxes hold no more than the list reads.
        "max_query_length": MAX_QUERY_LENGTH,
    }


# --- public pages ------------------------------------------------------------------------------


@aiohttp_jinja2.template("home.html")
async def home_page(request: web.Request) -> dict[str, Any]:
    store = request.app[STORE]
    most_signed, _ = await store.public_petitions(
        PetitionQuery(status="open", sort="most-signed", limit=3)
    )
    newest, total = await store.public_petitions(PetitionQuery(sort="newest", limit=5))
    return {**_globals(request), "most_signed": most_signed, "newest": newest, "total": total}


def _canonical_address(request: web.Request) -> None:
    """The list's address as its form writes it: the API's English names, which older links
    carry, translated (a permanent redirect); without the form's empty choices ("Toutes"), nor
    « Pertinence » once the search box is emptied (the same page)."""
    searching = bool(request.query.get("q", "").strip())
    kept = []
    renamed = False
    for name, value in request.query.items():
        if name in _FORMER_NAMES:
            renamed = True
            name = _FORMER_NAMES[name]
            value = _FORMER_VALUES.get(name, {}).get(value, value)
        if value == "" or (name == PAGE_ADDRESS.sort and value == "pertinence" and not searching):
            continue
        kept.append((name, value))
    location = str(request.rel_url.with_query(kept))
    if renamed:
        raise web.HTTPMovedPermanently(location)
    if len(kept) != len(request.query):
        raise web.HTTPFound(location)


@aiohttp_jinja2.template("petitions.html")
async def petitions_page(request: web.Request) -> dict[str, Any]:
    _canonical_address(request)
    query, page = petition_query(request, PAGE_ADDRESS)
    store = request.app[STORE]
    petitions, total = await store.public_petitions(query)
    pages = max(1, math.ceil(total / query.limit))
    if page > pages:
        raise Problem(
            404, f"Il n'y a que {pages} page{'s' if pages > 1 else ''} de résultats.",
            kind="page-not-found",
        )  # fmt: skip
    kept = [(name, value) for name, value in request.query.items() if name != "page"]
    page_href = str(URL("/petitions").with_query([*kept, ("page", "")]))
    settings = request.app[SETTINGS]
    return {
        **_globals(request),
        "query": query,
        "petitions": petitions,
        "total": total,
        "page": page,
        "pages": pages,
        "page_href": page_href,
        # What the form shows chosen: what the list was filtered and sorted by.
        "chosen": {
            PAGE_ADDRESS.status: _STATUS_WORDS.get(query.status or "", ""),
            PAGE_ADDRESS.committee: query.committee or "",
            PAGE_ADDRESS.threshold: str(query.threshold) if query.threshold else "",
            PAGE_ADDRESS.sort: _SORT_WORDS[query.sort],
        },
        "statuses": list(STATUS_LABELS.items()),
        "committees": [(c.id, c.name) for c in store.committees],
        "thresholds_options": [
            (str(t), f"{t:,}".replace(",", "\u202f") + " signatures") for t in settings.thresholds
        ],
        "sorts": [
            (word, label)
            for word, label in SORT_LABELS.items()
            if PAGE_ADDRESS.sorts[word] != "relevance" or query.text
        ],
    }


async def _live_count(request: web.Request, petition: Petition) -> int:
    """counter's total from Redis, as the counter keeps it; the catalogue's copy without it."""
    try:
        value = await request.app[REDIS].get(count_key(petition.id))
    except (RedisError, OSError) as exc:
        log.warning("count of a petition page read from the catalogue's copy: %r", exc)
        return petition.signature_count
    return (
        max(int(value), petition.signature_count)
        if value is not None
        else (petition.signature_count)
    )


def _goal(thresholds: tuple[int, ...], count: int) -> int:
    """The next threshold to reach; the last one once all are reached."""
    return next((threshold for threshold in thresholds if count < threshold), thresholds[-1])


async def _public_petition(request: web.Request) -> Petition:
    petition = await request.app[STORE].public_petition(petition_id(request))
    if petition is None or petition.status not in PUBLIC_STATES | {HIDDEN}:
        raise petition_not_found()
    return petition


async def petition_page(request: web.Request) -> web.Response:
    petition = await _public_petition(request)
    if _is_open(petition):  # intake and the count asked together, not one after the other
        signed, count = await asyncio.gather(
            _has_signed(request, petition), _live_count(request, petition)
        )
    else:
        signed, count = None, None  # the count read below, if the petition shows one
    return await _render_petition(
        request, petition, signed=signed is True, signature_known=signed is not None, count=count
    )


async def _has_signed(request: web.Request, petition: Petition) -> bool | None:
    """Whether the person of the signer cookie signed, as intake says (``signatures/me``, with
    their token, which only intake can read); None when nobody says it in time: no cookie, no
    intake, or intake slow, refusing the token or failing. The page then offers the sign
    button, as before; intake never counts a second signature."""
    token = request.cookies.get(COOKIES[SIGNER])
    if not token or INTAKE not in request.app:
        return None
    try:
        async with request.app[INTAKE].get(
            f"api/petitions/{petition.id}/signatures/me",
            headers={"Authorization": f"Bearer {token}", **request_id_headers()},
            timeout=aiohttp.ClientTimeout(total=SIGNATURE_STATE_TIMEOUT),
        ) as answer:
            if answer.status != 200:
                return None
            body = await answer.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.info("a petition page served without the signer's state: %r", exc)
        return None
    signed = body.get("signed") if isinstance(body, dict) else None
    return signed if isinstance(signed, bool) else None


async def _render_petition(
    request: web.Request,
    petition: Petition,
    *,
    signed: bool = False,
    signature_known: bool = False,
    failure: str | None = None,
    status: int = 200,
    count: int | None = None,
) -> web.Response:
    settings = request.app[SETTINGS]
    if petition.status == HIDDEN:
        count = 0
    elif count is None:
        count = await _live_count(request, petition)
    # Whether to offer the sign button or FranceConnect: the signer cookie's presence is
    # enough (intake checks the token itself when the signature is posted).
    signer_signed_in = bool(request.cookies.get(COOKIES[SIGNER]))
    context = {
        **_globals(request),
        "petition": petition,
        "is_open": _is_open(petition),
        "count": count,
        "goal": _goal(settings.thresholds, count),
        "paragraphs": [p for p in petition.body.split("\n\n") if p.strip()],
        "step_labels": FOLLOW_UP_LABELS,
        "signer_signed_in": signer_signed_in,
        "signed": signed,
        # Said by intake already: the page's script need not ask again.
        "signature_known": signed or signature_known,
        "failure": failure,
        "share_url": f"{settings.public_origin}/petitions/{petition.id}",
    }
    response = aiohttp_jinja2.render_template("petition.html", request, context, status=status)
    # The page differs with the signer's cookie: never shared between people by a cache. With
    # the cookie it may say that this person signed, an opinion: kept by no cache at all, not
    # the browser's either (Back, on a shared computer, would show it to the next person).
    response.headers["Cache-Control"] = "no-store" if signer_signed_in else "private, no-cache"
    return response


@aiohttp_jinja2.template("legal/accessibilite.html")
async def accessibility_page(request: web.Request) -> dict[str, Any]:
    return {}


@aiohttp_jinja2.template("legal/donnees.html")
async def personal_data_page(request: web.Request) -> dict[str, Any]:
    return {}


# --- signing without JavaScript ------------------------------------------------------------

INTAKE = web.AppKey("intake", aiohttp.ClientSession)
# Seconds intake may take to answer before the page says to try again.
INTAKE_TIMEOUT: Final = 5.0
# Seconds a petition page waits for intake to say whether its reader signed (a Redis read):
# past them the page is served with the sign button rather than late.
SIGNATURE_STATE_TIMEOUT: Final = 1.0


def intake_client(intake_url: str) -> CleanupContext:
    async def open_intake_client(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(
            base_url=intake_url.rstrip("/") + "/",
            timeout=aiohttp.ClientTimeout(total=INTAKE_TIMEOUT),
        ) as session:
            app[INTAKE] = session
            yield

    return open_intake_client


def _sign_in_to_sign(petition: Petition) -> web.HTTPSeeOther:
    query = {"flow": "sign", "petition": str(petition.id), "return_to": f"/petitions/{petition.id}"}
    return web.HTTPSeeOther(str(URL("/auth/login").with_query(query)))


async def sign_without_javascript(request: web.Request) -> web.Response:
    """The sign form of a page seen without JavaScript: forwarded to intake with the signer's
    own token, which the catalogue neither reads nor keeps (intake alone can check it)."""
    await _form(request)
    petition = await _public_petition(request)
    if not _is_open(petition):
        return await _render_petition(
            request, petition, failure="Cette pétition n'est plus ouverte à la signature.",
            status=409,
        )  # fmt: skip
    token = request.cookies.get(COOKIES[SIGNER])
    if not token:
        raise _sign_in_to_sign(petition)
    if INTAKE not in request.app:
        return await _render_petition(
            request, petition, status=503,
            failure="Pour signer, activez JavaScript dans votre navigateur.",
        )  # fmt: skip
    try:
        async with request.app[INTAKE].post(
            f"api/petitions/{petition.id}/signatures",
            # Intake limits and watches signatures by the client's address, not ours.
            headers={
                "Authorization": f"Bearer {token}",
                **request_id_headers(),
                **forwarded_for(request),
            },
        ) as answer:
            status = answer.status
            problem = await answer.json(content_type=None) if status >= 400 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("intake did not take a signature from a page: %r", exc)
        return await _render_petition(
            request, petition, status=503,
            failure="Votre signature n'a pas pu être enregistrée : merci de réessayer.",
        )  # fmt: skip
    if status in (200, 202):
        return await _render_petition(request, petition, signed=True)
    if status == 401:
        raise _sign_in_to_sign(petition)
    detail = problem.get("detail") if isinstance(problem, dict) else None
    return await _render_petition(
        request, petition, status=status if status < 500 else 503,
        failure=detail or "Votre signature n'a pas pu être enregistrée : merci de réessayer.",
    )  # fmt: skip


# --- the author's space --------------------------------------------------------------------


def _author_id(request: web.Request) -> str | None:
    """The signed-in author, or None (no session, or one that expired)."""
    token = presented_token(request, AUTHOR)
    if not token:
        return None
    try:
        return request.app[TOKEN_VERIFIER].verify(token, AUTHOR).subject
    except InvalidToken:
        return None


def _sign_in_page(request: web.Request, *, expired: bool) -> web.Response:
    response = aiohttp_jinja2.render_template(
        "author/sign_in.html",
        request,
        {
            **_globals(request),
            "expired": expired,
            # Back to the page asked for; after a form, to the space (a form is not a page).
            "return_to": request.path if request.method == "GET" else AUTHOR_SPACE,
        },
        status=401,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _private(response: web.Response) -> web.Response:
    response.headers["Cache-Control"] = "no-store"
    return response


async def to_author_space(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(AUTHOR_SPACE)


async def author_space(request: web.Request) -> web.Response:
    author_id = _author_id(request)
    if author_id is None:
        return _sign_in_page(request, expired=bool(request.cookies.get(COOKIES[AUTHOR])))
    petitions = await request.app[STORE].authors_petitions(author_id)
    return _private(
        aiohttp_jinja2.render_template(
            "author/space.html",
            request,
            {
                **_globals(request),
                "petitions": petitions,
                "author_name": petitions[0].author_name if petitions else None,
            },
        )
    )


def _committee_options(request: web.Request) -> list[tuple[str, str]]:
    return [(c.id, c.name) for c in request.app[STORE].committees]


def _form_page(
    request: web.Request,
    *,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    petition: Petition | None = None,
    status: int = 200,
    not_submitted: bool = False,
    count: int | None = None,
) -> web.Response:
    return _private(
        aiohttp_jinja2.render_template(
            "author/petition_form.html" if petition is None else "author/petition.html",
            request,
            {
                **_globals(request),
                "values": values,
                "errors": errors,
                "petition": petition,
                "committees": _committee_options(request),
                "step_labels": FOLLOW_UP_LABELS,
                "status_words": STATUS_WORDS,
                "is_open": petition is not None and _is_open(petition),
                "count": count,
                "notice": NOTICES.get(next(iter(request.query), "")),
                "not_submitted": not_submitted,
            },
            status=status,
        )
    )


async def new_petition_page(request: web.Request) -> web.Response:
    if _author_id(request) is None:
        return _sign_in_page(request, expired=False)
    return _form_page(request, values={}, errors={})


async def _form(request: web.Request) -> dict[str, str]:
    """The posted form's text fields, from a page of the site; a 400 page if unreadable."""
    require_same_origin(request, request.app[SETTINGS].public_origin)
    form = await read_form(request, _INVALID_FORM, kind="invalid-form")
    # Files have no place in these forms; only text fields are read.
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _draft_fields(form: Mapping[str, str]) -> dict[str, str | None]:
    return {
        "title": form.get("title", ""),
        "body": form.get("body", ""),
        "suggested_committee": form.get("suggested_committee") or None,
    }


def _errors(exc: ValidationError) -> dict[str, str]:
    """Each field's first error, in French, for the form."""
    problem = invalid_body(exc, "")
    errors: dict[str, str] = {}
    for param in problem.extensions["invalid_params"]:
        name = param["name"] if param["name"] in FIELD_LABELS else "title"
        errors.setdefault(name, f"{FIELD_LABELS[name]} : {param['reason']}.")
    return errors


M = TypeVar("M", bound=BaseModel)


def _validate(
    request: web.Request, model: type[M], fields: dict[str, Any]
) -> tuple[M | None, dict[str, str]]:
    try:
        draft = model.model_validate(fields)
        errors: dict[str, str] = {}
    except ValidationError as exc:
        draft, errors = None, _errors(exc)
    # Bytes that are not UTF-8 reach us as U+FFFD (aiohttp replaces them): refused, as the
    # search box does, rather than stored as « �� ».
    for name, value in fields.items():
        if isinstance(value, str) and "\ufffd" in value:
            errors[name] = f"{FIELD_LABELS[name]} : {_UNREADABLE}."
    if draft is None or errors:
        return None, {name: errors[name] for name in FIELD_LABELS if name in errors}
    committee = fields.get("suggested_committee")
    if committee is not None and committee not in request.app[STORE].committees:
        return None, {"suggested_committee": "Commission suggérée : commission inconnue."}
    return draft, {}


async def create_petition(request: web.Request) -> web.Response:
    form = await _form(request)
    author_id = _author_id(request)
    if author_id is None:
        return _sign_in_page(request, expired=True)
    fields = _draft_fields(form)
    draft, errors = _validate(request, DraftInput, fields)
    if draft is None:
        return _form_page(request, values=form, errors=errors, status=422)
    try:
        created = await lifecycle.create_draft(
            request.app[STORE].pool,
            author_id,
            lifecycle.Draft(draft.title, draft.body, draft.suggested_committee),
        )
    except lifecycle.UnknownAuthor:
        return _sign_in_page(request, expired=True)
    raise web.HTTPSeeOther(f"/mon-espace/petitions/{created}?enregistree=1")


async def _my_petition(request: web.Request, author_id: str) -> Petition:
    petition = await request.app[STORE].petition(petition_id(request))
    if petition is None or petition.author_id != author_id:
        raise petition_not_found()  # another author's petition does not exist for them
    return petition


def _values_of(petition: Petition) -> dict[str, str]:
    return {
        "title": petition.title,
        "body": petition.body,
        "suggested_committee": petition.suggested_committee.id
        if petition.suggested_committee
        else "",
    }


async def my_petition_page(request: web.Request) -> web.Response:
    author_id = _author_id(request)
    if author_id is None:
        return _sign_in_page(request, expired=False)
    petition = await _my_petition(request, author_id)
    # Signatures, once it could gather any: as its public page counts them (counter's total,
    # the catalogue's copy when Redis does not answer).
    count = await _live_count(request, petition) if petition.published_at is not None else None
    return _form_page(
        request, values=_values_of(petition), errors={}, petition=petition, count=count
    )


async def edit_petition(request: web.Request) -> web.Response:
    form = await _form(request)
    author_id = _author_id(request)
    if author_id is None:
        return _sign_in_page(request, expired=True)
    petition = await _my_petition(request, author_id)
    changes, errors = _validate(request, DraftChanges, _draft_fields(form))
    if changes is None:
        return _form_page(request, values=form, errors=errors, petition=petition, status=422)
    try:
        await lifecycle.edit_draft(
            request.app[STORE].pool, author_id, petition.id, changes.model_dump()
        )
    except lifecycle.TransitionRefused as refused:
        raise Problem(409, refused.detail, kind="invalid-transition") from None
    except lifecycle.PetitionNotFound:
        raise petition_not_found() from None
    raise web.HTTPSeeOther(f"/mon-espace/petitions/{petition.id}?enregistree=1")


async def submit_petition(request: web.Request) -> web.Response:
    """The draft page's other button: what the fields hold, saved or not, is submitted, checked
    as a save is; a form without the fields (a page served before they had the button) submits
    the draft as saved."""
    form = await _form(request)
    author_id = _author_id(request)
    if author_id is None:
        return _sign_in_page(request, expired=True)
    petition = await _my_petition(request, author_id)
    changes: dict[str, Any] | None = None
    if "title" in form or "body" in form:
        draft, errors = _validate(request, DraftChanges, _draft_fields(form))
        if draft is None:
            return _form_page(
                request, values=form, errors=errors, petition=petition, status=422,
                not_submitted=True,
            )  # fmt: skip
        changes = draft.model_dump()
    try:
        await lifecycle.submit(request.app[STORE].pool, author_id, petition.id, changes)
    except lifecycle.TransitionRefused as refused:
        raise Problem(409, refused.detail, kind="invalid-transition") from None
    except lifecycle.PetitionNotFound:
        raise petition_not_found() from None
    await publish_after_commit(request.app)
    raise web.HTTPSeeOther(f"/mon-espace/petitions/{petition.id}?soumise=1")
