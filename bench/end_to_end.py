"""End to end on one machine: signatures accepted, persisted and counted, at a set rate.

The whole local stack runs (PostgreSQL, Redis, NATS JetStream, every service, nginx), and wrk
signs one petition through the proxy at a scheduled rate (bench/sign.lua: an offered rate, not
a closed loop that slows down with the answers), every request a distinct person with a valid
signer token. Two phases: the sustained rate (3,000 signatures/s for two minutes by
default) and the latency rate (2,000/s, whose p99 is the target). After each phase the count
must equal the number of 202 answers: persisted and counted, nothing lost or doubled.

Freshness (202 until visible in the count) is measured from outside, as a citizen sees it: a
probe signs a second petition a few times a second during the load, notes when each 202
arrives, and polls that petition's public count; the i-th probe signature is visible when the
count reaches i. The probe's signatures take the same path as the load's (intake, JetStream,
the counter's batches, Redis, the count cache).

Run with ``make bench`` (or ``python bench/end_to_end.py``); prints a table and writes
``bench/results/end_to_end.json``. Knobs: PARAPHE_BENCH_E2E_RATE (3000),
PARAPHE_BENCH_E2E_SECONDS (120), PARAPHE_BENCH_E2E_LATENCY_RATE (2000),
PARAPHE_BENCH_E2E_LATENCY_SECONDS (60), PARAPHE_BENCH_E2E_INTAKES (intake processes behind the
proxy, as production's replicas: 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from paraphe_common.tokens import SIGNER
from paraphe_devstack.binaries import ensure_binaries, ensure_programs
from paraphe_devstack.keys import DevSecrets
from paraphe_devstack.stack import Stack, temporary_stack

HERE = Path(__file__).parent
RATE = int(os.environ.get("PARAPHE_BENCH_E2E_RATE", "3000"))
SECONDS = int(os.environ.get("PARAPHE_BENCH_E2E_SECONDS", "120"))
LATENCY_RATE = int(os.environ.get("PARAPHE_BENCH_E2E_LATENCY_RATE", "2000"))
LATENCY_SECONDS = int(os.environ.get("PARAPHE_BENCH_E2E_LATENCY_SECONDS", "60"))
INTAKES = int(os.environ.get("PARAPHE_BENCH_E2E_INTAKES", "1"))
# wrk holds the offered rate with a schedule (bench/sign.lua), over enough connections for
# answers up to this long to leave the rate whole.
IN_FLIGHT_SECONDS = 0.05
PROBE_INTERVAL = 0.2  # seconds between probe signatures
POLL_INTERVAL = 0.02  # seconds between reads of the probe petition's count


# Where the CPU time went, by program, from /proc: every process on the machine grouped by
# what it runs (a service by its module, PostgreSQL's backends together, nginx's workers
# together), and the machine's idle time.
_TICK = os.sysconf("SC_CLK_TCK")


def _program(pid: Path) -> str:
    if pid.name == str(os.getpid()):
        return "wrk and the probe"  # wrk is this process's child: its time is ours once reaped
    arguments = (pid / "cmdline").read_bytes().split(b"\0")
    command = (pid / "comm").read_text().strip()
    if command.startswith("python") and b"-m" in arguments:
        module = arguments[arguments.index(b"-m") + 1].decode()
        return module.removeprefix("paraphe_").replace("_", "-")
    if command.startswith("postgres"):
        return "postgres"
    return command


def cpu_by_program() -> dict[str, float]:
    """CPU seconds (user and system, with reaped children's) each program's live processes
    have used so far."""
    used: dict[str, float] = {}
    for pid in Path("/proc").iterdir():
        if not pid.name.isdigit():
            continue
        try:
            fields = (pid / "stat").read_text().rpartition(")")[2].split()
            name = _program(pid)
            used[name] = used.get(name, 0.0) + sum(map(int, fields[11:15])) / _TICK
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return used


def idle_seconds() -> float:
    """The machine's idle time so far, summed over its cores."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / _TICK  # idle and iowait


def cpu_per_event(
    before: dict[str, float], after: dict[str, float], events: int
) -> dict[str, float]:
    """Microseconds of CPU per event, by program, largest first (programs above 1 µs)."""
    spent = {name: (after[name] - before.get(name, 0.0)) / events * 1e6 for name in after}
    return dict(sorted(((k, v) for k, v in spent.items() if v >= 1), key=lambda kv: -kv[1]))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def open_petitions(session: aiohttp.ClientSession, stack: Stack) -> tuple[str, str]:
    """Two published demo petitions: one for the load, one for the probe."""
    async with session.get(f"{stack.public_url}/api/petitions") as answer:
        listed = await answer.json()
    ids = [item["id"] for item in listed["items"]]
    return ids[0], ids[1]


async def count_of(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as answer:
        return int((await answer.json())["signatures"])


class Probe:
    """Signs the probe petition now and then, and watches its public count."""

    def __init__(self, session: aiohttp.ClientSession, stack: Stack, petition: str) -> None:
        self.session = session
        self.sign_url = f"{stack.public_url}/api/petitions/{petition}/signatures"
        counter_port = stack.ports.services["counter"]
        self.count_url = f"http://127.0.0.1:{counter_port}/api/petitions/{petition}/count"
        self.issuer = DevSecrets.load_or_create(
            stack.state_dir / "secrets.json"
        ).signer_key.issuer()
        self.accepted_at: list[float] = []  # the i-th 202's arrival
        self.visible_at: dict[int, float] = {}  # when the count first reached i
        self.base = 0
        self._running = True

    async def run(self, tag: str) -> None:
        self.base = await count_of(self.session, self.count_url)
        self.accepted_at, self.visible_at = [], {}
        self._running = True
        await asyncio.gather(self._sign(tag), self._watch())

    def stop(self) -> None:
        self._running = False

    async def _sign(self, tag: str) -> None:
        n = 0
        while self._running:
            n += 1
            token = self.issuer.issue(SIGNER, f"probe-{tag}-{n}", 3600)
            async with self.session.post(
                self.sign_url, headers={"Authorization": f"Bearer {token}"}
            ) as answer:
                await answer.read()
                if answer.status == 202:
                    self.accepted_at.append(time.monotonic())
            await asyncio.sleep(PROBE_INTERVAL)

    async def _watch(self) -> None:
        deadline = None
        while True:
            seen = await count_of(self.session, self.count_url) - self.base
            now = time.monotonic()
            for i in range(len(self.visible_at) + 1, seen + 1):
                self.visible_at[i] = now
            if not self._running:
                # After the load: until every accepted probe signature is visible (or 30 s).
                deadline = deadline or now + 30
                if len(self.visible_at) >= len(self.accepted_at) or now > deadline:
                    return
            await asyncio.sleep(POLL_INTERVAL)

    def freshness(self) -> list[float]:
        return [
            self.visible_at[i + 1] - accepted
            for i, accepted in enumerate(self.accepted_at)
            if i + 1 in self.visible_at
        ]


async def wrk(
    stack: Stack, petition: str, tokens: Path, rate: int, seconds: int, connections: int
) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(HERE / "sign.lua"), stack.public_url,
        env=os.environ | {
            "PARAPHE_BENCH_TOKENS": str(tokens),
            "PARAPHE_BENCH_PETITION": petition,
            "PARAPHE_BENCH_RATE": str(rate),
        },
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output = (await process.communicate())[0].decode()
    accepted, repeated, other = map(int, re.search(r"answers (\d+) (\d+) (\d+)", output).groups())  # type: ignore[union-attr]
    found = dict(re.findall(r"^(latency_p\d+_us) (\d+)$", output, re.MULTILINE))
    return {
        "connections": connections,
        "offered_rate": rate,
        "seconds": seconds,
        "accepted": accepted,
        "already_signed": repeated,
        "other": other,
        "accepted_per_second": accepted / seconds,
        **{k.replace("_us", "_ms"): int(v) / 1000 for k, v in found.items()},
    }


async def phase(
    session: aiohttp.ClientSession,
    stack: Stack,
    petitions: tuple[str, str],
    probe: Probe,
    rate: int,
    seconds: int,
    tag: str,
) -> dict[str, Any]:
    load, _ = petitions
    issuer = DevSecrets.load_or_create(stack.state_dir / "secrets.json").signer_key.issuer()

    def signer_tokens(name: str, count: int) -> Path:
        """A file of distinct signers' tokens (wrk starts reading it at a random line)."""
        tokens = stack.state_dir / f"tokens-{name}.txt"
        tokens.write_text(
            "\n".join(issuer.issue(SIGNER, f"{name}-{n:09d}", 3600) for n in range(count)) + "\n"
        )
        return tokens

    tokens = signer_tokens(tag, int(rate * seconds * 1.3))
    count_url = f"http://127.0.0.1:{stack.ports.services['counter']}/api/petitions/{load}/count"
    connections = max(10, round(rate * IN_FLIGHT_SECONDS))
    # The previous phase's last signatures may still be on their way to the count: start from
    # a count that has stopped moving (two reads a second apart, longer than a batch and a
    # refresh).
    before, settled = -1, await count_of(session, count_url)
    while settled != before:
        before = settled
        await asyncio.sleep(1.0)
        settled = await count_of(session, count_url)
    samples: list[tuple[float, int]] = []

    async def sample_count() -> None:
        while True:
            samples.append((time.monotonic(), await count_of(session, count_url) - before))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample_count())
    watching = asyncio.create_task(probe.run(tag))
    cpu_before, idle_before = cpu_by_program(), idle_seconds()
    result = await wrk(stack, load, tokens, rate, seconds, connections)
    result["cpu_microseconds_per_signature"] = cpu_per_event(
        cpu_before, cpu_by_program(), max(1, result["accepted"])
    )
    idle = idle_seconds() - idle_before
    result["idle_share"] = idle / (seconds * (os.cpu_count() or 1))
    probe.stop()
    await watching
    # Persisted and counted: the count reaches the number of 202 answers, and stays there.
    ended = time.monotonic()
    counted = await count_of(session, count_url) - before
    while counted < result["accepted"] and time.monotonic() < ended + 60:
        await asyncio.sleep(0.1)
        counted = await count_of(session, count_url) - before
    result["catch_up_seconds"] = time.monotonic() - ended
    sampler.cancel()
    await asyncio.sleep(1.5)  # past the count cache: a double count would show now
    result["counted"] = await count_of(session, count_url) - before
    # Exact: the public count is the number of stored signatures, and holds every 202. wrk
    # stops reading at the deadline, so up to one request per connection was accepted and
    # counted without wrk seeing its answer.
    database = await asyncpg.connect(stack.database_url)
    try:
        stored = await database.fetchval(
            "SELECT count(*) FROM counter.signatures WHERE petition_id = $1", uuid.UUID(load)
        )
    finally:
        await database.close()
    result["stored"] = stored - before
    result["exact"] = (
        result["stored"] == result["counted"]
        and result["accepted"] <= result["counted"] <= result["accepted"] + result["connections"]
    )
    # The counting rate, per 10-second window of the load.
    windows = [
        (later[1] - earlier[1]) / (later[0] - earlier[0])
        for earlier, later in zip(samples, samples[10:], strict=False)
    ]
    result["slowest_10s_counted_per_second"] = min(windows) if windows else None
    freshness = probe.freshness()
    result["freshness_probes"] = len(freshness)
    result["freshness_not_visible"] = len(probe.accepted_at) - len(freshness)
    if freshness:
        result["freshness_p50_s"] = statistics.median(freshness)
        result["freshness_p99_s"] = percentile(freshness, 0.99)
        result["freshness_max_s"] = max(freshness)
    return result


async def run(stack: Stack) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        petitions = await open_petitions(session, stack)
        probe = Probe(session, stack, petitions[1])
        sustained = await phase(session, stack, petitions, probe, RATE, SECONDS, "sustained")
        latency = await phase(
            session, stack, petitions, probe, LATENCY_RATE, LATENCY_SECONDS, "latency"
        )
    return {"sustained": sustained, "latency": latency}


def main() -> None:
    ensure_programs("wrk")
    binaries = ensure_binaries(with_proxy=True)
    with temporary_stack(binaries, access_log=False, intake_replicas=INTAKES) as stack:
        results = asyncio.run(run(stack))
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    intakes = f"{INTAKES} intake process{'es' if INTAKES > 1 else ''}"
    print(f"End to end through the proxy — {machine}, the whole stack on this machine, {intakes}")
    print(
        f"  {'phase':<11}{'offered/s':>10}{'202/s':>8}{'counted':>10}{'exact':>7}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'fresh p50':>10}{'fresh p99':>10}{'slowest 10s/s':>14}"
    )
    for name, row in results.items():
        slowest = row["slowest_10s_counted_per_second"]
        print(
            f"  {name:<11}{row['offered_rate']:>10,}{row['accepted_per_second']:>8,.0f}"
            f"{row['counted']:>10,}{'yes' if row['exact'] else 'NO':>7}"
            f"{row.get('latency_p50_ms', 0):>8.1f}{row.get('latency_p99_ms', 0):>8.1f}"
            f"{row.get('freshness_p50_s', float('nan')):>9.2f}s"
            f"{row.get('freshness_p99_s', float('nan')):>9.2f}s"
            f"{slowest if slowest is not None else float('nan'):>14,.0f}"
        )
    for name, row in results.items():
        spent = row["cpu_microseconds_per_signature"]
        print(
            f"  {name}: CPU per signature in µs (the machine idle {row['idle_share']:.0%}): "
            + ", ".join(f"{program} {micros:.0f}" for program, micros in spent.items())
        )
    print(
        f"  targets: ≥ 3,000/s sustained 2 min; p99 < 50 ms at 2,000/s; freshness p99 < 1 s; "
        f"other answers: {sum(row['other'] for row in results.values())}"
    )
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "end_to_end.json").write_text(
        json.dumps({"machine": machine, "intake_processes": INTAKES, **results}, indent=2)
    )


if __name__ == "__main__":
    main()
