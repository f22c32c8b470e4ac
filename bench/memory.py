"""Memory per signature at one million signatures, in Redis and in PostgreSQL.

Redis holds one signed mark per signature (a field of one of the petition's buckets,
``paraphe_common.marks``, written as intake's script writes it); PostgreSQL one row
of ``counter.signatures`` (table and primary key). Both are filled here the way the services
write them, on fresh servers, and measured; the sizing of a 10-million-signature petition
follows. Run with ``make bench``; writes ``bench/results/memory.json``. A benchmark, not a test.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from paraphe_common.marks import SIGNED_VALUE, mark_of
from paraphe_common.migrations import upgrade
from paraphe_counter.__main__ import MIGRATIONS
from paraphe_devstack.binaries import ensure_binaries
from paraphe_devstack.servers import PostgresServer, RedisServer, free_port, remove_tree

SIGNATURES = int(os.environ.get("PARAPHE_BENCH_MEMORY_SIGNATURES", "1000000"))
PETITION = str(uuid.UUID("7d1f5c2e-3b4a-4c5d-8e6f-1a2b3c4d5e6f"))
BATCH = 10_000


def key(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


async def fill_redis(url: str) -> dict[str, float | str]:
    client = aioredis.from_url(url)
    try:
        before = (await client.info("memory"))["used_memory"]
        for start in range(0, SIGNATURES, BATCH):
            async with client.pipeline(transaction=False) as pipe:
                for n in range(start, min(start + BATCH, SIGNATURES)):
                    mark = mark_of(PETITION, key(n).hex())
                    pipe.execute_command("HSET", mark.bucket, mark.field, SIGNED_VALUE)
                await pipe.execute()
        after = (await client.info("memory"))["used_memory"]
        # "listpack" while the buckets stay under hash-max-listpack-entries, as intended.
        encoding = await client.object("ENCODING", mark_of(PETITION, key(0).hex()).bucket)
    finally:
        await client.aclose()
    return {
        "bytes_per_signature": (after - before) / SIGNATURES,
        "bucket_encoding": encoding.decode(),
    }


async def fill_postgres(url: str) -> dict[str, float]:
    connection = await asyncpg.connect(url)
    try:
        for start in range(0, SIGNATURES, BATCH):
            rows = range(start, min(start + BATCH, SIGNATURES))
            await connection.execute(
                "INSERT INTO counter.signatures (petition_id, dedupe_key, signed_at)"
                " SELECT $1, k, date_trunc('hour', now(), 'UTC') FROM unnest($2::bytea[]) AS k",
                PETITION,
                [key(n) for n in rows],
            )
        await connection.execute("VACUUM ANALYZE counter.signatures")
        table = await connection.fetchval("SELECT pg_table_size('counter.signatures')")
        indexes = await connection.fetchval("SELECT pg_indexes_size('counter.signatures')")
    finally:
        await connection.close()
    return {
        "table_bytes_per_signature": table / SIGNATURES,
        "index_bytes_per_signature": indexes / SIGNATURES,
        "bytes_per_signature": (table + indexes) / SIGNATURES,
    }


def main() -> None:
    binaries = ensure_binaries()
    work = Path(tempfile.mkdtemp(prefix="paraphe-bench-memory-"))
    work.chmod(0o755)
    redis = RedisServer(binaries.redis_server, work / "redis", free_port())
    postgres = PostgresServer(
        binaries.postgres_bin, work / "pg" / "data", free_port(), durable=False
    )
    try:
        redis.start()
        postgres.start()
        database = postgres.ensure_database("bench")
        upgrade(database, "counter", MIGRATIONS)
        measured: dict[str, dict[str, Any]] = {
            "redis": asyncio.run(fill_redis(redis.url)),
            "postgresql": asyncio.run(fill_postgres(database)),
        }
    finally:
        redis.stop()
        postgres.stop()
        remove_tree(work)
    print(f"Memory per signature, measured at {SIGNATURES:,} signatures")
    for store, figures in measured.items():
        per = figures["bytes_per_signature"]
        print(
            f"  {store:<11} {per:7.1f} bytes each   10 million signatures: "
            f"{per * 10_000_000 / 2**30:5.2f} GiB"
        )
    print(f"  Redis's buckets encoded as {measured['redis']['bucket_encoding']!r}")
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "memory.json").write_text(
        json.dumps({"signatures": SIGNATURES, **measured}, indent=2)
    )


if __name__ == "__main__":
    main()
