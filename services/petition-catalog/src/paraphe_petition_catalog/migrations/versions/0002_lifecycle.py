"""The lifecycle: transitions, decisions, event outbox, thresholds, follow-up, search, counts.

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
    # French full-text search that ignores accents: "ecoles" finds "école". unaccent runs
    # before the French stemmer, inside a configuration of our own, so the generated column
    # below only calls to_tsvector(regconfig, text), which is immutable.
    op.execute(
        "CREATE TEXT SEARCH CONFIGURATION catalog.french_unaccent (COPY = pg_catalog.french)"
    )
    op.execute("""
        ALTER TEXT SEARCH CONFIGURATION catalog.french_unaccent
            ALTER MAPPING FOR hword, hword_part, word WITH public.unaccent, french_stem
    """)
    op.execute("""
        ALTER TABLE catalog.petitions
            ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
            ADD COLUMN status_reason_code text,
            ADD COLUMN decided_at timestamptz,
            ADD COLUMN signature_count bigint NOT NULL DEFAULT 0 CHECK (signature_count >= 0),
            ADD COLUMN search tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('catalog.french_unaccent'::regconfig, title), 'A')
                || setweight(to_tsvector('catalog.french_unaccent'::regconfig, body), 'B')
            ) STORED
    """)
    op.execute("CREATE INDEX petitions_search ON catalog.petitions USING gin (search)")
    op.execute("CREATE INDEX petitions_by_author ON catalog.petitions (author_id, created_at DESC)")
    # The public list's sorts, each over public petitions only.
    op.execute(
        "CREATE INDEX petitions_public_most_signed ON catalog.petitions"
        " (signature_count DESC, published_at DESC) WHERE status IN ('published', 'closed')"
    )
    op.execute(
        "CREATE INDEX petitions_public_closing_soon ON catalog.petitions (closes_at)"
        " WHERE status IN ('published', 'closed')"
    )
    op.execute(
        "CREATE INDEX petitions_public_committee ON catalog.petitions (committee)"
        " WHERE status IN ('published', 'closed')"
    )

    # Every change of status, by whom (a staff subject, the author, or the deadline) and why.
    op.execute("""
        CREATE TABLE catalog.transitions (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            petition_id uuid NOT NULL REFERENCES catalog.petitions (id),
            from_status text NOT NULL,
            to_status text NOT NULL,
            actor text NOT NULL,
            decision_id uuid,
            reason_code text,
            reason text,
            at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX transitions_by_petition ON catalog.transitions (petition_id, id)")

    # Moderation's decisions, by the id moderation chose: the same id twice is one decision.
    op.execute("""
        CREATE TABLE catalog.decisions (
            id uuid PRIMARY KEY,
            petition_id uuid NOT NULL REFERENCES catalog.petitions (id),
            decision text NOT NULL,
            staff_subject text NOT NULL,
            decided_at timestamptz NOT NULL DEFAULT now()
        )
    """)

    # Thresholds reached, as counter announced them; once per petition and threshold.
    op.execute("""
        CREATE TABLE catalog.thresholds_reached (
            petition_id uuid NOT NULL REFERENCES catalog.petitions (id),
            threshold integer NOT NULL CHECK (threshold > 0),
            signatures bigint NOT NULL,
            reached_at timestamptz NOT NULL,
            PRIMARY KEY (petition_id, threshold)
        )
    """)

    # The committee's follow-up after a threshold, each step once, with an optional public note.
    op.execute("""
        CREATE TABLE catalog.follow_ups (
            petition_id uuid NOT NULL REFERENCES catalog.petitions (id),
            step text NOT NULL CHECK (step IN (
                'rapporteur-appointed', 'examined-in-committee', 'classified',
                'debated-in-public-session', 'answer-published'
            )),
            note text,
            at timestamptz NOT NULL DEFAULT now(),
            decision_id uuid NOT NULL,
            PRIMARY KEY (petition_id, step)
        )
    """)

    # The outbox: each event written in the transaction of its transition, published to
    # JetStream after the commit, and marked published once JetStream acknowledged it.
    op.execute("""
        CREATE TABLE catalog.events (
            id uuid PRIMARY KEY,
            sequence bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            petition_id uuid NOT NULL REFERENCES catalog.petitions (id),
            kind text NOT NULL,
            body jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        )
    """)
    op.execute(
        "CREATE INDEX events_unpublished ON catalog.events (sequence) WHERE published_at IS NULL"
    )


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
