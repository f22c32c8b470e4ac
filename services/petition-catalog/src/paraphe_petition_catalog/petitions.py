"""Petition states, named as the parliament names them, and the moves between them.

draft → submitted (the author) → published (a moderator, with a committee) | rejected (a
moderator, with a reason); published → closed (its deadline) | hidden (a moderator takes it
down, with a reason). A closed petition can be taken down too: what was defamatory while open
stays so. Follow-up steps, after a threshold, leave the status as it is.
"""

from __future__ import annotations

from typing import Final

from paraphe_common import follow_up
from paraphe_common.tokens import ADMIN, COMMITTEE_SECRETARIAT, MODERATOR, STAFF_ROLES

DRAFT: Final = "draft"
SUBMITTED: Final = "submitted"
PUBLISHED: Final = "published"
REJECTED: Final = "rejected"
CLOSED: Final = "closed"
HIDDEN: Final = "hidden"

# What the public may see: published petitions, open or closed. Drafts, submissions under
# review and rejected petitions belong to their author and to staff; of a hidden petition the
# public learns only that it was taken down, and why.
PUBLIC_STATES: Final = frozenset({PUBLISHED, CLOSED})

# Which staff may read a petition whole (the internal API), by status: a draft is its author's
# alone; a submission under review, or rejected, is read by those who judge admissibility (its
# text was never public); once published (open, closed, or taken down), by every staff role,
# a committee secretariat following it up included.
REVIEWERS: Final = frozenset({MODERATOR, ADMIN})
READ_ROLES: Final[dict[str, frozenset[str]]] = {
    DRAFT: frozenset(),
    SUBMITTED: REVIEWERS,
    REJECTED: REVIEWERS,
    PUBLISHED: STAFF_ROLES,
    CLOSED: STAFF_ROLES,
    HIDDEN: STAFF_ROLES,
}

# Moderation's decisions, by the name the internal API takes.
PUBLISH: Final = "publish"
REJECT: Final = "reject"
TAKE_DOWN: Final = "take-down"
FOLLOW_UP: Final = "follow-up"

# Where each decision may be taken from, and the status it leaves.
DECISION_TRANSITIONS: Final[dict[str, tuple[frozenset[str], str | None]]] = {
    PUBLISH: (frozenset({SUBMITTED}), PUBLISHED),
    REJECT: (frozenset({SUBMITTED}), REJECTED),
    TAKE_DOWN: (frozenset({PUBLISHED, CLOSED}), HIDDEN),
    FOLLOW_UP: (frozenset({PUBLISHED, CLOSED}), None),  # None: the status stays
}

# Who may take each decision.
DECISION_ROLES: Final = {
    PUBLISH: REVIEWERS,
    REJECT: REVIEWERS,
    TAKE_DOWN: REVIEWERS,
    FOLLOW_UP: frozenset({COMMITTEE_SECRETARIAT, ADMIN}),
}

# The committee's follow-up after a threshold, in the order it usually happens; which may be
# recorded when: paraphe_common.follow_up, which moderation reads too.
FOLLOW_UP_STEPS: Final = tuple(follow_up.STEPS)

# Event kinds on petitions.events.<kind>, one per transition.
SUBMITTED_EVENT: Final = "submitted"
PUBLISHED_EVENT: Final = "published"
REJECTED_EVENT: Final = "rejected"
HIDDEN_EVENT: Final = "hidden"
CLOSED_EVENT: Final = "closed"
FOLLOWED_UP_EVENT: Final = "followed-up"

DECISION_EVENTS: Final = {
    PUBLISH: PUBLISHED_EVENT,
    REJECT: REJECTED_EVENT,
    TAKE_DOWN: HIDDEN_EVENT,
    FOLLOW_UP: FOLLOWED_UP_EVENT,
}


def may_decide(decision: str, status: str) -> bool:
    allowed_from, _ = DECISION_TRANSITIONS[decision]
    return status in allowed_from


def status_after(decision: str, status: str) -> str:
    _, after = DECISION_TRANSITIONS[decision]
    return after or status
