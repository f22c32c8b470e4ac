"""A service's OpenAPI document: a file of its package, served at ``GET /openapi.json``.

The document is written by hand beside the code it describes and kept true by tests: the
routes it lists are the routes the router serves (``documented_operations`` against
``served_operations``), and ``tests/test_fuzz_openapi.py`` sends every operation generated
requests through schemathesis, checking each answer against it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

DOCUMENT: Final = "openapi.json"
METHODS: Final = frozenset({"get", "put", "post", "patch", "delete"})


@cache
def package_document(package: str) -> bytes:
    return resources.files(package).joinpath(DOCUMENT).read_bytes()


def openapi_view(package: str) -> Handler:
    """The handler of ``GET /openapi.json`` for ``package``'s document, read once."""
    body = package_document(package)

    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=body,
            content_type="application/json",
            charset="utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    return openapi


def add_openapi_route(app: web.Application, package: str) -> None:
    app.router.add_get("/openapi.json", openapi_view(package))


def documented_operations(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(path template, method)`` of every operation the document describes."""
    return {
        (path, method)
        for path, operations in document["paths"].items()
        for method in operations
        if method in METHODS
    }


def served_operations(app: web.Application, *prefixes: str) -> set[tuple[str, str]]:
    """``(path template, method)`` of every route under ``prefixes`` (HEAD left out)."""
    return {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None
        and route.method.lower() in METHODS
        and route.resource.canonical.startswith(prefixes)
    }


def load(package: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(package_document(package))
    return document
