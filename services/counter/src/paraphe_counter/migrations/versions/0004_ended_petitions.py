"""When each petition ended, and whether intake's marks of it were forgotten.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ended_at: the earliest moment the petition's state was seen to say signing had ended (its
    # deadline; for a take-down, which the state does not date, when first seen hidden).
    # marks_forgotten_at: NULL until its marks were removed from Redis (paraphe_counter.forgetting).
    op.execute("""
        CREATE TABLE counter.ended_petitions (
            petition_id uuid PRIMARY KEY,
            ended_at timestamptz NOT NULL,
            marks_forgotten_at timestamptz
        )
    """)
    # What a pass looks for: the petitions whose marks are still kept, by when they ended.
    op.execute("""
        CREATE INDEX ended_petitions_marks_kept ON counter.ended_petitions (ended_at)
            WHERE marks_forgotten_at IS NULL
    """)


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
