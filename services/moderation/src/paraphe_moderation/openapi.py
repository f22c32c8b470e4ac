"""The OpenAPI 3.1 document of moderation's API, a file of the package kept true by a test.

The file lists the default committees, reason codes and report length; the document served
lists the ones this deployment is configured with (``PARAPHE_COMMITTEES``,
``PARAPHE_REASON_CODES``, ``PARAPHE_REPORT_MESSAGE_MAX_LENGTH``), so that what it promises is
what the service accepts.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Final

from aiohttp import web

from paraphe_moderation.settings import ModerationSettings

DOCUMENT: Final = "openapi.json"
_DECISION_REQUESTS: Final = ("ItemDecisionRequest", "PetitionDecisionRequest")


def document() -> dict[str, Any]:
    """The document as the package holds it."""
    loaded: dict[str, Any] = json.loads(
        resources.files("paraphe_moderation").joinpath(DOCUMENT).read_bytes()
    )
    return loaded


def configured_document(settings: ModerationSettings) -> bytes:
    """The document with this deployment's committees and reason codes."""
    served = document()
    schemas = served["components"]["schemas"]
    for name in _DECISION_REQUESTS:
        for variant in schemas[name]["oneOf"]:
            properties = variant["properties"]
            if "committee" in properties:
                properties["committee"]["enum"] = [c.id for c in settings.committees]
            if "reason_code" in properties:
                properties["reason_code"]["enum"] = [r.code for r in settings.reason_codes]
    message = schemas["ReportRequest"]["properties"]["message"]
    message["maxLength"] = settings.report_message_max_length
    return json.dumps(served, ensure_ascii=False).encode()


OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)


async def openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[OPENAPI_DOCUMENT],
        content_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )
