"""RFC 9457 ``application/problem+json`` bodies for every 4xx and 5xx answer.

Handlers raise :class:`Problem` for domain errors; the middleware also turns aiohttp's own HTTP
errors (unknown route, wrong method, body too large...) and unexpected exceptions into problems,
so no error leaves a service in another shape. Titles are French: they reach citizens' screens.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from paraphe_common.logs import REQUEST_ID

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:paraphe:problem:"

log = logging.getLogger(__name__)

STATUS_TITLES = {
    400: "Requête invalide",
    401: "Authentification requise",
    403: "Accès refusé",
    404: "Ressource introuvable",
    405: "Méthode non autorisée",
    406: "Format de réponse non disponible",
    409: "Conflit avec l'état de la ressource",
    410: "Ressource supprimée",
    413: "Requête trop volumineuse",
    415: "Type de contenu non pris en charge",
    422: "Contenu invalide",
    429: "Trop de requêtes",
    500: "Erreur interne",
    502: "Passerelle en erreur",
    503: "Service momentanément indisponible",
    504: "Délai de passerelle dépassé",
}

# Headers of an aiohttp HTTP error that describe its plain-text body, not the problem.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


def title_for(status: int) -> str:
    return STATUS_TITLES.get(status, "Erreur du client" if status < 500 else "Erreur du serveur")


def advice_for(status: int) -> str:
    """What a page tells a person about a failure that came without a detail of its own."""
    if status == 404:
        return (
            "Cette adresse ne correspond à aucune page du site : vérifiez-la, ou repartez de "
            "l'accueil ou de la liste des pétitions."
        )
    if status == 429 or status >= 500:
        return "Merci de réessayer dans quelques instants."
    return "Votre demande n'a pas pu être traitée : revenez à la page précédente."


class Problem(Exception):
    """A failure to report to the client as a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or title_for(status))
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title or title_for(status)
        self.headers = dict(headers or {})
        self.extensions = extensions

    def response(self, request: web.Request | None = None) -> web.Response:
        if request is not None and wants_page(request):
            render = request.config_dict.get(PROBLEM_PAGES)
            if render is not None:
                try:
                    return render(request, self.status, self.title, self.detail, self.headers)
                except Exception:  # a failure still gets its plain page
                    log.exception("the problem page could not be rendered")
            return problem_page(self.status, self.title, self.detail, self.headers)
        return problem_response(
            self.status,
            self.detail,
            kind=self.kind,
            title=self.title,
            headers=self.headers,
            **self.extensions,
        )


# How a service with pages says a failure to a person in its own layout (paraphe_common.site
# sets it); without one, the plain page below.
ProblemPageRenderer = Callable[[web.Request, int, str, str | None, Mapping[str, str]], web.Response]
PROBLEM_PAGES: web.AppKey[ProblemPageRenderer] = web.AppKey("problem_pages")


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> web.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + kind if kind else "about:blank",
        "title": title or title_for(status),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extensions)
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        charset="utf-8",
        headers=headers,
    )


def wants_page(request: web.Request) -> bool:
    """A browser asking for a page, not a client of the API."""
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")


_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body><main><h1>{title}</h1><p>{detail}</p><p><a href="/">Retour à l'accueil</a></p></main>
</body></html>
"""


def problem_page(
    status: int, title: str, detail: str | None, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The same failure, said in French to a person."""
    return web.Response(
        status=status,
        text=_PAGE.format(
            title=html.escape(title),
            detail=html.escape(detail or advice_for(status)),
        ),
        content_type="text/html",
        headers=headers,
    )


UNREADABLE_BODY = "Le contenu envoyé n'a pas pu être lu : son encodage n'est pas celui annoncé."


def problem_for(request: web.Request, exc: BaseException) -> web.StreamResponse:
    """The problem answer for what a handler raised; redirects and the like are re-raised."""
    if isinstance(exc, Problem):
        return exc.response(request)
    if isinstance(exc, web.RequestPayloadError):  # a body not in its announced encoding
        return Problem(400, UNREADABLE_BODY, kind="unreadable-body").response(request)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
        return Problem(exc.status, headers=headers).response(request)
    return unexpected_problem(request, exc).response(request)


def unexpected_problem(request: web.BaseRequest, exc: BaseException) -> Problem:
    """The 500 problem for an exception nobody expected, logged with its traceback."""
    log.error("unhandled error while serving %s %s", request.method, request.path, exc_info=exc)
    return Problem(
        500,
        "Une erreur inattendue est survenue ; elle a été journalisée avec l'identifiant "
        "de la requête.",
        request_id=REQUEST_ID.get(),
    )
