"""Threshold rows become an outbox: the total seen, and when the event was published.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The event carries the total seen when the threshold was reached; a republished event must
    # say the same thing as the first one. Rows older than this column saw at least the threshold.
    op.execute("ALTER TABLE counter.thresholds_reached ADD COLUMN signatures bigint")
    op.execute("UPDATE counter.thresholds_reached SET signatures = threshold")
    op.execute("""
        ALTER TABLE counter.thresholds_reached
            ALTER COLUMN signatures SET NOT NULL,
            ADD CONSTRAINT thresholds_reached_signatures_check CHECK (signatures >= threshold)
    """)
    # NULL until JetStream acknowledged the event: the row is committed first, the event is
    # published after, so a crash in between leaves a row that reconciliation publishes again.
    op.execute("ALTER TABLE counter.thresholds_reached ADD COLUMN published_at timestamptz")


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
