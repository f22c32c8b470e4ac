"""What auth-gateway shows a person: its refusals and failures, in the site's layout.

The proxy serves /auth/ on the site's origin, so these pages link the DSFR under /static/dsfr/
as every page of the site does (petition-catalog serves it). Each leads back where the sign-in
began: the petition, or the page it was to return to, else the home page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from aiohttp import web

from paraphe_common import site
from paraphe_common.problems import PROBLEM_PAGES

# Where the sign-in under way was to return to: a path of this site (views.local_path).
WAY_BACK: Final = web.RequestKey("way_back", str)
_PETITION_PAGE: Final = re.compile(r"^/petitions/[A-Za-z0-9-]{1,64}$")


def setup_pages(app: web.Application) -> None:
    site.setup_site(app, __package__ or "paraphe_auth_gateway")
    # The shared problem page, leading back to where the sign-in began rather than home only.
    app[PROBLEM_PAGES] = problem_page


def way_back(path: str) -> dict[str, str] | None:
    """The link back to where the sign-in began, beside the home page's; None for home."""
    if path == "/":
        return None
    if _PETITION_PAGE.match(path):
        return {"href": path, "label": "Revenir à la pétition"}
    return {"href": path, "label": "Revenir à la page de départ"}


def problem_page(
    request: web.Request,
    status: int,
    title: str,
    detail: str | None,
    headers: Mapping[str, str],
) -> web.Response:
    response = site.problem_page(
        request,
        status,
        title,
        detail,
        headers,
        template="auth/problem.html",
        back=way_back(request.get(WAY_BACK, "/")),
    )
    # The answer to one person's sign-in (its address carries their code and state).
    response.headers["Cache-Control"] = "no-store"
    return response
