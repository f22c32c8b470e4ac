"""The moderation queue: review, report and follow-up items, claims, reports; decision ids.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per thing a staff member must look at. An item is claimed by one agent at a time
    # (a lease: claim_expires_at), and resolved once; resolved items stay, for the history.
    op.execute("""
        CREATE TABLE moderation.queue_items (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            kind text NOT NULL CHECK (kind IN ('review', 'report', 'follow-up')),
            petition_id uuid NOT NULL,
            -- The event that made the item: redelivered, it makes nothing more.
            source_event_id text UNIQUE,
            title text NOT NULL DEFAULT '',
            body text NOT NULL DEFAULT '',
            suggested_committee text,
            details jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            claimed_by text,
            claimed_by_name text,
            claim_expires_at timestamptz,
            -- The decision sent to the catalog and not yet confirmed: sent again, same id.
            pending_decision jsonb,
            resolved_at timestamptz,
            resolved_by text,
            resolution text,
            CHECK ((claimed_by IS NULL) = (claim_expires_at IS NULL)),
            CHECK ((resolved_at IS NULL) = (resolution IS NULL))
        )
    """)
    op.execute(
        "CREATE INDEX queue_items_open ON moderation.queue_items (kind, created_at)"
        " WHERE resolved_at IS NULL"
    )
    op.execute("CREATE INDEX queue_items_petition ON moderation.queue_items (petition_id)")
    # Reports of one petition gather on one open item rather than flooding the queue.
    op.execute(
        "CREATE UNIQUE INDEX queue_items_one_open_report ON moderation.queue_items (petition_id)"
        " WHERE kind = 'report' AND resolved_at IS NULL"
    )
    # What citizens reported: the reason and their optional words; nothing about who sent it.
    op.execute("""
        CREATE TABLE moderation.reports (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            item_id uuid NOT NULL REFERENCES moderation.queue_items (id),
            petition_id uuid NOT NULL,
            reason_code text NOT NULL,
            message text NOT NULL DEFAULT '',
            received_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX reports_item ON moderation.reports (item_id)")
    # A decision is recorded once: retried with its id, it finds its row.
    op.execute("ALTER TABLE moderation.audit_log ADD COLUMN decision_id uuid UNIQUE")
    op.execute("ALTER TABLE moderation.audit_log ADD COLUMN item_id uuid")


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
