"""Authors' identities, as FranceConnect gave them to auth-gateway; only names are published."""

from __future__ import annotations

import re
from datetime import date

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from paraphe_petition_catalog.inputs import Line

AUTHOR_ID = re.compile(r"^[0-9a-f]{64}$")


class AuthorIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    given_names: Line = Field(min_length=1, max_length=200)
    family_name: Line = Field(min_length=1, max_length=200)
    # FranceConnect may send "00" for an unknown day or month: kept as given, not as a date.
    birthdate: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    email: Line | None = Field(default=None, max_length=320)


def _as_date(birthdate: str) -> date | None:
    try:
        return date.fromisoformat(birthdate)
    except ValueError:
        return None


async def record_author(pool: asyncpg.Pool, author_id: str, identity: AuthorIdentity) -> None:
    """Create the author, or refresh their identity at each sign-in (names can change): the
    retention period starts again."""
    await pool.execute(
        """
        INSERT INTO catalog.authors (id, given_names, family_name, birthdate, email)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (id) DO UPDATE SET
            given_names = EXCLUDED.given_names,
            family_name = EXCLUDED.family_name,
            birthdate = EXCLUDED.birthdate,
            email = EXCLUDED.email,
            signed_in_at = now(),
            anonymised_at = NULL
        """,
        author_id,
        identity.given_names,
        identity.family_name,
        _as_date(identity.birthdate),
        identity.email,
    )
