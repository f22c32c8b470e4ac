"""Every decision sent to the catalog and not yet confirmed, not only the last one.

A moderator may change their mind after a catalog timeout; the first decision may still have
been applied, and its event must find it to write its audit row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE moderation.queue_items"
        " ADD COLUMN pending_decisions jsonb NOT NULL DEFAULT '[]'"
        " CHECK (jsonb_typeof(pending_decisions) = 'array')"
    )
    op.execute(
        "UPDATE moderation.queue_items SET pending_decisions = jsonb_build_array(pending_decision)"
        " WHERE pending_decision IS NOT NULL"
    )
    op.execute("ALTER TABLE moderation.queue_items DROP COLUMN pending_decision")


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
