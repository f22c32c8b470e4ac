"""Every change to a petition: one transaction each, with its history row and its event.

A transition locks the petition's row, checks the move is allowed from the status it finds,
writes the new status, a row in ``catalog.transitions`` and the event in the outbox
(``catalog.events``), and commits. The events are published after the commit (events.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import asyncpg

from paraphe_common import follow_up
from paraphe_common.problems import Problem
from paraphe_petition_catalog.petitions import (
    CLOSED,
    CLOSED_EVENT,
    DECISION_EVENTS,
    DRAFT,
    FOLLOW_UP,
    PUBLISH,
    PUBLISHED,
    REJECT,
    SUBMITTED,
    SUBMITTED_EVENT,
    TAKE_DOWN,
    may_decide,
    status_after,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

AUTHOR_ACTOR: Final = "author"
# Drafts one author may keep at once: enough for real work, not for filling the database.
MAX_DRAFTS_PER_AUTHOR: Final = 20
# A deposit identical to one the author made this recently is that one again.
TWIN_DRAFT_WINDOW: Final = timedelta(minutes=1)
DEADLINE_ACTOR: Final = "deadline"
# Petitions closed in one transaction by the deadline pass, which loops until none is left.
CLOSE_BATCH: Final = 500


class PetitionNotFound(Exception):
    pass


class UnknownAuthor(Exception):
    """The token names an author whose identity auth-gateway never handed over."""


class TooManyDrafts(Problem):
    """The author has as many drafts as one may keep: one must be submitted first.

    A problem in itself: the author reads it as it is, from the API or from a page.
    """

    def __init__(self) -> None:
        super().__init__(
            409,
            f"Vous avez déjà {MAX_DRAFTS_PER_AUTHOR} brouillons : soumettez-en un avant d'en "
            "créer un autre.",
            kind="too-many-drafts",
        )


class TransitionRefused(Exception):
    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class FollowUpRefused(TransitionRefused):
    """A follow-up step the committee's rule does not allow now (paraphe_common.follow_up)."""


class DecisionIdReused(Exception):
    """A decision id already names another decision."""


@dataclass(frozen=True)
class Draft:
    title: str
    body: str
    suggested_committee: str | None = None


@dataclass(frozen=True)
class Decision:
    id: uuid.UUID
    decision: str
    staff_subject: str
    committee: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    step: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a transition left to do after its commit: the events to publish."""

    event_ids: tuple[uuid.UUID, ...]
    replayed: bool = False


async def _event(
    connection: Connection,
    kind: str,
    petition_id: uuid.UUID,
    at: datetime,
    status: str,
    **details: Any,
) -> uuid.UUID:
    """Write an event into the outbox, in the caller's transaction."""
    event_id = uuid.uuid4()
    body = {
        "id": str(event_id),
        "kind": kind,
        "petition_id": str(petition_id),
        "at": at.isoformat(),
        "status": status,
        **details,
    }
    await connection.execute(
        "INSERT INTO catalog.events (id, petition_id, kind, body) VALUES ($1, $2, $3, $4::jsonb)",
        event_id,
        petition_id,
        kind,
        json.dumps(body, ensure_ascii=False),
    )
    return event_id


async def _transition(
    connection: Connection,
    petition_id: uuid.UUID,
    from_status: str,
    to_status: str,
    actor: str,
    decision: Decision | None = None,
) -> None:
    await connection.execute(
        "INSERT INTO catalog.transitions"
        " (petition_id, from_status, to_status, actor, decision_id, reason_code, reason)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        petition_id,
        from_status,
        to_status,
        actor,
        decision.id if decision else None,
        decision.reason_code if decision else None,
        decision.reason if decision else None,
    )


# --- authors -------------------------------------------------------------------------------


async def create_draft(pool: asyncpg.Pool, author_id: str, draft: Draft) -> uuid.UUID:
    """A new draft; or, when the author deposited the very same one a moment ago (a double
    click, a retry after an answer lost), that one."""
    async with pool.acquire() as connection, connection.transaction():
        # The author's row locked, so two requests at once cannot both pass the limit, nor
        # both miss the twin.
        if not await connection.fetchval(
            "SELECT true FROM catalog.authors WHERE id = $1 FOR UPDATE", author_id
        ):
            raise UnknownAuthor(author_id)
        twin: uuid.UUID | None = await connection.fetchval(
            """
            SELECT id FROM catalog.petitions
            WHERE author_id = $1 AND status = $2 AND created_at > now() - $3::interval
              AND title = $4 AND body = $5
              AND suggested_committee IS NOT DISTINCT FROM $6
            ORDER BY created_at DESC
            LIMIT 1
            """,
            author_id,
            DRAFT,
            TWIN_DRAFT_WINDOW,
            draft.title,
            draft.body,
            draft.suggested_committee,
        )
        if twin is not None:
            return twin
        drafts = await connection.fetchval(
            "SELECT count(*) FROM catalog.petitions WHERE author_id = $1 AND status = $2",
            author_id,
            DRAFT,
        )
        if drafts >= MAX_DRAFTS_PER_AUTHOR:
            raise TooManyDrafts
        petition_id: uuid.UUID = await connection.fetchval(
            "INSERT INTO catalog.petitions (author_id, title, body, suggested_committee)"
            " VALUES ($1, $2, $3, $4) RETURNING id",
            author_id,
            draft.title,
            draft.body,
            draft.suggested_committee,
        )
    return petition_id


async def _lock_authors_petition(
    connection: Connection, author_id: str, petition_id: uuid.UUID
) -> str:
    """The petition's status, its row locked; another author's petition does not exist."""
    status: str | None = await connection.fetchval(
        "SELECT status FROM catalog.petitions WHERE id = $1 AND author_id = $2 FOR UPDATE",
        petition_id,
        author_id,
    )
    if status is None:
        raise PetitionNotFound(petition_id)
    return status


async def edit_draft(
    pool: asyncpg.Pool, author_id: str, petition_id: uuid.UUID, changes: dict[str, Any]
) -> None:
    """Change the given fields of a draft; ``changes`` holds only fields the author sent."""
    async with pool.acquire() as connection, connection.transaction():
        status = await _lock_authors_petition(connection, author_id, petition_id)
        if status != DRAFT:
            raise TransitionRefused(status, "Seul un brouillon peut être modifié.")
        await _write_changes(connection, petition_id, changes)


async def _write_changes(
    connection: Connection, petition_id: uuid.UUID, changes: dict[str, Any]
) -> None:
    """The given fields of a draft whose row the caller locked."""
    await connection.execute(
        """
        UPDATE catalog.petitions SET
            title = CASE WHEN $2 THEN $3 ELSE title END,
            body = CASE WHEN $4 THEN $5 ELSE body END,
            suggested_committee = CASE WHEN $6 THEN $7 ELSE suggested_committee END,
            updated_at = now()
        WHERE id = $1
        """,
        petition_id,
        "title" in changes,
        changes.get("title"),
        "body" in changes,
        changes.get("body"),
        "suggested_committee" in changes,
        changes.get("suggested_committee"),
    )


async def delete_draft(pool: asyncpg.Pool, author_id: str, petition_id: uuid.UUID) -> None:
    """A draft its author gives up: gone, as nobody else ever saw it."""
    async with pool.acquire() as connection, connection.transaction():
        status = await _lock_authors_petition(connection, author_id, petition_id)
        if status != DRAFT:
            raise TransitionRefused(status, "Seul un brouillon peut être supprimé.")
        await connection.execute("DELETE FROM catalog.petitions WHERE id = $1", petition_id)


async def submit(
    pool: asyncpg.Pool,
    author_id: str,
    petition_id: uuid.UUID,
    changes: dict[str, Any] | None = None,
) -> Outcome:
    """draft → submitted: the petition goes to moderation's admissibility review.

    ``changes``, the fields the author had on screen (the draft page's form), are written in
    the same transaction first: what is submitted is what they read, saved or not.

    Submitting again what is already submitted (a double click, a retry after an answer lost)
    changes nothing and is no error: the outcome says ``replayed``.
    """
    async with pool.acquire() as connection, connection.transaction():
        status = await _lock_authors_petition(connection, author_id, petition_id)
        if status == SUBMITTED and await _holds(connection, petition_id, changes or {}):
            return Outcome((), replayed=True)
        if status != DRAFT:
            raise TransitionRefused(status, "Seul un brouillon peut être soumis.")
        if changes:
            await _write_changes(connection, petition_id, changes)
        row = await connection.fetchrow(
            "UPDATE catalog.petitions SET status = $2, submitted_at = now(), updated_at = now()"
            " WHERE id = $1 RETURNING title, body, suggested_committee, submitted_at",
            petition_id,
            SUBMITTED,
        )
        if row is None:  # locked above: it cannot have gone
            raise PetitionNotFound(petition_id)
        await _transition(connection, petition_id, DRAFT, SUBMITTED, AUTHOR_ACTOR)
        event_id = await _event(
            connection,
            SUBMITTED_EVENT,
            petition_id,
            row["submitted_at"],
            SUBMITTED,
            title=row["title"],
            body=row["body"],
            suggested_committee=row["suggested_committee"],
            submitted_at=row["submitted_at"].isoformat(),
        )
    return Outcome((event_id,))


async def _holds(connection: Connection, petition_id: uuid.UUID, fields: dict[str, Any]) -> bool:
    """Whether the petition holds these values already."""
    row = await connection.fetchrow(
        "SELECT title, body, suggested_committee FROM catalog.petitions WHERE id = $1",
        petition_id,
    )
    return row is not None and all(row[name] == value for name, value in fields.items())


# --- moderation ----------------------------------------------------------------------------


async def decide(
    pool: asyncpg.Pool,
    petition_id: uuid.UUID,
    decision: Decision,
    *,
    signing_period_months: int,
    thresholds: Sequence[int],
) -> Outcome:
    """Apply moderation's decision, once per decision id, or say why it cannot be.

    ``thresholds`` (PARAPHE_THRESHOLDS) say which follow-up steps the petition is at.
    """
    try:
        async with pool.acquire() as connection, connection.transaction():
            status: str | None = await connection.fetchval(
                "SELECT status FROM catalog.petitions WHERE id = $1 FOR UPDATE", petition_id
            )
            if status is None:
                raise PetitionNotFound(petition_id)
            earlier = await connection.fetchrow(
                "SELECT petition_id, decision FROM catalog.decisions WHERE id = $1", decision.id
            )
            if earlier is not None:
                if (earlier["petition_id"], earlier["decision"]) != (
                    petition_id,
                    decision.decision,
                ):
                    raise DecisionIdReused(decision.id)
                return Outcome((), replayed=True)  # the same decision again: already taken
            if not may_decide(decision.decision, status):
                raise TransitionRefused(status, _REFUSALS[decision.decision])
            if decision.decision == FOLLOW_UP:
                await _require_follow_up_allowed(
                    connection, petition_id, status, decision.step, thresholds
                )
            at = await _apply(connection, petition_id, decision, signing_period_months, status)
            await connection.execute(
                "INSERT INTO catalog.decisions"
                " (id, petition_id, decision, staff_subject, decided_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                decision.id,
                petition_id,
                decision.decision,
                decision.staff_subject,
                at,
            )
            event_id = await _decision_event(connection, petition_id, decision, at)
    except asyncpg.UniqueViolationError:
        # The same decision id, for another petition, committed meanwhile.
        raise DecisionIdReused(decision.id) from None
    return Outcome((event_id,))


async def _require_follow_up_allowed(
    connection: Connection,
    petition_id: uuid.UUID,
    status: str,
    step: str | None,
    thresholds: Sequence[int],
) -> None:
    """Refuse a step the thresholds reached and the steps recorded do not allow.

    Read under the petition's row lock: a step recorded by a decision that held it before is
    seen, so two steps that end the matter, sent at once, are not both recorded.
    """
    reached = await connection.fetch(
        "SELECT threshold FROM catalog.thresholds_reached WHERE petition_id = $1", petition_id
    )
    recorded = await connection.fetch(
        "SELECT step FROM catalog.follow_ups WHERE petition_id = $1", petition_id
    )
    refusal = follow_up.refusal(
        step,
        reached=[row["threshold"] for row in reached],
        recorded={row["step"] for row in recorded},
        thresholds=thresholds,
    )
    if refusal is not None:
        raise FollowUpRefused(status, refusal)


_REFUSALS: Final = {
    PUBLISH: "Seule une pétition soumise peut être publiée.",
    REJECT: "Seule une pétition soumise peut être rejetée.",
    TAKE_DOWN: "Seule une pétition publiée ou close peut être retirée.",
    FOLLOW_UP: "Le suivi ne concerne que les pétitions publiées ou closes.",
}


async def _apply(
    connection: Connection,
    petition_id: uuid.UUID,
    decision: Decision,
    signing_period_months: int,
    status: str,
) -> datetime:
    """Write the decision's effect on the petition; the moment it took effect."""
    after = status_after(decision.decision, status)
    if decision.decision == PUBLISH:
        at: datetime = await connection.fetchval(
            """
            UPDATE catalog.petitions SET status = $2, committee = $3, published_at = now(),
                closes_at = now() + make_interval(months => $4), decided_at = now(),
                status_reason_code = NULL, status_reason = NULL, updated_at = now()
            WHERE id = $1 RETURNING published_at
            """,
            petition_id,
            after,
            decision.committee,
            signing_period_months,
        )
    elif decision.decision in (REJECT, TAKE_DOWN):
        at = await connection.fetchval(
            """
            UPDATE catalog.petitions SET status = $2, status_reason_code = $3,
                status_reason = $4, decided_at = now(), updated_at = now()
            WHERE id = $1 RETURNING decided_at
            """,
            petition_id,
            after,
            decision.reason_code,
            decision.reason,
        )
    else:
        at = await connection.fetchval(
            "INSERT INTO catalog.follow_ups (petition_id, step, note, decision_id)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING at",
            petition_id,
            decision.step,
            decision.note,
            decision.id,
        )
        if at is None:
            raise TransitionRefused(status, "Cette étape du suivi est déjà enregistrée.")
        return at
    await _transition(connection, petition_id, status, after, decision.staff_subject, decision)
    return at


async def _decision_event(
    connection: Connection, petition_id: uuid.UUID, decision: Decision, at: datetime
) -> uuid.UUID:
    row = await connection.fetchrow(
        "SELECT status, committee, closes_at FROM catalog.petitions WHERE id = $1", petition_id
    )
    if row is None:  # locked by the caller: it cannot have gone
        raise PetitionNotFound(petition_id)
    details: dict[str, Any]
    if decision.decision == PUBLISH:
        details = {"committee": row["committee"], "closes_at": row["closes_at"].isoformat()}
    elif decision.decision in (REJECT, TAKE_DOWN):
        details = {"reason_code": decision.reason_code, "reason": decision.reason}
    else:
        details = {"step": decision.step, "note": decision.note}
    # Moderation keeps what it sent until it hears of it: the id tells which decision this was.
    details["decision_id"] = str(decision.id)
    return await _event(
        connection, DECISION_EVENTS[decision.decision], petition_id, at, row["status"], **details
    )


# --- deadlines -----------------------------------------------------------------------------


async def close_expired(pool: asyncpg.Pool, limit: int = CLOSE_BATCH) -> Outcome:
    """published → closed for the petitions whose deadline has passed.

    Safe with several replicas: the UPDATE re-checks its condition on each row it waits for,
    so a petition another replica closed meanwhile is skipped, and closed once.
    """
    async with pool.acquire() as connection, connection.transaction():
        closed = await connection.fetch(
            """
            UPDATE catalog.petitions SET status = $1, closed_at = now(), updated_at = now()
            WHERE id IN (
                SELECT id FROM catalog.petitions
                WHERE status = $2 AND closes_at <= now()
                ORDER BY closes_at LIMIT $3
                FOR UPDATE SKIP LOCKED
            ) AND status = $2
            RETURNING id, closed_at
            """,
            CLOSED,
            PUBLISHED,
            limit,
        )
        event_ids = []
        for row in closed:
            await _transition(connection, row["id"], PUBLISHED, CLOSED, DEADLINE_ACTOR)
            event_ids.append(
                await _event(connection, CLOSED_EVENT, row["id"], row["closed_at"], CLOSED)
            )
    return Outcome(tuple(event_ids))
