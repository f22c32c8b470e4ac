"""JSON logs on stdout, one object a line, each carrying the service and the request id.

Nothing personal is logged: access log lines carry the method, the route, the path without its
query string, the status and the duration; never an address, a cookie, a token or a body.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("paraphe_request_id", default=None)
# The route template an answer was given for (the service middleware, the fast route): what
# the access log writes, without reading match_info, which a request never routed lacks.
ANSWERED_ROUTE = web.ResponseKey("answered_route", str)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


# What the event loop says each time a NATS server closes a TLS connection (a restart, a
# failover, lame duck mode): nats-py's protocol returns True from eof_received (nats.py#727),
# which TLS ignores and the connection is reopened as usual. A warning on every failover would
# cry wolf.
_HARMLESS = frozenset(
    {("asyncio", "returning true from eof_received() has no effect when using ssl")}
)


class _HarmlessFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return (record.name, record.msg) not in _HARMLESS


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record of the process to stdout as JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_HarmlessFilter())
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class AccessLogger(AbstractAccessLogger):
    """One structured line per request (aiohttp calls it once the response is sent)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        # Set by the service middleware or the fast route; None for a request aiohttp answered
        # itself before routing (one it could not parse: a 400), whose match_info it never
        # set (reading it then raised, and the line was lost).
        route = response.get(ANSWERED_ROUTE)
        self.logger.info(
            "request",
            extra={
                "request_id": REQUEST_ID.get(),
                "method": request.method,
                "route": route,
                "path": request.path,
                "status": response.status,
                "duration_ms": round(time * 1000, 3),
            },
        )
