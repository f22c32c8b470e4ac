"""Keep signature times to the hour only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

A time to the millisecond beside each signature would let anyone holding the table pair up one
person's signatures of several petitions made a few seconds apart. The hour is enough for
every count and chart the parliament publishes, and blurs that trail among everyone who
signed within the same hour.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE counter.signatures SET signed_at = date_trunc('hour', signed_at, 'UTC'),"
        " counted_at = date_trunc('hour', counted_at, 'UTC')"
    )
    op.execute(
        "ALTER TABLE counter.signatures ALTER COLUMN counted_at"
        " SET DEFAULT date_trunc('hour', now(), 'UTC')"
    )
    op.execute(
        "ALTER TABLE counter.signatures ADD CONSTRAINT signature_times_to_the_hour CHECK ("
        " signed_at = date_trunc('hour', signed_at, 'UTC') AND counted_at = date_trunc('hour', counted_at, 'UTC'))"
    )


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
