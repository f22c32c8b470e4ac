"""petition-catalog's internal API, called with the staff member's own token.

The catalog owns the petitions and checks the token and role itself: moderation forwards the
token it was given and never acts under a power of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import aiohttp
from aiohttp import web

from paraphe_common.problems import PROBLEM_TYPE_PREFIX
from paraphe_common.resources import CleanupContext

log = logging.getLogger(__name__)

_MAX_ANSWER_BYTES: Final = 1024 * 1024


class CatalogUnavailable(Exception):
    """No answer, or a 5xx: the decision may or may not have landed; retry with its id."""


class CatalogRefused(Exception):
    """A 4xx answer: the catalog did not apply the decision, and says why."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        super().__init__(f"the catalog answered {status}")
        self.status = status
        self.problem = dict(problem)

    @property
    def detail(self) -> str | None:
        detail = self.problem.get("detail")
        return detail if isinstance(detail, str) else None

    @property
    def kind(self) -> str | None:
        """The problem's kind, the end of its type (``urn:paraphe:problem:<kind>``)."""
        kind = self.problem.get("type")
        if isinstance(kind, str) and kind.startswith(PROBLEM_TYPE_PREFIX):
            return kind.removeprefix(PROBLEM_TYPE_PREFIX)
        return None


class Catalog:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base_url = base_url

    async def petition(self, petition_id: str, staff_token: str) -> dict[str, Any]:
        return await self._call("GET", f"/internal/petitions/{petition_id}", staff_token)

    async def decide(
        self, petition_id: str, staff_token: str, decision: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._call(
            "POST", f"/internal/petitions/{petition_id}/decisions", staff_token, decision
        )

    async def _call(
        self, method: str, path: str, token: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        try:
            async with self._session.request(
                method,
                self._base_url + path,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            ) as answer:
                data = await _whole(answer)
                status = answer.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("the catalog did not answer %s %s: %r", method, path, exc)
            raise CatalogUnavailable(str(exc)) from exc
        if status >= 500:
            log.warning("the catalog answered %s %s with %d", method, path, status)
            raise CatalogUnavailable(f"status {status}")
        try:
            document = json.loads(data) if data else {}
        except ValueError:
            document = {}
        if not isinstance(document, dict):
            document = {}
        if status != 200:
            raise CatalogRefused(status, document)
        return document


async def _whole(answer: aiohttp.ClientResponse) -> bytes:
    """The answer's body, to its end (``read(n)`` gives what has arrived so far); an answer
    beyond ``_MAX_ANSWER_BYTES`` is no answer the catalog gives."""
    data = bytearray()
    while chunk := await answer.content.read(_MAX_ANSWER_BYTES + 1 - len(data)):
        data += chunk
        if len(data) > _MAX_ANSWER_BYTES:
            raise aiohttp.ClientPayloadError(f"an answer of more than {_MAX_ANSWER_BYTES} bytes")
    return bytes(data)


CATALOG = web.AppKey("catalog", Catalog)


def catalog_client(base_url: str, timeout: float) -> CleanupContext:
    async def catalog_session(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout),
            raise_for_status=False,
        )
        app[CATALOG] = Catalog(session, base_url)
        try:
            yield
        finally:
            try:
                await asyncio.wait_for(session.close(), 5.0)
            except TimeoutError:
                log.warning("the catalog client did not close in time")

    return catalog_session
