"""Where signature-intake's marks live in Redis: the contract between intake and the counter.

Intake answers "already signed" from Redis; the counter rebuilds the marks from PostgreSQL
after a restore (``paraphe-counter rebuild-marks``). Both write them through this module.

A signed mark is kept for good (until the marks are rebuilt), so it is stored densely: a field
of a hash. A petition's signatures are spread over 65,536 buckets by the first two bytes of
their dedupe key, ``marks:<petition>:<four hex digits>``, and each field is the key's next 14
bytes (16 bytes of the key in all: a filter, since PostgreSQL's unique key decides what
counts). A bucket holds ~150 fields at 10 million signatures, under the 512 that keep a hash in
Redis's compact listpack encoding (``hash-max-listpack-entries 512``, in every Redis
configuration of paraphe): ~20 bytes a signature, against ~180 for a key of its own.

A pending mark, set while JetStream's acknowledgement is awaited, must expire by itself if the
publish never landed: Redis 7.0 expires keys, not a hash's fields, so it is a key of its own
with a TTL, ``pending:<petition>:<dedupe key>``.
"""

from __future__ import annotations

from typing import Final, NamedTuple, cast

import redis.asyncio as aioredis

SIGNED_PREFIX: Final = "marks:"
PENDING_PREFIX: Final = "pending:"
# Hex digits of the dedupe key naming the bucket, bytes of the key in the bucket's field.
BUCKET_DIGITS: Final = 4
FIELD_BYTES: Final = 14
# Bytes of a dedupe key a signed mark keeps: its bucket's and its field's.
MARKED_BYTES: Final = BUCKET_DIGITS // 2 + FIELD_BYTES
# The field's value: Redis keeps a small integer in one byte.
SIGNED_VALUE: Final = 1
# The compact encoding's limit a Redis server of paraphe is given (see the module's doc).
HASH_MAX_LISTPACK_ENTRIES: Final = 512
_HEX: Final = frozenset("0123456789abcdef")


class Mark(NamedTuple):
    """Where one person's mark on one petition is: its signed bucket and field, its pending
    key."""

    bucket: str
    field: bytes
    pending: str


def mark_of(petition_id: str, dedupe_key: str) -> Mark:
    """The mark of a dedupe key in hex, as intake publishes it."""
    bucket, field = signed_mark_of(petition_id, bytes.fromhex(dedupe_key))
    return Mark(bucket, field, f"{PENDING_PREFIX}{petition_id}:{dedupe_key}")


def parse_bucket(bucket: str) -> tuple[str, bytes] | None:
    """A signed bucket's petition and the first bytes its dedupe keys share; None for a key
    that is no bucket of paraphe's."""
    if not bucket.startswith(SIGNED_PREFIX):
        return None
    petition_id, _, digits = bucket[len(SIGNED_PREFIX) :].rpartition(":")
    if not petition_id or len(digits) != BUCKET_DIGITS or not set(digits) <= _HEX:
        return None
    return petition_id, bytes.fromhex(digits)


def signed_mark_of(petition_id: str, dedupe_key: bytes) -> tuple[str, bytes]:
    """The bucket and field of a stored dedupe key (raw bytes, as PostgreSQL keeps it)."""
    width = BUCKET_DIGITS // 2
    return (
        f"{SIGNED_PREFIX}{petition_id}:{dedupe_key[:width].hex()}",
        dedupe_key[width : width + FIELD_BYTES],
    )


async def signed_marks(client: aioredis.Redis, petition_id: str) -> set[bytes]:
    """The first ``MARKED_BYTES`` of the dedupe key of every signature of a petition marked
    signed: what Redis says of a petition, to compare with what PostgreSQL holds."""
    found: set[bytes] = set()
    async for name in client.scan_iter(f"{SIGNED_PREFIX}{petition_id}:*", count=1000):
        parsed = parse_bucket(name.decode() if isinstance(name, bytes) else str(name))
        if parsed is not None:
            # Binary fields: a client that decodes answers cannot read them.
            fields = cast(list[bytes], await client.hkeys(name))
            found.update(parsed[1] + field for field in fields)
    return found
