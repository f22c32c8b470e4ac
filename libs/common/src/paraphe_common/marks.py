"""Where signature-intake's marks live in Redis: the contract between intake and the counter.

Intake answers "already signed" from Redis; the counter rebuilds the marks from PostgreSQL
after a restore (``paraphe-counter rebuild-marks``). Both write them through this module.

A signed mark is kept as long as its petition may be signed, and ``PARAPHE_MARKS_KEPT_DAYS``
more once it ended (closed, or taken down): then the counter forgets the petition's marks
(``paraphe_counter.forgetting``), and intake no longer says "not signed" of it
(``marks_surely_kept``). Millions of them are kept at once, so they are stored densely: a field
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

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, NamedTuple, cast

import redis.asyncio as aioredis

if TYPE_CHECKING:
    from paraphe_common.petition_states import PetitionState

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
SECONDS_A_DAY: Final = 86_400


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


def buckets_of(petition_id: str) -> Iterator[str]:
    """The name of every bucket a petition's signed marks may be in, whether it exists or not:
    the layout is fixed, so forgetting a petition's marks needs no scan of the keyspace."""
    for first in range(16**BUCKET_DIGITS):
        yield f"{SIGNED_PREFIX}{petition_id}:{first:0{BUCKET_DIGITS}x}"


def marks_surely_kept(state: PetitionState, now: float, kept_days: int) -> bool:
    """Whether a missing mark still means "not signed": the petition's marks cannot have been
    forgotten yet. True while it may be signed (or never could be), and until
    ``kept_days`` after its deadline once closed; never for a taken-down petition, whose state
    does not say when it was taken down (the counter forgets its marks ``kept_days`` after it
    first saw it hidden, which may be any time after that)."""
    if state.status == "hidden":
        return False
    ended = state.ended_at(now)
    if ended is None:
        return True
    return state.closes_at is not None and now < state.closes_at + kept_days * SECONDS_A_DAY
