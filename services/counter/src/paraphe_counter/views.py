"""Thin handlers: a petition the local view does not know is a 404; a count comes from memory."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from paraphe_common.petition_states import PETITION_STATES
from paraphe_common.problems import Problem
from paraphe_counter.counts import COUNT_CACHE, Count, CountUnavailable
from paraphe_counter.stream import LIVE_COUNTS

# A CDN in front serves each count for a second to everyone polling it.
COUNT_CACHE_CONTROL: Final = "public, max-age=1"


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


def _not_modified(request: web.Request, count: Count) -> bool:
    offered = request.headers.get("If-None-Match")
    if offered is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in offered.split(",")}
    return "*" in tags or count.etag in tags


async def get_count(request: web.Request) -> web.Response:
    petition_id = _known_petition(request)
    try:
        count = await request.app[COUNT_CACHE].count(petition_id)
    except CountUnavailable:
        raise _count_unavailable() from None
    headers = {"Cache-Control": COUNT_CACHE_CONTROL, "ETag": count.etag}
    if _not_modified(request, count):
        return web.Response(status=304, headers=headers)
    return web.Response(body=count.body, content_type="application/json", headers=headers)


async def stream_count(request: web.Request) -> web.StreamResponse:
    petition_id = _known_petition(request)
    try:
        return await request.app[LIVE_COUNTS].stream(request, petition_id)
    except CountUnavailable:
        raise _count_unavailable() from None
