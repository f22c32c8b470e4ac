"""Reading what a client posted: a body it sent wrong is its error (400), never ours (500).

aiohttp raises, while reading, whatever the body's labels lead it to: an unknown charset
(``LookupError``), an unknown transfer encoding in a multipart part (``RuntimeError``), a body
that is not in its announced ``Content-Encoding`` (``web.RequestPayloadError``, which the
service middleware answers wherever a body is read), a malformed or undecodable form.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from paraphe_common.problems import Problem


async def read_form(
    request: web.Request, detail: str, kind: str | None = None
) -> MultiDictProxy[Any]:
    """The posted form, or a 400 problem saying ``detail`` when it cannot be read."""
    try:
        return await request.post()
    except (ValueError, UnicodeDecodeError, LookupError, RuntimeError):
        raise Problem(400, detail, kind=kind) from None
