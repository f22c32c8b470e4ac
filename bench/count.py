"""Count reads against the yardstick: requests per second of the counter's public count,
divided by those of a bare aiohttp endpoint returning a constant, both driven by wrk in the
same run; and the same count read through the proxy, as the browsers of 100,000 people
polling one petition would reach it.

The whole local stack runs (the counter needs PostgreSQL, Redis and NATS); the petition is a
published demo petition. Run with ``make bench``; prints a table and writes
``bench/results/count.json``. A benchmark, not a test.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from paraphe_devstack.binaries import ensure_binaries, ensure_programs
from paraphe_devstack.servers import free_port, port_answers
from paraphe_devstack.stack import temporary_stack

HERE = Path(__file__).parent
DURATION = os.environ.get("PARAPHE_BENCH_DURATION", "10s")
CONNECTIONS = os.environ.get("PARAPHE_BENCH_CONNECTIONS", "64")
# As in bench/intake.py: the server measured (bare, then the counter) on core 0, everything
# else (wrk, the rest of the stack) on core 1. PARAPHE_BENCH_PIN=0 turns that off.
PIN = (os.cpu_count() or 1) >= 2 and os.environ.get("PARAPHE_BENCH_PIN", "1") != "0"
CLIENT_CORE = ["taskset", "-c", "1"] if PIN else []


def family(pid: int) -> list[int]:
    """A process and all its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += family(int(child))
    return found


def pin(pid: int, core: int) -> None:
    """A process, its threads and its descendants (PostgreSQL's backends, nginx's workers)."""
    for member in family(pid):
        subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(member)], capture_output=True)


def wrk_get(url: str, duration: str = DURATION) -> dict[str, float]:
    output = subprocess.run(
        [*CLIENT_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}", "--latency", url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def first_petition(public_url: str) -> str:
    with urllib.request.urlopen(f"{public_url}/api/petitions") as answer:  # noqa: S310 - local
        return str(json.load(answer)["items"][0]["id"])


# Written by aiohttp itself on every answer (Connection: close answers urllib's own).
_OWN_HEADERS = frozenset({"connection", "content-length", "date", "server"})


def counter_answer(url: str, petition: str) -> dict[str, object]:
    """One count answer as the counter sends it: its headers (but those aiohttp writes on any
    answer) and its body, for the floor (bench/bare.py)."""
    with urllib.request.urlopen(url) as answer:  # noqa: S310 - local
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _OWN_HEADERS}
        return {"petition": petition, "headers": headers, "body": answer.read().decode()}


def main() -> None:
    ensure_programs("wrk")
    with temporary_stack(ensure_binaries(with_proxy=True), access_log=False) as stack:
        petition = first_petition(stack.public_url)
        path = f"/api/petitions/{petition}/count"
        counter = f"http://127.0.0.1:{stack.ports.services['counter']}{path}"
        answer = Path(tempfile.mkdtemp(prefix="paraphe-bench-")) / "answer.json"
        answer.write_text(json.dumps(counter_answer(counter, petition)))
        bare_port, floor_port = free_port(), free_port()
        bare = subprocess.Popen([sys.executable, str(HERE / "bare.py"), str(bare_port)])
        floor = subprocess.Popen(
            [sys.executable, str(HERE / "bare.py"), str(floor_port), str(answer)]
        )
        if PIN:
            counter_pid = stack.services["counter"].process.pid  # type: ignore[union-attr]
            others = [service.process for service in stack.services.values()]
            others += [stack.postgres.process, stack.redis.process, stack.nats.process]
            others += [stack.proxy.process] if stack.proxy else []
            for process in others:
                if process is not None and process.pid != counter_pid:
                    pin(process.pid, 1)
            pin(counter_pid, 0)
            pin(bare.pid, 0)
            pin(floor.pid, 0)
        try:
            deadline = time.monotonic() + 30
            while not (port_answers(bare_port) and port_answers(floor_port)):
                if time.monotonic() > deadline:
                    raise RuntimeError("the bare endpoints did not start")
                time.sleep(0.05)
            wrk_get(counter, "2s")  # warm-up
            rows = {
                "bare aiohttp": wrk_get(f"http://127.0.0.1:{bare_port}/"),
                "aiohttp alone, a count's answer": wrk_get(f"http://127.0.0.1:{floor_port}{path}"),
                "counter, direct": wrk_get(counter),
                "counter, through the proxy": wrk_get(f"{stack.public_url}{path}"),
            }
        finally:
            for server in (bare, floor):
                server.send_signal(signal.SIGINT)
                server.wait(timeout=30)
            answer.unlink()
            answer.parent.rmdir()
    bare_rate = rows["bare aiohttp"]["requests_per_second"]
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    print(
        f"Count reads — {machine}, wrk -t1 -c{CONNECTIONS} {DURATION}, one counter process"
        + (", each server on core 0, wrk and the rest of the stack on core 1" if PIN else "")
    )
    print(f"  {'':<34}{'req/s':>10}{'of bare':>9}{'non-2xx':>9}")
    for name, row in rows.items():
        print(
            f"  {name:<34}{row['requests_per_second']:>10,.0f}"
            f"{row['requests_per_second'] / bare_rate:>9.2f}{row['non_2xx']:>9}"
        )
    print(
        "  target: counter, direct ≥ 0.8 of bare (aiohttp alone, a count's answer: the same"
        " headers and body with no middleware, the floor of any service)"
    )
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "count.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "pinned": PIN,
                **rows,
                "ratio": rows["counter, direct"]["requests_per_second"] / bare_rate,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
