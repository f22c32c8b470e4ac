"""The moderation schema's queries: the queue, claims, reports and the audit log.

Claims are leases taken by one atomic UPDATE: an item is free when nobody holds it or the
holder's lease has run out, so two moderators asking at once cannot both get it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import asyncpg

REVIEW: Final = "review"
REPORT: Final = "report"
FOLLOW_UP: Final = "follow-up"
KINDS: Final = (REVIEW, REPORT, FOLLOW_UP)

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_ITEM_COLUMNS: Final = """
    id, kind, petition_id, title, body, suggested_committee, details, created_at,
    claimed_by, claimed_by_name, claim_expires_at, pending_decisions, resolved_at, resolved_by,
    resolution, extract(epoch FROM now() - created_at)::float8 AS age_seconds,
    (claimed_by IS NOT NULL AND claim_expires_at > now()) AS claimed
"""


@dataclass(frozen=True)
class Staff:
    subject: str
    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class QueueItem:
    id: uuid.UUID
    kind: str
    petition_id: uuid.UUID
    title: str
    body: str
    suggested_committee: str | None
    details: dict[str, Any]
    created_at: datetime
    age_seconds: float
    claimed_by: str | None  # only while the lease runs
    claimed_by_name: str | None
    claim_expires_at: datetime | None
    # Decisions sent to the catalog, each with its id, not confirmed when the item is open.
    pending_decisions: list[dict[str, Any]]
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def is_claimed_by(self, staff: Staff) -> bool:
        return self.claimed_by == staff.subject

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> QueueItem:
        claimed = bool(row["claimed"]) and row["resolved_at"] is None
        return cls(
            id=row["id"],
            kind=row["kind"],
            petition_id=row["petition_id"],
            title=row["title"],
            body=row["body"],
            suggested_committee=row["suggested_committee"],
            details=json.loads(row["details"]),
            created_at=row["created_at"],
            age_seconds=max(0.0, row["age_seconds"]),
            claimed_by=row["claimed_by"] if claimed else None,
            claimed_by_name=row["claimed_by_name"] if claimed else None,
            claim_expires_at=row["claim_expires_at"] if claimed else None,
            pending_decisions=json.loads(row["pending_decisions"]),
            resolved_at=row["resolved_at"],
            resolved_by=row["resolved_by"],
            resolution=row["resolution"],
        )


async def is_migrated(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT to_regclass('moderation.queue_items') IS NOT NULL"))


# ---- fed by events --------------------------------------------------------------------------


async def add_item(
    connection: Connection,
    *,
    kind: str,
    petition_id: str,
    source_event_id: str,
    created_at: datetime | None,
    title: str = "",
    body: str = "",
    suggested_committee: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> bool:
    """A new item; False when the event that makes it was seen before."""
    added = await connection.fetchval(
        """
        INSERT INTO moderation.queue_items
            (kind, petition_id, source_event_id, created_at, title, body, suggested_committee,
             details)
        VALUES ($1, $2, $3, coalesce($4, now()), $5, $6, $7, $8::jsonb)
        ON CONFLICT (source_event_id) DO NOTHING
        RETURNING true
        """,
        kind,
        uuid.UUID(petition_id),
        source_event_id,
        created_at,
        title,
        body,
        suggested_committee,
        json.dumps(dict(details or {})),
    )
    return bool(added)


async def close_items(
    connection: Connection,
    petition_id: str,
    kinds: Iterable[str],
    resolution: str,
) -> list[QueueItem]:
    """Resolve a petition's open items of these kinds (the catalog decided); idempotent."""
    rows = await connection.fetch(
        f"""
        UPDATE moderation.queue_items
        SET resolved_at = now(), resolved_by = 'catalog', resolution = $3,
            claimed_by = NULL, claimed_by_name = NULL, claim_expires_at = NULL
        WHERE petition_id = $1 AND kind = ANY($2::text[]) AND resolved_at IS NULL
        RETURNING {_ITEM_COLUMNS}
        """,  # noqa: S608 - a fixed column list
        uuid.UUID(petition_id),
        list(kinds),
        resolution,
    )
    return [QueueItem.from_row(row) for row in rows]


async def fill_title(pool: asyncpg.Pool, petition_id: uuid.UUID, title: str) -> None:
    """Items made without the petition's title (reports, thresholds) take it once it is known."""
    await pool.execute(
        "UPDATE moderation.queue_items SET title = $2 WHERE petition_id = $1 AND title = ''",
        petition_id,
        title,
    )


# ---- reports --------------------------------------------------------------------------------


async def add_report(
    pool: asyncpg.Pool, petition_id: str, reason_code: str, message: str
) -> uuid.UUID:
    """The report, gathered on the petition's open report item (made when there is none)."""
    petition = uuid.UUID(petition_id)
    async with pool.acquire() as connection, connection.transaction():
        item_id: uuid.UUID = await connection.fetchval(
            """
            INSERT INTO moderation.queue_items (kind, petition_id, title, details)
            VALUES ('report', $1,
                    coalesce((SELECT title FROM moderation.queue_items
                              WHERE petition_id = $1 AND title <> '' LIMIT 1), ''),
                    jsonb_build_object('reports', 1))
            ON CONFLICT (petition_id) WHERE kind = 'report' AND resolved_at IS NULL
            DO UPDATE SET details = jsonb_set(
                moderation.queue_items.details, '{reports}',
                to_jsonb(coalesce((moderation.queue_items.details->>'reports')::int, 0) + 1))
            RETURNING id
            """,
            petition,
        )
        await connection.execute(
            "INSERT INTO moderation.reports (item_id, petition_id, reason_code, message)"
            " VALUES ($1, $2, $3, $4)",
            item_id,
            petition,
            reason_code,
            message,
        )
    return item_id


@dataclass(frozen=True)
class Report:
    reason_code: str
    message: str
    received_at: datetime


async def reports_of(pool: asyncpg.Pool, item_id: uuid.UUID, limit: int = 50) -> list[Report]:
    rows = await pool.fetch(
        "SELECT reason_code, message, received_at FROM moderation.reports"
        " WHERE item_id = $1 ORDER BY received_at DESC LIMIT $2",
        item_id,
        limit,
    )
    return [Report(r["reason_code"], r["message"], r["received_at"]) for r in rows]


# ---- the queue ------------------------------------------------------------------------------

Status = Literal["open", "resolved", "all"]


async def list_items(
    pool: asyncpg.Pool,
    *,
    kinds: Iterable[str],
    status: Status,
    petition_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[QueueItem], int]:
    """Items of these kinds, oldest first while open (the longest waiting comes first), newest
    first otherwise."""
    kind_list = list(kinds)  # read once: an iterator would be empty for the count
    conditions = ["kind = ANY($1::text[])", "($2::uuid IS NULL OR petition_id = $2)"]
    if status == "open":
        conditions.append("resolved_at IS NULL")
    elif status == "resolved":
        conditions.append("resolved_at IS NOT NULL")
    where = " AND ".join(conditions)
    order = "created_at ASC" if status == "open" else "created_at DESC"
    rows = await pool.fetch(
        f"SELECT {_ITEM_COLUMNS} FROM moderation.queue_items WHERE {where}"  # noqa: S608 - fixed fragments
        f" ORDER BY {order}, id LIMIT $3 OFFSET $4",
        kind_list,
        petition_id,
        limit,
        offset,
    )
    total = await pool.fetchval(
        f"SELECT count(*) FROM moderation.queue_items WHERE {where}",  # noqa: S608
        kind_list,
        petition_id,
    )
    return [QueueItem.from_row(row) for row in rows], int(total)


async def get_item(connection: Connection | asyncpg.Pool, item_id: uuid.UUID) -> QueueItem | None:
    row = await connection.fetchrow(
        f"SELECT {_ITEM_COLUMNS} FROM moderation.queue_items WHERE id = $1",  # noqa: S608
        item_id,
    )
    return QueueItem.from_row(row) if row is not None else None


async def claim(
    pool: asyncpg.Pool, item_id: uuid.UUID, staff: Staff, lease_seconds: int
) -> QueueItem | None:
    """Take the item, or extend one's own claim; None when it is not free (or not open)."""
    row = await pool.fetchrow(
        f"""
        UPDATE moderation.queue_items
        SET claimed_by = $2, claimed_by_name = $3,
            claim_expires_at = now() + make_interval(secs => $4)
        WHERE id = $1 AND resolved_at IS NULL
          AND (claimed_by IS NULL OR claim_expires_at <= now() OR claimed_by = $2)
        RETURNING {_ITEM_COLUMNS}
        """,  # noqa: S608 - a fixed column list
        item_id,
        staff.subject,
        staff.name,
        float(lease_seconds),
    )
    return QueueItem.from_row(row) if row is not None else None


# The second of a double click on « take the oldest » comes within this many seconds.
REPEATED_CLAIM_SECONDS: Final = 10.0
# The first half of the two-key advisory locks that serialise one agent's « take the oldest ».
_AGENT_LOCKS: Final = 0x6167


async def claim_next(
    pool: asyncpg.Pool, kinds: Iterable[str], staff: Staff, lease_seconds: int
) -> QueueItem | None:
    """The oldest free item of these kinds, claimed; rows others are locking are skipped.

    The same agent asking again at once (a double click) gets the item just claimed, not a
    second one that would stay held away from colleagues for the lease.
    """
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", _AGENT_LOCKS, staff.subject
        )
        just_claimed = await connection.fetchrow(
            f"""
            SELECT {_ITEM_COLUMNS} FROM moderation.queue_items
            WHERE kind = ANY($1::text[]) AND resolved_at IS NULL AND claimed_by = $2
              AND claim_expires_at > now() + make_interval(secs => $3::float8 - $4::float8)
            ORDER BY claim_expires_at DESC
            LIMIT 1
            """,  # noqa: S608 - a fixed column list
            list(kinds),
            staff.subject,
            float(lease_seconds),
            REPEATED_CLAIM_SECONDS,
        )
        if just_claimed is not None:
            return QueueItem.from_row(just_claimed)
        return await _claim_oldest(connection, kinds, staff, lease_seconds)


async def _claim_oldest(
    connection: Connection, kinds: Iterable[str], staff: Staff, lease_seconds: int
) -> QueueItem | None:
    row = await connection.fetchrow(
        f"""
        UPDATE moderation.queue_items
        SET claimed_by = $2, claimed_by_name = $3,
            claim_expires_at = now() + make_interval(secs => $4)
        WHERE id = (
            SELECT id FROM moderation.queue_items
            WHERE kind = ANY($1::text[]) AND resolved_at IS NULL
              AND (claimed_by IS NULL OR claim_expires_at <= now())
            ORDER BY created_at, id
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING {_ITEM_COLUMNS}
        """,  # noqa: S608 - a fixed column list
        list(kinds),
        staff.subject,
        staff.name,
        float(lease_seconds),
    )
    return QueueItem.from_row(row) if row is not None else None


async def release(pool: asyncpg.Pool, item_id: uuid.UUID, staff: Staff) -> bool:
    """Give one's claim back; False when one held none."""
    released = await pool.fetchval(
        """
        UPDATE moderation.queue_items
        SET claimed_by = NULL, claimed_by_name = NULL, claim_expires_at = NULL
        WHERE id = $1 AND resolved_at IS NULL AND claimed_by = $2 AND claim_expires_at > now()
        RETURNING true
        """,
        item_id,
        staff.subject,
    )
    return bool(released)


# ---- decisions ------------------------------------------------------------------------------

# The first half of the two-key advisory locks moderation takes per petition ("mo").
_PETITION_LOCKS: Final = 0x6D6F


async def lock_petition(connection: Connection, petition_id: uuid.UUID | str) -> None:
    """Serialise, until the transaction ends, what settles a petition's items and audits it.

    A decision recorded after the catalog's answer and the catalog's event that confirms it
    lock the same item rows and insert the same audit row, in opposite orders: without one
    lock taken first by both, PostgreSQL breaks the deadlock by failing one of them.
    """
    await connection.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))", _PETITION_LOCKS, str(petition_id)
    )


async def item_petition(connection: Connection, item_id: uuid.UUID) -> uuid.UUID | None:
    """The petition an item is about (it never changes): to lock the petition first."""
    petition_id: uuid.UUID | None = await connection.fetchval(
        "SELECT petition_id FROM moderation.queue_items WHERE id = $1", item_id
    )
    return petition_id


async def lock_item(connection: Connection, item_id: uuid.UUID) -> QueueItem | None:
    row = await connection.fetchrow(
        f"SELECT {_ITEM_COLUMNS} FROM moderation.queue_items WHERE id = $1 FOR UPDATE",  # noqa: S608
        item_id,
    )
    return QueueItem.from_row(row) if row is not None else None


async def add_pending_decision(
    connection: Connection, item_id: uuid.UUID, decision: Mapping[str, Any]
) -> None:
    await connection.execute(
        "UPDATE moderation.queue_items SET pending_decisions = pending_decisions || $2::jsonb"
        " WHERE id = $1",
        item_id,
        json.dumps([dict(decision)]),
    )


async def drop_pending_decision(
    connection: Connection | asyncpg.Pool, item_id: uuid.UUID, decision_id: uuid.UUID
) -> None:
    """The catalog refused it: it was not applied, and no event will confirm it."""
    await connection.execute(
        """
        UPDATE moderation.queue_items
        SET pending_decisions = coalesce(
            (SELECT jsonb_agg(d) FROM jsonb_array_elements(pending_decisions) AS d
             WHERE d->>'decision_id' <> $2::text),
            '[]')
        WHERE id = $1
        """,
        item_id,
        str(decision_id),
    )


async def pending_petition_decision(
    connection: Connection, decision_id: uuid.UUID
) -> tuple[uuid.UUID, dict[str, Any]] | None:
    """A decision on a petition sent and not confirmed: its petition and what it was."""
    row = await connection.fetchrow(
        "SELECT petition_id, decision FROM moderation.pending_petition_decisions"
        " WHERE decision_id = $1",
        decision_id,
    )
    return (row["petition_id"], json.loads(row["decision"])) if row is not None else None


async def add_pending_petition_decision(
    connection: Connection, petition_id: uuid.UUID, decision: Mapping[str, Any]
) -> None:
    await connection.execute(
        "INSERT INTO moderation.pending_petition_decisions (decision_id, petition_id, decision)"
        " VALUES ($1, $2, $3::jsonb) ON CONFLICT (decision_id) DO NOTHING",
        uuid.UUID(str(decision["decision_id"])),
        petition_id,
        json.dumps(dict(decision)),
    )


async def pending_petition_decisions(
    connection: Connection, petition_id: uuid.UUID, kind: str
) -> list[dict[str, Any]]:
    """The petition's decisions of this kind sent and not confirmed, oldest first."""
    rows = await connection.fetch(
        "SELECT decision FROM moderation.pending_petition_decisions"
        " WHERE petition_id = $1 AND decision->>'decision' = $2 ORDER BY sent_at",
        petition_id,
        kind,
    )
    return [json.loads(row["decision"]) for row in rows]


async def drop_pending_petition_decisions(
    connection: Connection | asyncpg.Pool, decision_ids: Iterable[uuid.UUID]
) -> None:
    """Confirmed (audited), or refused by the catalog: no event will confirm them."""
    await connection.execute(
        "DELETE FROM moderation.pending_petition_decisions WHERE decision_id = ANY($1::uuid[])",
        list(decision_ids),
    )


async def resolve_item(
    connection: Connection | asyncpg.Pool, item_id: uuid.UUID, resolution: str, resolved_by: str
) -> None:
    await connection.execute(
        """
        UPDATE moderation.queue_items
        SET resolved_at = now(), resolution = $2, resolved_by = $3,
            claimed_by = NULL, claimed_by_name = NULL, claim_expires_at = NULL
        WHERE id = $1 AND resolved_at IS NULL
        """,
        item_id,
        resolution,
        resolved_by,
    )


async def resolve_follow_ups(connection: Connection, petition_id: uuid.UUID, step: str) -> None:
    await connection.execute(
        """
        UPDATE moderation.queue_items
        SET resolved_at = now(), resolution = $2, resolved_by = 'follow-up',
            claimed_by = NULL, claimed_by_name = NULL, claim_expires_at = NULL
        WHERE petition_id = $1 AND kind = 'follow-up' AND resolved_at IS NULL
        """,
        petition_id,
        step,
    )


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    petition_id: uuid.UUID | None
    reason: str | None
    details: dict[str, Any]
    decision_id: uuid.UUID | None
    item_id: uuid.UUID | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> AuditEntry:
        return cls(
            id=row["id"],
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            petition_id=row["petition_id"],
            reason=row["reason"],
            details=json.loads(row["details"]),
            decision_id=row["decision_id"],
            item_id=row["item_id"],
        )


async def append_audit(
    connection: Connection,
    *,
    actor: str,
    action: str,
    petition_id: uuid.UUID,
    reason: str | None,
    details: Mapping[str, Any],
    decision_id: uuid.UUID,
    item_id: uuid.UUID | None,
) -> bool:
    """The decision's row; False when that decision was recorded before."""
    added = await connection.fetchval(
        """
        INSERT INTO moderation.audit_log
            (actor, action, petition_id, reason, details, decision_id, item_id)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)
        ON CONFLICT (decision_id) DO NOTHING
        RETURNING true
        """,
        actor,
        action,
        petition_id,
        reason,
        json.dumps(dict(details)),
        decision_id,
        item_id,
    )
    return bool(added)


async def audit_entry(
    connection: Connection | asyncpg.Pool, decision_id: uuid.UUID
) -> AuditEntry | None:
    row = await connection.fetchrow(
        "SELECT * FROM moderation.audit_log WHERE decision_id = $1", decision_id
    )
    return AuditEntry.from_row(row) if row is not None else None


async def audit_log(
    pool: asyncpg.Pool, *, petition_id: uuid.UUID | None, limit: int, offset: int
) -> tuple[list[AuditEntry], int]:
    rows = await pool.fetch(
        "SELECT * FROM moderation.audit_log WHERE ($1::uuid IS NULL OR petition_id = $1)"
        " ORDER BY id DESC LIMIT $2 OFFSET $3",
        petition_id,
        limit,
        offset,
    )
    total = await pool.fetchval(
        "SELECT count(*) FROM moderation.audit_log WHERE ($1::uuid IS NULL OR petition_id = $1)",
        petition_id,
    )
    return [AuditEntry.from_row(row) for row in rows], int(total)


# ---- metrics --------------------------------------------------------------------------------


async def queue_depths(pool: asyncpg.Pool) -> dict[str, tuple[int, float]]:
    """Per kind: open items and the age in seconds of the oldest."""
    rows = await pool.fetch(
        "SELECT kind, count(*) AS items,"
        " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest"
        " FROM moderation.queue_items WHERE resolved_at IS NULL GROUP BY kind"
    )
    depths = dict.fromkeys(KINDS, (0, 0.0))
    for row in rows:
        depths[row["kind"]] = (int(row["items"]), max(0.0, row["oldest"]))
    return depths
