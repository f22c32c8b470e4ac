"""Signatures stored once per petition and signer, counts kept in shards.

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
    # One row per signature; the key is HMAC-SHA256(signer_key, petition_id), so rows of
    # different petitions cannot be linked to one person. Nothing else about the signer.
    op.execute("""
        CREATE TABLE counter.signatures (
            petition_id uuid NOT NULL,
            dedupe_key bytea NOT NULL CHECK (octet_length(dedupe_key) = 32),
            signed_at timestamptz NOT NULL,
            counted_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (petition_id, dedupe_key)
        )
    """)
    # A petition's count is the sum of its shards, so concurrent batches add to different
    # rows instead of queueing on one.
    op.execute("""
        CREATE TABLE counter.count_shards (
            petition_id uuid NOT NULL,
            shard smallint NOT NULL CHECK (shard >= 0),
            signatures bigint NOT NULL DEFAULT 0 CHECK (signatures >= 0),
            PRIMARY KEY (petition_id, shard)
        )
    """)
    # A threshold is reached once: the primary key is what makes its event fire only once.
    op.execute("""
        CREATE TABLE counter.thresholds_reached (
            petition_id uuid NOT NULL,
            threshold integer NOT NULL CHECK (threshold > 0),
            reached_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (petition_id, threshold)
        )
    """)


def downgrade() -> None:
    raise RuntimeError("paraphe migrations are forward-only")
