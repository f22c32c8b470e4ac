"""Decisions: checked here, applied by the catalog, recorded in the audit log once it has.

The order keeps the audit log and the catalog from diverging:
1. the decision gets its id, kept on the item (``pending_decisions``) in a first transaction;
2. the catalog is asked to apply it, with the staff member's own token and that id;
3. only after the catalog's 200, one transaction writes the audit row and resolves the item.
A catalog that does not answer leaves the item claimed and undecided (503, ``Retry-After``);
the same decision sent again reuses the same id, which the catalog recognises. Should the
catalog have applied it all the same, its event (``published``...) reaches the queue consumer,
which writes the audit row from the pending decision it matches
(:mod:`paraphe_moderation.events`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import asyncpg

from paraphe_common import follow_up
from paraphe_common.problems import Problem
from paraphe_common.texts import has_control_characters, with_line_feeds
from paraphe_common.tokens import ADMIN, COMMITTEE_SECRETARIAT, MODERATOR
from paraphe_moderation import store
from paraphe_moderation.catalog import Catalog, CatalogRefused, CatalogUnavailable
from paraphe_moderation.metrics import ModerationMetrics
from paraphe_moderation.settings import ModerationSettings
from paraphe_moderation.store import FOLLOW_UP, REPORT, REVIEW, AuditEntry, QueueItem, Staff
from paraphe_moderation.texts import CONTROL_CHARACTERS

PUBLISH: Final = "publish"
REJECT: Final = "reject"
TAKE_DOWN: Final = "take-down"
FOLLOW_UP_DECISION: Final = "follow-up"
DISMISS: Final = "dismiss"  # a report found groundless: moderation's own, the catalog is not told
DECISIONS: Final = (PUBLISH, REJECT, TAKE_DOWN, FOLLOW_UP_DECISION, DISMISS)

# What each decision resolves an item as, in the catalog's words where it has one.
RESOLUTIONS: Final = {
    PUBLISH: "published",
    REJECT: "rejected",
    TAKE_DOWN: "hidden",
    DISMISS: "dismissed",
}

# The petition statuses that leave nothing to decide on an item of each kind.
SETTLED_BY: Final = {
    REVIEW: frozenset({"published", "rejected", "hidden", "closed"}),
    REPORT: frozenset({"hidden", "closed"}),
}

MODERATORS: Final = frozenset({MODERATOR, ADMIN})
SECRETARIATS: Final = frozenset({COMMITTEE_SECRETARIAT, ADMIN})
ROLES: Final = {
    PUBLISH: MODERATORS,
    REJECT: MODERATORS,
    TAKE_DOWN: MODERATORS,
    DISMISS: MODERATORS,
    FOLLOW_UP_DECISION: SECRETARIATS,
}
# Who works on which kind of item: only they see such items, in the queue or one by one (a
# review item holds the text of a petition not yet published).
KIND_ROLES: Final = {REVIEW: MODERATORS, REPORT: MODERATORS, FOLLOW_UP: SECRETARIATS}
# The decisions taken on a claimed item, by its kind; the others are taken on a petition.
ITEM_DECISIONS: Final = {REVIEW: (PUBLISH, REJECT), REPORT: (TAKE_DOWN, DISMISS)}
PETITION_DECISIONS: Final = (TAKE_DOWN, FOLLOW_UP_DECISION)

REASON_MAX_LENGTH: Final = 2000
# Seconds after which a decision sent to the catalog and never answered is over, applied or not:
# beyond the longest PARAPHE_CATALOG_TIMEOUT (60 s).
UNANSWERED_AFTER: Final = 90.0
NOTE_MAX_LENGTH: Final = 2000
RETRY_AFTER_SECONDS: Final = 5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    decision: str
    committee: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    step: str | None = None
    note: str | None = None
    # Of a dismissal: how many reports the agent had before them; more since, and it waits.
    reports_seen: int | None = None

    def catalog_body(self, decision_id: uuid.UUID) -> dict[str, Any]:
        body: dict[str, Any] = {"decision_id": str(decision_id), "decision": self.decision}
        if self.decision == PUBLISH:
            body["committee"] = self.committee
        elif self.decision in (REJECT, TAKE_DOWN):
            body |= {"reason_code": self.reason_code, "reason": self.reason}
        elif self.decision == FOLLOW_UP_DECISION:
            body |= {"step": self.step, "note": self.note}
        return body

    def same_as(self, pending: Mapping[str, Any]) -> bool:
        return all(pending.get(key) == value for key, value in asdict(self).items())

    def recorded_as(self, entry: AuditEntry) -> bool:
        """Whether the audit row records this very decision (its kind and every value)."""
        return (
            entry.action == self.decision
            and entry.reason == self.reason
            and all(
                entry.details.get(key) == getattr(self, key)
                for key in ("committee", "reason_code", "step", "note")
            )
        )


INVALID_DECISION: Final = "La décision n'est pas valide : corrigez les champs indiqués."


def _invalid(detail: str, **extensions: Any) -> Problem:
    return Problem(422, detail, kind="invalid-decision", **extensions)


def invalid_field(name: str, reason: str, **extensions: Any) -> Problem:
    """A decision refused for one of its fields, named as the catalog names them (RFC 9457)."""
    return _invalid(
        INVALID_DECISION, invalid_params=[{"name": name, "reason": reason}], **extensions
    )


def _text(document: Mapping[str, Any], key: str, max_length: int) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_field(key, "Ce champ doit être un texte.")
    value = value.strip()
    if len(value) > max_length:
        raise invalid_field(key, f"Ce texte dépasse {max_length} caractères.")
    if has_control_characters(value):
        raise invalid_field(key, CONTROL_CHARACTERS)
    return with_line_feeds(value) or None


def _word(document: Mapping[str, Any], key: str) -> str | None:
    """A field meant to name something (a decision, a committee, a code): a string or nothing."""
    value = document.get(key)
    return value if isinstance(value, str) else None


def read_decision(
    document: Any, settings: ModerationSettings, allowed: tuple[str, ...]
) -> tuple[Decision, uuid.UUID | None]:
    """The decision a request describes, checked; and the id its sender chose, if any."""
    if not isinstance(document, dict):
        raise _invalid("Le corps de la requête doit être un objet JSON.")
    kind = _word(document, "decision")
    if kind not in allowed:
        raise _invalid(
            "Décision inconnue ou impossible ici : " + ", ".join(allowed) + ".",
            allowed=list(allowed),
        )
    decision_id: uuid.UUID | None = None
    if document.get("decision_id") not in (None, ""):  # none chosen: one is made
        try:
            decision_id = uuid.UUID(str(document["decision_id"]))
        except ValueError:
            raise invalid_field("decision_id", "Identifiant (UUID) attendu.") from None
    if kind == PUBLISH:
        # Never a default: a petition's committee cannot be changed once it is published.
        committees = [c.id for c in settings.committees]
        committee = _word(document, "committee")
        if committee not in committees:
            raise invalid_field(
                "committee", "Choisissez la commission saisie de la pétition.", allowed=committees
            )
        return Decision(PUBLISH, committee=committee), decision_id
    if kind in (REJECT, TAKE_DOWN):
        labels = {r.code: r.label for r in settings.reason_codes}
        code = _word(document, "reason_code")
        if code is None or code not in labels:
            raise invalid_field(
                "reason_code", "Choisissez un motif parmi ceux prévus.", allowed=sorted(labels)
            )
        reason = _text(document, "reason", REASON_MAX_LENGTH) or labels[code]
        return Decision(kind, reason_code=code, reason=reason), decision_id
    if kind == FOLLOW_UP_DECISION:
        step = _word(document, "step")
        if step is None or step not in follow_up.STEPS:
            raise invalid_field(
                "step", "Choisissez une étape du suivi.", allowed=list(follow_up.STEPS)
            )
        return Decision(kind, step=step, note=_text(document, "note", NOTE_MAX_LENGTH)), decision_id
    return Decision(
        DISMISS,
        reason=_text(document, "reason", REASON_MAX_LENGTH),
        reports_seen=_count(document, "reports_seen"),
    ), decision_id


def _count(document: Mapping[str, Any], key: str) -> int | None:
    """A count the form or the program sends: a whole number, as a number or as digits."""
    value = document.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
        return value
    raise invalid_field(key, "Nombre entier positif attendu.")


def follow_up_refusal(
    petition: Mapping[str, Any], step: str | None, thresholds: tuple[int, ...]
) -> str | None:
    """Why a follow-up step (any, when ``step`` is None) cannot be recorded on the petition as
    the catalog gives it, in French; None when it can (:func:`paraphe_common.follow_up.refusal`).
    """
    flags = petition.get("thresholds")
    steps = petition.get("follow_up")
    return follow_up.refusal(
        step,
        reached=[
            flag["threshold"]
            for flag in (flags if isinstance(flags, list) else [])
            if isinstance(flag, dict) and isinstance(flag.get("threshold"), int)
        ],
        recorded={
            entry["step"]
            for entry in (steps if isinstance(steps, list) else [])
            if isinstance(entry, dict) and isinstance(entry.get("step"), str)
        },
        thresholds=thresholds,
    )


def require_role(staff: Staff, roles: frozenset[str]) -> None:
    if not staff.roles & roles:
        raise Problem(403, "Votre compte n'a pas accès à cette action.", kind="missing-role")


def kinds_seen_by(staff: Staff) -> tuple[str, ...]:
    """The kinds of item the agent's roles work on, and so may see."""
    return tuple(kind for kind in store.KINDS if staff.roles & KIND_ROLES[kind])


def require_kind_seen(staff: Staff, kind: str) -> None:
    if kind not in kinds_seen_by(staff):
        raise Problem(
            403,
            "Votre compte n'a pas accès à cette file.",
            kind="missing-role",
            kinds=list(kinds_seen_by(staff)),
        )


def decision_document(entry: AuditEntry) -> dict[str, Any]:
    details = entry.details
    return {
        "decision_id": str(entry.decision_id) if entry.decision_id else None,
        "decision": entry.action,
        "petition_id": str(entry.petition_id) if entry.petition_id else None,
        "item_id": str(entry.item_id) if entry.item_id else None,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "actor_name": details.get("actor_name", ""),
        "reason": entry.reason,
        "reason_code": details.get("reason_code"),
        "committee": details.get("committee"),
        "step": details.get("step"),
        "note": details.get("note"),
    }


@dataclass(frozen=True)
class Outcome:
    decision: AuditEntry
    petition: dict[str, Any] | None  # as the catalog answered, when it was asked

    def document(self) -> dict[str, Any]:
        return {"decision": decision_document(self.decision), "petition": self.petition}


def _refuse_unsure_dismissal(item: QueueItem, decision: Decision) -> None:
    """A dismissal covers the reports its agent read: one that came after must be read first.
    And it cannot follow a take-down sent to the catalog and never answered: the catalog may
    have applied it, and the dismissal would leave it unaudited."""
    if any(pending.get("decision") == TAKE_DOWN for pending in item.pending_decisions):
        raise Problem(
            409,
            "Un retrait a été envoyé au catalogue sans réponse : il a peut-être été appliqué. "
            "Renvoyez le retrait pour le savoir, ou réessayez de classer dans une minute.",
            kind="decision-pending",
        )
    reports = int(item.details.get("reports", 0))
    if decision.reports_seen is not None and reports > decision.reports_seen:
        raise Problem(
            409,
            "De nouveaux signalements sont arrivés depuis l'ouverture de cette page : "
            "lisez-les avant de classer sans suite.",
            kind="new-reports",
            reports=reports,
        )


class Decisions:
    def __init__(
        self,
        pool: asyncpg.Pool,
        catalog: Catalog,
        metrics: ModerationMetrics,
    ) -> None:
        self._pool = pool
        self._catalog = catalog
        self._metrics = metrics

    async def on_item(
        self,
        item_id: uuid.UUID,
        staff: Staff,
        token: str,
        decision: Decision,
        chosen_id: uuid.UUID | None,
    ) -> Outcome:
        """Decide a claimed item: publish or reject a submission, take down or dismiss."""
        require_role(staff, ROLES[decision.decision])
        if decision.decision == DISMISS:
            await self._settle_unanswered_take_downs(item_id, token)
        if chosen_id is not None and (
            replayed := await self._replay(chosen_id, token, decision, item_id=item_id)
        ):
            return replayed
        async with self._pool.acquire() as connection, connection.transaction():
            petition_id = await store.item_petition(connection, item_id)
            if petition_id is not None:
                await store.lock_petition(connection, petition_id)  # see store.lock_petition
            item = await store.lock_item(connection, item_id)
            if item is None:
                raise Problem(404, "Élément de la file introuvable.")
            if decision.decision not in ITEM_DECISIONS.get(item.kind, ()):
                raise Problem(
                    409,
                    "Cette décision ne s'applique pas à cet élément.",
                    kind="decision-not-for-this-item",
                    allowed=list(ITEM_DECISIONS.get(item.kind, ())),
                )
            retried = next((p for p in item.pending_decisions if decision.same_as(p)), None)
            if retried is not None:
                decision_id = uuid.UUID(retried["decision_id"])  # the same decision, again
            elif chosen_id is not None and all(
                p["decision_id"] != str(chosen_id) for p in item.pending_decisions
            ):
                decision_id = chosen_id
            else:
                decision_id = uuid.uuid4()
            if not item.is_open:
                if retried is not None and (
                    replayed := await self._replay(decision_id, token, decision, item_id=item.id)
                ):
                    return replayed
                raise Problem(409, "Cet élément a déjà été traité.", kind="already-resolved")
            if not item.is_claimed_by(staff):
                raise Problem(
                    409,
                    "Prenez d'abord cet élément en charge (ou reprenez-le : votre prise en "
                    "charge a expiré).",
                    kind="not-claimed",
                )
            if decision.decision == DISMISS:
                _refuse_unsure_dismissal(item, decision)
                entry = await self._record(
                    connection, item.petition_id, item, staff, decision, decision_id
                )
                return Outcome(entry, None)
            if retried is None:
                await store.add_pending_decision(
                    connection,
                    item.id,
                    asdict(decision) | {"decision_id": str(decision_id), "actor": staff.subject,
                                        "actor_name": staff.name, "sent_at": time.time()},
                )  # fmt: skip
        petition = await self._apply(item, token, decision, decision_id)
        async with self._pool.acquire() as connection, connection.transaction():
            entry = await self._record(
                connection, item.petition_id, item, staff, decision, decision_id
            )
        return Outcome(entry, petition)

    async def on_petition(
        self,
        petition_id: uuid.UUID,
        staff: Staff,
        token: str,
        decision: Decision,
        chosen_id: uuid.UUID | None,
    ) -> Outcome:
        """A decision on a petition itself: a take-down, a follow-up step."""
        require_role(staff, ROLES[decision.decision])
        if chosen_id is not None and await self._changed_since(chosen_id, petition_id, decision):
            chosen_id = None  # a change of mind after the first was recorded: one of its own
        decision_id = chosen_id or uuid.uuid4()
        if replayed := await self._replay(decision_id, token, decision, petition_id=petition_id):
            return replayed
        async with self._pool.acquire() as connection, connection.transaction():
            await store.lock_petition(connection, petition_id)  # as events do
            sent = await store.pending_petition_decision(connection, decision_id)
            if sent is not None and not (sent[0] == petition_id and decision.same_as(sent[1])):
                # The same form sent again with other choices, after an answer lost: the first
                # may have been applied, and its event will find it; this one is new.
                decision_id = uuid.uuid4()
            await store.add_pending_petition_decision(
                connection,
                petition_id,
                asdict(decision) | {"decision_id": str(decision_id), "actor": staff.subject,
                                    "actor_name": staff.name, "roles": sorted(staff.roles)},
            )  # fmt: skip
        petition = await self._apply(None, token, decision, decision_id, petition_id)
        async with self._pool.acquire() as connection, connection.transaction():
            entry = await self._record(connection, petition_id, None, staff, decision, decision_id)
            await store.drop_pending_petition_decisions(connection, [decision_id])
        return Outcome(entry, petition)

    async def _changed_since(
        self, decision_id: uuid.UUID, petition_id: uuid.UUID, decision: Decision
    ) -> bool:
        """Whether ``decision_id`` was recorded on this petition as a decision of this kind
        with other values (the form sent again after an answer lost, its choices changed)."""
        entry = await store.audit_entry(self._pool, decision_id)
        return (
            entry is not None
            and entry.petition_id == petition_id
            and entry.action == decision.decision
            and not decision.recorded_as(entry)
        )

    def _catalog_unavailable(self) -> Problem:
        self._metrics.catalog_failures.inc()
        return Problem(
            503,
            "Le catalogue des pétitions ne répond pas : la décision n'est pas enregistrée. "
            "Réessayez dans quelques instants.",
            kind="catalog-unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    async def _replay(
        self,
        decision_id: uuid.UUID,
        token: str,
        decision: Decision,
        *,
        item_id: uuid.UUID | None = None,
        petition_id: uuid.UUID | None = None,
    ) -> Outcome | None:
        """A decision recorded before, sent again: the same answer, nothing done twice."""
        entry = await store.audit_entry(self._pool, decision_id)
        if entry is None:
            return None
        same_target = (item_id is None or entry.item_id == item_id) and (
            petition_id is None or entry.petition_id == petition_id
        )
        if not same_target or entry.action != decision.decision:
            raise Problem(
                409,
                "Cet identifiant de décision a déjà servi pour une autre décision.",
                kind="decision-id-reused",
            )
        if entry.action == DISMISS or entry.petition_id is None:
            return Outcome(entry, None)
        try:
            petition = await self._catalog.petition(str(entry.petition_id), token)
        except (CatalogUnavailable, CatalogRefused):
            petition = None  # the decision stands; the petition's view can be read later
        return Outcome(entry, petition)

    async def _apply(
        self,
        item: QueueItem | None,
        token: str,
        decision: Decision,
        decision_id: uuid.UUID,
        petition_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        target = str(item.petition_id if item is not None else petition_id)
        try:
            return await self._catalog.decide(target, token, decision.catalog_body(decision_id))
        except CatalogUnavailable:
            raise self._catalog_unavailable() from None
        except CatalogRefused as refused:
            if item is None:  # refused, so not applied: no event will confirm it
                await store.drop_pending_petition_decisions(self._pool, [decision_id])
            else:
                # Refused, so not applied: no event will confirm it.
                await store.drop_pending_decision(self._pool, item.id, decision_id)
                status = refused.problem.get("petition_status")
                if refused.status == 409 and status in SETTLED_BY.get(item.kind, ()):
                    await self._settled_elsewhere(item.id, item.petition_id, str(status))
            raise _catalog_problem(refused) from None

    async def _settle_unanswered_take_downs(self, item_id: uuid.UUID, token: str) -> None:
        """Before a dismissal: a take-down sent long enough ago that the catalog has finished
        with it, answered or not, was applied if the petition is taken down (it is audited
        and the item settled) and was not if it is still published (it is let go)."""
        item = await store.get_item(self._pool, item_id)
        if item is None:
            return
        sent = [p for p in item.pending_decisions if p.get("decision") == TAKE_DOWN]
        now = time.time()
        if not sent or any(now - float(p.get("sent_at", 0)) < UNANSWERED_AFTER for p in sent):
            return  # none, or one the catalog may still be applying: the dismissal waits
        try:
            petition = await self._catalog.petition(str(item.petition_id), token)
        except (CatalogUnavailable, CatalogRefused):
            return  # not known: the dismissal waits
        if petition.get("status") == "hidden":
            await self._settled_elsewhere(item.id, item.petition_id, "hidden")
        elif petition.get("status") == "published":
            for pending in sent:
                decision_id = uuid.UUID(str(pending["decision_id"]))
                await store.drop_pending_decision(self._pool, item.id, decision_id)

    async def _settled_elsewhere(
        self, item_id: uuid.UUID, petition_id: uuid.UUID, status: str
    ) -> None:
        """The catalog says the petition was decided already: nothing is left on the item.

        If an earlier decision of ours did it (its answer lost), it is audited now, as its
        event would have.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            await store.lock_petition(connection, petition_id)  # before the item, as events do
            item = await store.lock_item(connection, item_id)
            if item is None or not item.is_open:
                return
            await store.resolve_item(connection, item.id, status, "catalog")
            await audit_confirmed(connection, item, status, {}, self._metrics, "catalog")

    async def _record(
        self,
        connection: store.Connection,
        petition_id: uuid.UUID,
        item: QueueItem | None,
        staff: Staff,
        decision: Decision,
        decision_id: uuid.UUID,
    ) -> AuditEntry:
        await store.lock_petition(connection, petition_id)  # before the item, as events do
        details = {
            key: value
            for key, value in asdict(decision).items()
            if key not in {"decision", "reason"} and value is not None
        }
        details |= {"actor_name": staff.name, "roles": sorted(staff.roles)}
        if item is not None:
            details["item_kind"] = item.kind
        appended = await store.append_audit(
            connection,
            actor=staff.subject,
            action=decision.decision,
            petition_id=petition_id,
            reason=decision.reason,
            details=details,
            decision_id=decision_id,
            item_id=item.id if item is not None else None,
        )
        if item is not None:
            await store.resolve_item(
                connection, item.id, RESOLUTIONS[decision.decision], staff.subject
            )
        if decision.decision == TAKE_DOWN:
            await store.close_items(connection, str(petition_id), [REPORT], RESOLUTIONS[TAKE_DOWN])
        if decision.decision == FOLLOW_UP_DECISION and decision.step in follow_up.FINAL_STEPS:
            await store.resolve_follow_ups(connection, petition_id, str(decision.step))
        if appended:
            self._metrics.decisions.labels(decision.decision).inc()
            log.info(
                "decision %s on petition %s by agent %s (%s)",
                decision.decision,
                petition_id,
                staff.subject,
                decision_id,
            )
        entry = await store.audit_entry(connection, decision_id)
        if entry is None:  # written just above, or by the same decision before
            raise RuntimeError(f"decision {decision_id} has no audit row")
        return entry


# The decision that brings a petition to each status.
CONFIRMS: Final = {"published": PUBLISH, "rejected": REJECT, "hidden": TAKE_DOWN}


def confirmed_decision(
    pending: list[dict[str, Any]], status: str, hint: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Of the decisions sent and not confirmed, the one the catalog applied to reach ``status``.

    The event names the committee (published) or the reason code (rejected, hidden); failing
    that, the last decision of the right kind.
    """
    candidates = [p for p in pending if p.get("decision") == CONFIRMS.get(status)]
    if hint.get("decision_id"):  # the catalog names the decision it applied
        named = [p for p in candidates if p.get("decision_id") == hint["decision_id"]]
        return named[-1] if named else None
    telling = "committee" if status == "published" else "reason_code"
    exact = [p for p in candidates if hint.get(telling) and p.get(telling) == hint.get(telling)]
    chosen = exact or candidates
    return chosen[-1] if chosen else None


async def audit_confirmed(
    connection: store.Connection,
    item: QueueItem,
    status: str,
    hint: Mapping[str, Any],
    metrics: ModerationMetrics,
    confirmed_by: str,
) -> None:
    """Audit the decision of ours that the catalog applied without our hearing of it."""
    pending = confirmed_decision(item.pending_decisions, status, hint)
    if pending is None:
        return  # settled by another path: nothing of ours to confirm
    await _audit_sent(connection, pending, item.petition_id, item, metrics, confirmed_by)


async def audit_petition_decision_confirmed(
    connection: store.Connection,
    petition_id: uuid.UUID,
    kind: str,
    hint: Mapping[str, Any],
    metrics: ModerationMetrics,
    confirmed_by: str,
) -> None:
    """Audit the decision taken on the petition's page (``kind``: a take-down, a follow-up
    step) that the catalog applied without our hearing of it; the event's ``hint`` (its reason
    code, its step) tells which. Those of its kind left unconfirmed are let go once one is:
    a petition is taken down once, and a step recorded once."""
    sent = await store.pending_petition_decisions(connection, petition_id, kind)
    if hint.get("decision_id"):  # the catalog names the decision it applied
        named = [p for p in sent if p.get("decision_id") == hint["decision_id"]]
        if named:
            await _audit_sent(connection, named[-1], petition_id, None, metrics, confirmed_by)
        # A take-down is applied once: the others of ours were not; a step, only this one.
        done = sent if kind == TAKE_DOWN else named
        await store.drop_pending_petition_decisions(
            connection, [uuid.UUID(str(p["decision_id"])) for p in done]
        )
        return
    telling = "step" if kind == FOLLOW_UP_DECISION else "reason_code"
    exact = [p for p in sent if hint.get(telling) and p.get(telling) == hint.get(telling)]
    if kind == FOLLOW_UP_DECISION and not exact:
        return  # another step's event: this one's may still come
    chosen = exact or sent
    if not chosen:
        return
    await _audit_sent(connection, chosen[-1], petition_id, None, metrics, confirmed_by)
    done = chosen if kind == FOLLOW_UP_DECISION else sent
    await store.drop_pending_petition_decisions(
        connection, [uuid.UUID(str(p["decision_id"])) for p in done]
    )


async def _audit_sent(
    connection: store.Connection,
    pending: Mapping[str, Any],
    petition_id: uuid.UUID,
    item: QueueItem | None,
    metrics: ModerationMetrics,
    confirmed_by: str,
) -> None:
    """The audit row of a decision sent to the catalog, from what was kept when it was sent."""
    details = {
        k: v
        for k, v in pending.items()
        if k not in {"decision", "reason", "actor", "decision_id", "sent_at"} and v is not None
    }
    if item is not None:
        details["item_kind"] = item.kind
    appended = await store.append_audit(
        connection,
        actor=str(pending.get("actor", "")),
        action=str(pending["decision"]),
        petition_id=petition_id,
        reason=pending.get("reason"),
        details=details | {"confirmed_by": confirmed_by},
        decision_id=uuid.UUID(str(pending["decision_id"])),
        item_id=item.id if item is not None else None,
    )
    if appended:
        metrics.decisions.labels(str(pending["decision"])).inc()


def invalid_params_of(problem: Mapping[str, Any]) -> dict[str, Any]:
    """A problem's ``invalid_params`` (the catalog's, or ours), the well-formed ones."""
    params = problem.get("invalid_params")
    kept = [
        {"name": param["name"], "reason": param["reason"]}
        for param in (params if isinstance(params, list) else [])
        if isinstance(param, dict)
        and isinstance(param.get("name"), str)
        and isinstance(param.get("reason"), str)
    ]
    return {"invalid_params": kept} if kept else {}


def _catalog_problem(refused: CatalogRefused) -> Problem:
    detail = refused.detail
    if refused.status == 404:
        return Problem(404, detail or "Pétition inconnue du catalogue.", kind="unknown-petition")
    if refused.status == 409 and refused.kind == follow_up.NOT_ALLOWED:
        # The committee's rule (paraphe_common.follow_up), checked by the catalog under the
        # petition's row lock, where two steps sent at once cannot both pass: its reason.
        return Problem(409, detail or "Cette étape du suivi n'est pas possible.", kind=refused.kind)
    if refused.status == 409:
        return Problem(
            409,
            detail or "L'état de la pétition ne permet plus cette décision.",
            kind="transition-not-allowed",
        )
    if refused.status == 401:
        return Problem(
            401,
            "Votre session n'est pas valide ou a expiré : identifiez-vous à nouveau.",
            kind="invalid-token",
        )
    if refused.status == 403:
        return Problem(403, "Votre compte n'a pas accès à cette action.", kind="missing-role")
    if refused.status == 422:
        # Its fields named as ours are, so that the page marks them too.
        return _invalid(
            detail or "Décision refusée par le catalogue.", **invalid_params_of(refused.problem)
        )
    return Problem(409, detail or "Le catalogue a refusé la décision.", kind="catalog-refused")
