"""When each author last signed in: retention counts from it, not from their first sign-in.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The authors already here: their first sign-in is the last one known.
    op.execute("ALTER TABLE catalog.authors ADD COLUMN signed_in_at timestamptz")
    op.execute("UPDATE catalog.authors SET signed_in_at = created_at")
    op.execute("""
        ALTER TABLE catalog.authors
            ALTER COLUMN signed_in_at SET NOT NULL,
            ALTER COLUMN signed_in_at SET DEFAULT now()
    """)


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
