"""Decisions taken on a petition's page (a take-down, a follow-up step) sent to the catalog and
not yet confirmed, as items keep theirs: one whose answer was lost is audited from its event.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE moderation.pending_petition_decisions (
            decision_id uuid PRIMARY KEY,
            petition_id uuid NOT NULL,
            decision jsonb NOT NULL CHECK (jsonb_typeof(decision) = 'object'),
            sent_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute(
        "CREATE INDEX pending_petition_decisions_by_petition"
        " ON moderation.pending_petition_decisions (petition_id)"
    )


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
