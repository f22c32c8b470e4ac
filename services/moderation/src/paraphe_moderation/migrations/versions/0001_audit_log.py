"""The append-only audit log of moderation decisions.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE moderation.audit_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            actor text NOT NULL,
            action text NOT NULL,
            petition_id uuid,
            reason text,
            details jsonb NOT NULL DEFAULT '{}'
        )
    """)
    # Append-only for everyone, the service's own role included: history is not rewritten.
    op.execute("""
        CREATE FUNCTION moderation.refuse_audit_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit log is append-only';
        END
        $$
    """)
    op.execute("""
        CREATE TRIGGER audit_log_is_append_only
        BEFORE UPDATE OR DELETE OR TRUNCATE ON moderation.audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION moderation.refuse_audit_change()
    """)


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
