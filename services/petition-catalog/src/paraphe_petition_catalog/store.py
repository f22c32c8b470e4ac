"""Catalogue reads. Parameters are always bound, never interpolated.

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

Petitions come back as :class:`Petition`, with their committees resolved against the
configured list, their threshold flags and their follow-up; each audience has its own JSON
shape (public, author, staff), so a field meant for one never leaks to another.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import asyncpg
from aiohttp import web

from paraphe_common.committees import Committee
from paraphe_petition_catalog.petitions import (
    CLOSED,
    FOLLOW_UP_STEPS,
    HIDDEN,
    PUBLIC_STATES,
    PUBLISHED,
    REJECTED,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

SEARCH_CONFIGURATION: Final = "catalog.french_unaccent"

_COLUMNS: Final = """
    p.id, p.author_id, p.title, p.body, p.status, p.suggested_committee, p.committee,
    p.status_reason_code, p.status_reason, p.created_at, p.updated_at, p.submitted_at,
    p.published_at, p.closes_at, p.closed_at, p.decided_at, p.signature_count,
    a.given_names AS author_given_names, a.family_name AS author_family_name
"""
_FROM: Final = "catalog.petitions p JOIN catalog.authors a ON a.id = p.author_id"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class ThresholdFlag:
    threshold: int
    signatures: int
    reached_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "signatures": self.signatures,
            "reached_at": self.reached_at.isoformat(),
        }


@dataclass(frozen=True)
class FollowUp:
    step: str
    note: str | None
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, "note": self.note, "at": self.at.isoformat()}


@dataclass(frozen=True)
class Petition:
    id: uuid.UUID
    author_id: str
    title: str
    body: str
    status: str
    suggested_committee: Committee | None
    committee: Committee | None
    status_reason_code: str | None
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    published_at: datetime | None
    closes_at: datetime | None
    closed_at: datetime | None
    decided_at: datetime | None
    signature_count: int
    author_given_names: str
    author_family_name: str
    thresholds: tuple[ThresholdFlag, ...] = ()
    follow_ups: tuple[FollowUp, ...] = ()

    @property
    def author_name(self) -> str:
        return f"{self.author_given_names} {self.author_family_name}"

    def is_open(self, now: datetime) -> bool:
        return self.status == PUBLISHED and self.closes_at is not None and now < self.closes_at

    def _author(self) -> dict[str, str]:
        # Only the names: never the birth date or the email the catalogue also keeps.
        return {"given_names": self.author_given_names, "family_name": self.author_family_name}

    def _decision(self) -> dict[str, Any] | None:
        if self.status not in (REJECTED, HIDDEN):
            return None
        return {
            "reason_code": self.status_reason_code,
            "reason": self.status_reason,
            "decided_at": _iso(self.decided_at),
        }

    def public_json(self) -> dict[str, Any]:
        """What anyone may read; of a taken-down petition, only that it was, and why."""
        if self.status == HIDDEN:
            return {"id": str(self.id), "status": HIDDEN, "decision": self._decision()}
        return {
            "id": str(self.id),
            "title": self.title,
            "body": self.body,
            "status": self.status,
            "committee": _committee_json(self.committee),
            "author": self._author(),
            "published_at": _iso(self.published_at),
            "closes_at": _iso(self.closes_at),
            "closed_at": _iso(self.closed_at),
            "signature_count": self.signature_count,
            "thresholds": [flag.as_json() for flag in self.thresholds],
            "follow_up": [step.as_json() for step in self.follow_ups],
        }

    def author_json(self) -> dict[str, Any]:
        """What the author reads in their own space: everything about their petition."""
        return {
            "id": str(self.id),
            "title": self.title,
            "body": self.body,
            "status": self.status,
            "suggested_committee": _committee_json(self.suggested_committee),
            "committee": _committee_json(self.committee),
            "author": self._author(),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "submitted_at": _iso(self.submitted_at),
            "published_at": _iso(self.published_at),
            "closes_at": _iso(self.closes_at),
            "closed_at": _iso(self.closed_at),
            "decision": self._decision(),
            "signature_count": self.signature_count,
            "thresholds": [flag.as_json() for flag in self.thresholds],
            "follow_up": [step.as_json() for step in self.follow_ups],
        }

    def staff_json(self) -> dict[str, Any]:
        """What staff review: the author's view, which holds no more personal data."""
        return self.author_json()


def _committee_json(committee: Committee | None) -> dict[str, str] | None:
    return {"id": committee.id, "name": committee.name} if committee is not None else None


class Committees:
    """The configured committees by id; an id no longer configured keeps its id as name."""

    def __init__(self, committees: Iterable[Committee]) -> None:
        self._by_id = {committee.id: committee for committee in committees}

    def __contains__(self, committee_id: object) -> bool:
        return committee_id in self._by_id

    def __iter__(self) -> Iterator[Committee]:
        return iter(self._by_id.values())

    def resolve(self, committee_id: str | None) -> Committee | None:
        if committee_id is None:
            return None
        return self._by_id.get(committee_id) or Committee(committee_id, committee_id)


# The public list's sorts; the SQL is chosen from this table, never built from input.
SORTS: Final = {
    "newest": "p.published_at DESC, p.id",
    "most-signed": "p.signature_count DESC, p.published_at DESC, p.id",
    "closing-soon": (
        "(p.status = 'published' AND p.closes_at > now()) DESC, p.closes_at ASC, p.id"
    ),
    "relevance": "rank DESC, p.published_at DESC, p.id",
}
OPEN: Final = "open"
PUBLIC_STATUS_FILTERS: Final = {
    OPEN: "(p.status = 'published' AND p.closes_at > now())",
    CLOSED: "(p.status = 'closed' OR (p.status = 'published' AND p.closes_at <= now()))",
}


@dataclass(frozen=True)
class PetitionQuery:
    text: str | None = None
    status: str | None = None  # one of PUBLIC_STATUS_FILTERS, or None for every public one
    committee: str | None = None
    threshold: int | None = None
    sort: str = "newest"
    limit: int = 20
    offset: int = 0


class Store:
    """The catalogue's reads, with the configured committees to resolve ids against."""

    def __init__(self, pool: asyncpg.Pool, committees: Iterable[Committee]) -> None:
        self.pool = pool
        self.committees = Committees(committees)

    def _petitions(
        self,
        rows: Sequence[asyncpg.Record],
        thresholds: Mapping[uuid.UUID, list[ThresholdFlag]],
        follow_ups: Mapping[uuid.UUID, list[FollowUp]],
    ) -> list[Petition]:
        petitions = []
        for row in rows:
            fields = {name: row[name] for name in _PETITION_FIELDS}
            fields["committee"] = self.committees.resolve(row["committee"])
            fields["suggested_committee"] = self.committees.resolve(row["suggested_committee"])
            petitions.append(
                Petition(
                    **fields,
                    thresholds=tuple(thresholds.get(row["id"], ())),
                    follow_ups=tuple(follow_ups.get(row["id"], ())),
                )
            )
        return petitions

    async def _complete(
        self, connection: Connection, rows: Sequence[asyncpg.Record]
    ) -> list[Petition]:
        """The petitions of ``rows`` with their threshold flags and follow-up steps."""
        ids = [row["id"] for row in rows]
        thresholds: dict[uuid.UUID, list[ThresholdFlag]] = {}
        follow_ups: dict[uuid.UUID, list[FollowUp]] = {}
        if ids:
            for flag in await connection.fetch(
                "SELECT petition_id, threshold, signatures, reached_at"
                " FROM catalog.thresholds_reached WHERE petition_id = ANY($1::uuid[])"
                " ORDER BY threshold",
                ids,
            ):
                thresholds.setdefault(flag["petition_id"], []).append(
                    ThresholdFlag(flag["threshold"], flag["signatures"], flag["reached_at"])
                )
            for step in await connection.fetch(
                "SELECT petition_id, step, note, at FROM catalog.follow_ups"
                " WHERE petition_id = ANY($1::uuid[])"
                " ORDER BY at, array_position($2::text[], step)",
                ids,
                list(FOLLOW_UP_STEPS),
            ):
                follow_ups.setdefault(step["petition_id"], []).append(
                    FollowUp(step["step"], step["note"], step["at"])
                )
        return self._petitions(rows, thresholds, follow_ups)

    async def petition(
        self, petition_id: uuid.UUID, connection: Connection | None = None
    ) -> Petition | None:
        """Any petition, whatever its status: for its author and for staff."""
        if connection is None:
            async with self.pool.acquire() as acquired:
                return await self.petition(petition_id, acquired)
        rows = await connection.fetch(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE p.id = $1",  # noqa: S608 - constants
            petition_id,
        )
        petitions = await self._complete(connection, rows)
        return petitions[0] if petitions else None

    async def public_petition(self, petition_id: uuid.UUID) -> Petition | None:
        """A published, closed or taken-down petition; None for the others."""
        petition = await self.petition(petition_id)
        if petition is None or petition.status not in PUBLIC_STATES | {HIDDEN}:
            return None
        return petition

    async def authors_petitions(self, author_id: str) -> list[Petition]:
        async with self.pool.acquire() as connection:
            rows = await connection.fetch(
                f"SELECT {_COLUMNS} FROM {_FROM} WHERE p.author_id = $1"  # noqa: S608
                " ORDER BY p.created_at DESC, p.id",
                author_id,
            )
            return await self._complete(connection, rows)

    async def public_petitions(self, query: PetitionQuery) -> tuple[list[Petition], int]:
        """One page of public petitions matching ``query``, and how many match in all."""
        conditions = ["p.status = ANY($1::text[])"]
        arguments: list[Any] = [sorted(PUBLIC_STATES)]
        rank = "0::real"
        if query.status is not None:
            conditions.append(PUBLIC_STATUS_FILTERS[query.status])
        if query.committee is not None:
            arguments.append(query.committee)
            conditions.append(f"p.committee = ${len(arguments)}")
        if query.threshold is not None:
            arguments.append(query.threshold)
            conditions.append(
                "EXISTS (SELECT 1 FROM catalog.thresholds_reached t"  # noqa: S608 - a placeholder
                f" WHERE t.petition_id = p.id AND t.threshold >= ${len(arguments)})"
            )
        if query.text is not None:
            arguments.append(query.text)
            search = f"websearch_to_tsquery('{SEARCH_CONFIGURATION}', ${len(arguments)})"
            conditions.append(f"p.search @@ {search}")
            rank = f"ts_rank(p.search, {search})"
        where = " AND ".join(conditions)
        async with self.pool.acquire() as connection:
            total = await connection.fetchval(
                f"SELECT count(*) FROM catalog.petitions p WHERE {where}",  # noqa: S608
                *arguments,
            )
            rows = await connection.fetch(
                f"""
                SELECT {_COLUMNS}, {rank} AS rank FROM {_FROM}
                WHERE {where}
                ORDER BY {SORTS[query.sort]}
                LIMIT ${len(arguments) + 1} OFFSET ${len(arguments) + 2}
                """,  # noqa: S608 - every interpolated fragment is a constant of this module
                *arguments,
                query.limit,
                query.offset,
            )
            return await self._complete(connection, rows), int(total)


_PETITION_FIELDS: Final = (
    "id",
    "author_id",
    "title",
    "body",
    "status",
    "status_reason_code",
    "status_reason",
    "created_at",
    "updated_at",
    "submitted_at",
    "published_at",
    "closes_at",
    "closed_at",
    "decided_at",
    "signature_count",
    "author_given_names",
    "author_family_name",
)


STORE = web.AppKey("store", Store)
