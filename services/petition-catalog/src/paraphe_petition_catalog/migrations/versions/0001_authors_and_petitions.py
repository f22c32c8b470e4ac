"""Authors and their petitions.

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
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public")
    # An author's identity comes from FranceConnect; only the names are ever published. The
    # id is an HMAC of the FranceConnect subject under the author domain, never the subject.
    op.execute("""
        CREATE TABLE catalog.authors (
            id text PRIMARY KEY,
            given_names text NOT NULL,
            family_name text NOT NULL,
            birthdate date,
            email text,
            created_at timestamptz NOT NULL DEFAULT now(),
            anonymised_at timestamptz
        )
    """)
    op.execute("""
        CREATE TABLE catalog.petitions (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            author_id text NOT NULL REFERENCES catalog.authors (id),
            title text NOT NULL CHECK (char_length(title) BETWEEN 10 AND 200),
            body text NOT NULL CHECK (char_length(body) BETWEEN 20 AND 20000),
            status text NOT NULL DEFAULT 'draft' CHECK (
                status IN ('draft', 'submitted', 'published', 'rejected', 'closed', 'hidden')
            ),
            suggested_committee text,
            committee text,
            status_reason text,
            created_at timestamptz NOT NULL DEFAULT now(),
            submitted_at timestamptz,
            published_at timestamptz,
            closes_at timestamptz,
            closed_at timestamptz,
            CHECK (status <> 'published' OR (published_at IS NOT NULL AND closes_at IS NOT NULL))
        )
    """)
    op.execute(
        "CREATE INDEX petitions_public_newest ON catalog.petitions (published_at DESC)"
        " WHERE status IN ('published', 'closed')"
    )


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
