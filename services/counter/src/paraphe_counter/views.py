"""Thin handlers: a petition the local view does not know is a 404; a count comes from memory."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from paraphe_common.app import FastRoute
from paraphe_common.petition_states import PETITION_STATES, PetitionStates
from paraphe_common.problems import Problem
from paraphe_counter.counts import COUNT_CACHE, Count, CountCache, CountUnavailable
from paraphe_counter.stream import LIVE_COUNTS

COUNT_ROUTE: Final = "/api/petitions/{petition_id}/count"
_COUNT_PREFIX, _COUNT_SUFFIX = COUNT_ROUTE.split("{petition_id}")


def _known_petition(request: web.Request) -> str:
    petition_id = request.match_info["petition_id"]
    if request.app[PETITION_STATES].get(petition_id) is None:
        raise Problem(404, "Cette pétition n'existe pas.", kind="petition-not-found")
    return petition_id


def _count_unavailable() -> Problem:
    return Problem(
        503,
        "Le compteur est momentanément indisponible.",
        kind="count-unavailable",
        headers={"Retry-After": "1"},
    )


def _not_modified(request: web.BaseRequest, count: Count) -> bool:
    offered = request.headers.get("If-None-Match")
    if offered is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in offered.split(",")}
    return "*" in tags or count.etag in tags


def _count_answer(request: web.BaseRequest, count: Count) -> web.Response:
    if _not_modified(request, count):
        headers = count.headers.copy()
        del headers["Content-Type"]
        return web.Response(status=304, headers=headers)
    return web.Response(body=count.body, headers=count.headers)


async def get_count(request: web.Request) -> web.Response:
    petition_id = _known_petition(request)
    try:
        count = await request.app[COUNT_CACHE].count(petition_id)
    except CountUnavailable:
        raise _count_unavailable() from None
    return _count_answer(request, count)


def fast_counts(states: PetitionStates, cache: CountCache) -> FastRoute:
    """Count reads of a known petition whose count is fresh in memory, before routing: the
    read 100,000 people repeat while a petition is in the news. Anything else (an unknown
    petition, a count to refresh, another method) goes the ordinary way through ``get_count``.
    """

    def answer(request: web.BaseRequest) -> web.Response | None:
        path = request.path
        if request.method != "GET" or not (
            path.startswith(_COUNT_PREFIX) and path.endswith(_COUNT_SUFFIX)
        ):
            return None
        petition_id = path[len(_COUNT_PREFIX) : -len(_COUNT_SUFFIX)]
        if "/" in petition_id or states.get(petition_id) is None:
            return None
        count = cache.fresh(petition_id)
        return _count_answer(request, count) if count is not None else None

    return FastRoute(COUNT_ROUTE, answer)


async def stream_count(request: web.Request) -> web.StreamResponse:
    petition_id = _known_petition(request)
    try:
        return await request.app[LIVE_COUNTS].stream(request, petition_id)
    except CountUnavailable:
        raise _count_unavailable() from None
