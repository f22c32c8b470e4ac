"""Staff-only handlers: every one starts by checking the staff token and its role."""

from __future__ import annotations

from aiohttp import web

from paraphe_common.auth import authenticate
from paraphe_common.tokens import STAFF


async def me(request: web.Request) -> web.Response:
    """The signed-in agent's roles, as auth-gateway's configuration granted them."""
    claims = authenticate(request, STAFF)
    return web.json_response(
        {"name": claims.extra.get("name", ""), "roles": sorted(claims.roles)},
        headers={"Cache-Control": "no-store"},
    )
