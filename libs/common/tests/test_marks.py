"""Where the signature marks live: intake writes them from a hex key, the counter from stored
bytes, and both must name the same bucket and field; the buckets stay compact in Redis."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from paraphe_common.marks import (
    HASH_MAX_LISTPACK_ENTRIES,
    MARKED_BYTES,
    SIGNED_VALUE,
    buckets_of,
    mark_of,
    marks_surely_kept,
    parse_bucket,
    signed_mark_of,
    signed_marks,
)
from paraphe_common.petition_states import PetitionState
from paraphe_devstack.servers import RedisServer

PETITION = str(uuid.UUID(int=7))


def keys(count: int) -> list[bytes]:
    return [hashlib.sha256(n.to_bytes(4, "big")).digest() for n in range(count)]


@pytest.mark.parametrize(
    "key", [*keys(50), bytes(32), b"\xff" * 32, b"\x00\x01" + b"\xff" * 30, b"\xab" * 32]
)
def test_intake_and_the_counter_name_the_same_mark(key: bytes) -> None:
    mark = mark_of(PETITION, key.hex())
    assert signed_mark_of(PETITION, key) == (mark.bucket, mark.field)
    assert parse_bucket(mark.bucket) == (PETITION, key[:2])
    assert key[:2] + mark.field == key[:MARKED_BYTES]
    # The pending mark keeps the whole key: a retry republishes under the same message id.
    assert mark.pending.endswith(key.hex())


def test_the_buckets_of_a_petition_are_every_bucket_its_marks_may_be_in() -> None:
    """Forgetting a petition's marks names its buckets rather than scanning the keyspace."""
    buckets = list(buckets_of(PETITION))
    assert len(buckets) == len(set(buckets)) == 65_536
    assert {signed_mark_of(PETITION, key)[0] for key in keys(2_000)} <= set(buckets)
    assert {parse_bucket(bucket)[0] for bucket in buckets} == {PETITION}  # type: ignore[index]


DAY = 86_400.0
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("state", "kept"),
    [
        (PetitionState("published", NOW + DAY), True),
        (PetitionState("published", None), True),
        (PetitionState("submitted", None), True),  # never signed: nothing to forget
        (PetitionState("rejected", None), True),
        (PetitionState("closed", NOW - 29 * DAY), True),
        (PetitionState("published", NOW - 29 * DAY), True),  # past its deadline, not closed yet
        (PetitionState("closed", NOW - 30 * DAY), False),
        (PetitionState("published", NOW - 31 * DAY), False),
        (PetitionState("closed", None), False),  # closed when? Not said
        (PetitionState("hidden", NOW + DAY), False),  # taken down when? Not said
        (PetitionState("hidden", NOW - DAY), False),
    ],
)
def test_a_missing_mark_means_not_signed_only_while_the_marks_are_surely_kept(
    state: PetitionState, kept: bool
) -> None:
    assert marks_surely_kept(state, NOW, 30) is kept


def test_a_petition_ended_at_its_deadline_or_when_seen_taken_down() -> None:
    assert PetitionState("published", NOW + 1).ended_at(NOW) is None
    assert PetitionState("published", None).ended_at(NOW) is None
    assert PetitionState("submitted", None).ended_at(NOW) is None
    assert PetitionState("published", NOW - 1).ended_at(NOW) == NOW - 1
    assert PetitionState("closed", NOW - DAY).ended_at(NOW) == NOW - DAY
    assert PetitionState("hidden", NOW - DAY).ended_at(NOW) == NOW - DAY  # closed, then hidden
    assert PetitionState("hidden", NOW + DAY).ended_at(NOW) == NOW  # taken down while open
    assert PetitionState("hidden", None).ended_at(NOW) == NOW


@pytest.mark.parametrize(
    "name",
    [
        f"sig:{PETITION}:{'ab' * 32}",  # the first layout, a key a mark
        f"pending:{PETITION}:{'ab' * 32}",
        f"marks:{PETITION}:abc",
        f"marks:{PETITION}:0x1f",
        f"marks:{PETITION}:ABCD",
        "marks::abcd",
        "count:whatever",
    ],
)
def test_a_key_that_is_no_bucket_is_told_apart(name: str) -> None:
    assert parse_bucket(name) is None


async def test_a_full_bucket_stays_compact_and_reads_back(redis_server: RedisServer) -> None:
    """Beyond Redis's default of 128 fields, the limit paraphe's Redis is given keeps a bucket
    in the listpack encoding; past it Redis converts the bucket, and nothing is lost."""
    client = redis_server.async_client()
    try:
        # As many in one bucket as the limit: two bytes fixed, the rest drawn.
        crowded = [b"\x12\x34" + hashlib.sha256(bytes([n % 256, n // 256])).digest()[:30]
                   for n in range(HASH_MAX_LISTPACK_ENTRIES)]  # fmt: skip
        bucket = mark_of(PETITION, crowded[0].hex()).bucket
        for key in crowded:
            mark = mark_of(PETITION, key.hex())
            assert mark.bucket == bucket
            await client.hset(mark.bucket, mark.field, SIGNED_VALUE)
        assert await client.object("ENCODING", bucket) == b"listpack"
        assert await signed_marks(client, PETITION) == {k[:MARKED_BYTES] for k in crowded}
        one_more = b"\x12\x34" + b"\x00" * 30
        await client.hset(bucket, mark_of(PETITION, one_more.hex()).field, SIGNED_VALUE)
        assert await client.object("ENCODING", bucket) == b"hashtable"
        marked = await signed_marks(client, PETITION)
        assert marked == {k[:MARKED_BYTES] for k in [*crowded, one_more]}
    finally:
        await client.aclose()
