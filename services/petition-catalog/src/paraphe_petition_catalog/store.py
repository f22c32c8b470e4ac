"""Catalogue queries. Parameters are always bound, never interpolated."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from paraphe_petition_catalog.petitions import PUBLIC_STATES

_PUBLIC_COLUMNS = """
    p.id, p.title, p.body, p.status, p.committee, p.published_at, p.closes_at, p.closed_at,
    a.given_names AS author_given_names, a.family_name AS author_family_name
"""


@dataclass(frozen=True)
class PublicPetition:
    id: uuid.UUID
    title: str
    body: str
    status: str
    committee: str | None
    published_at: datetime
    closes_at: datetime
    closed_at: datetime | None
    author_given_names: str
    author_family_name: str

    @property
    def author_name(self) -> str:
        return f"{self.author_given_names} {self.author_family_name}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "title": self.title,
            "body": self.body,
            "status": self.status,
            "committee": self.committee,
            "author": {
                "given_names": self.author_given_names,
                "family_name": self.author_family_name,
            },
            "published_at": self.published_at.isoformat(),
            "closes_at": self.closes_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
        }


async def public_petitions(
    pool: asyncpg.Pool, *, limit: int, offset: int
) -> tuple[list[PublicPetition], int]:
    """Published and closed petitions, newest first, with how many there are in all."""
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            f"""
            SELECT {_PUBLIC_COLUMNS}
            FROM catalog.petitions p JOIN catalog.authors a ON a.id = p.author_id
            WHERE p.status = ANY($1::text[])
            ORDER BY p.published_at DESC, p.id
            LIMIT $2 OFFSET $3
            """,  # noqa: S608 - the interpolated text is a constant column list
            sorted(PUBLIC_STATES),
            limit,
            offset,
        )
        total = await connection.fetchval(
            "SELECT count(*) FROM catalog.petitions WHERE status = ANY($1::text[])",
            sorted(PUBLIC_STATES),
        )
    return [PublicPetition(**dict(row)) for row in rows], int(total)


async def public_petition(pool: asyncpg.Pool, petition_id: uuid.UUID) -> PublicPetition | None:
    row = await pool.fetchrow(
        f"""
        SELECT {_PUBLIC_COLUMNS}
        FROM catalog.petitions p JOIN catalog.authors a ON a.id = p.author_id
        WHERE p.id = $1 AND p.status = ANY($2::text[])
        """,  # noqa: S608 - the interpolated text is a constant column list
        petition_id,
        sorted(PUBLIC_STATES),
    )
    return PublicPetition(**dict(row)) if row is not None else None
