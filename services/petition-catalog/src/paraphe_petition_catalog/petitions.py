"""Petition states, named as the parliament names them, and the sets the catalogue needs."""

from __future__ import annotations

DRAFT = "draft"
SUBMITTED = "submitted"
PUBLISHED = "published"
REJECTED = "rejected"
CLOSED = "closed"
HIDDEN = "hidden"

# What the public may see: published petitions, open or closed. Drafts, submissions under
# review, rejected and hidden petitions belong to their author and to staff.
PUBLIC_STATES = frozenset({PUBLISHED, CLOSED})
