"""Intake against the yardstick: signatures per second from one intake process, divided by
requests per second from a bare aiohttp endpoint, both driven by wrk in the same run.

Every request signs as a different person (a distinct, valid signer token) from one of a few
thousand client addresses named in X-Forwarded-For, so nothing is served from a cache and the
per-client limit is paid as in production. The same run measures the floor: intake's
obligations alone on aiohttp's low-level server (bench/intake_floor.py). Redis and NATS are
real, started here on free ports, NATS in TLS as production runs it. Run with
``make bench``; prints a table and writes ``bench/results/intake.json``. A benchmark, not a
test.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.streams import petitions_bucket
from paraphe_common.tokens import SIGNER
from paraphe_devstack.binaries import ensure_binaries, ensure_programs
from paraphe_devstack.keys import new_redis_password, new_signer_key, new_signing_key
from paraphe_devstack.servers import NatsServer, RedisServer, free_port, port_answers, remove_tree
from paraphe_devstack.tls import local_certificates

HERE = Path(__file__).parent
PETITION = "0b6f0d7e-5f4c-4c59-9a43-2b1f6f3c2a11"
FLOOR_PETITION = "5d1c6a3e-7b2f-4f0e-9c8d-3e4f5a6b7c8d"  # the floor's: nobody has signed it
DURATION = os.environ.get("PARAPHE_BENCH_DURATION", "10s")
CONNECTIONS = os.environ.get("PARAPHE_BENCH_CONNECTIONS", "64")
TOKENS = int(os.environ.get("PARAPHE_BENCH_TOKENS_COUNT", "250000"))  # more than a run signs
# On two cores or more, the server measured (bare, then intake) gets core 0 to itself and wrk,
# Redis and NATS share core 1: each server is measured on one whole core, the same for both,
# and the other programs' load does not land on it. PARAPHE_BENCH_PIN=0 turns that off.
PIN = (os.cpu_count() or 1) >= 2 and os.environ.get("PARAPHE_BENCH_PIN", "1") != "0"
SERVER_CORE = ["taskset", "-c", "0"] if PIN else []
CLIENT_CORE = ["taskset", "-c", "1"] if PIN else []


def pin_to_client_core(pid: int) -> None:
    if PIN:
        subprocess.run(
            ["taskset", "-a", "-p", "-c", "1", str(pid)], check=True, capture_output=True
        )


def wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not port_answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server on {port} did not start")
        time.sleep(0.05)


def cpu_seconds(pid: int, which: slice = slice(11, 15)) -> float:
    """CPU time a process has used so far: user and system by default (with reaped children);
    ``slice(11, 12)`` for user time alone, ``slice(12, 13)`` for system time alone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(value) for value in fields[which]) / os.sysconf("SC_CLK_TCK")


def wrk_get(url: str, duration: str = DURATION) -> float:
    """Requests per second of a plain GET: what the framework costs around a handler."""
    output = subprocess.run(
        [*CLIENT_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}", url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]


def wrk(
    port: int, tokens: Path, duration: str = DURATION, petition: str = PETITION
) -> dict[str, float]:
    output = subprocess.run(
        [*CLIENT_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}", "-s",
         str(HERE / "sign.lua"),
         f"http://127.0.0.1:{port}"],
        env=os.environ | {"PARAPHE_BENCH_TOKENS": str(tokens), "PARAPHE_BENCH_PETITION": petition},
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    found = dict(re.findall(r"^(latency_p\d+_us) (\d+)$", output, re.MULTILINE))
    accepted, repeated, other = map(int, re.search(r"answers (\d+) (\d+) (\d+)", output).groups())  # type: ignore[union-attr]
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "accepted": accepted,
        "already_signed": repeated,
        "other": other,
        **{k: int(v) / 1000 for k, v in found.items()},
    }


async def open_petition(nats_server: NatsServer) -> None:
    connection = await nats_server.admin_connection()
    bucket = await petitions_bucket(connection.jetstream())
    for petition in (PETITION, FLOOR_PETITION):
        await publish_state(bucket, petition, PetitionState("published", time.time() + 86400))
    await connection.close()


def main() -> None:
    binaries = ensure_binaries()
    ensure_programs("wrk")
    work = Path(tempfile.mkdtemp(prefix="paraphe-bench-"))
    # Redis and NATS in TLS, Redis with a password, as production runs them (docs/security.md).
    tls = local_certificates(work / "tls")
    redis_password = new_redis_password()
    redis = RedisServer(
        binaries.redis_server, work / "redis", free_port(), password=redis_password, tls=tls
    )
    nats_server = NatsServer(
        binaries.nats_server, work / "nats" / "js", free_port(), free_port(), tls=tls
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        redis.start()
        nats_server.start()
        asyncio.run(open_petition(nats_server))
        key = new_signing_key("bench")
        signer_key = new_signer_key("bench-signer")
        issuer = signer_key.issuer()
        tokens = work / "tokens.txt"
        tokens.write_text(
            "\n".join(issuer.issue(SIGNER, f"{n:064x}", 3600) for n in range(TOKENS)) + "\n"
        )
        bare_port, intake_port = free_port(), free_port()
        for server in (redis, nats_server):
            pin_to_client_core(server.process.pid)  # type: ignore[union-attr]
        bare = subprocess.Popen(
            [*SERVER_CORE, sys.executable, str(HERE / "bare.py"), str(bare_port)]
        )
        # PARAPHE_BENCH_PROFILE=<path to py-spy> records where intake's time goes as collapsed
        # stacks (sampled, wall time); PARAPHE_BENCH_PROFILE=cprofile as a cProfile file of CPU
        # time during the signing run only (bench/profiled_service.py), which other processes'
        # load on the machine does not distort: read it with `python -m pstats`.
        profiler = os.environ.get("PARAPHE_BENCH_PROFILE")
        (HERE / "results").mkdir(exist_ok=True)
        if profiler == "cprofile":
            output = str(HERE / "results" / "intake.prof")
            command = [sys.executable, str(HERE / "profiled_service.py"), output]
        elif profiler:
            profile = str(HERE / "results" / "intake-profile.txt")
            command = [profiler, "record", "--format", "raw", "-o", profile, "--", sys.executable]
            command.append("-m")
        else:
            command = [sys.executable, "-m"]
        service_env = {k: v for k, v in os.environ.items() if not k.startswith("PARAPHE_")} | {
            "PARAPHE_REDIS_URL": redis.url,
            "PARAPHE_REDIS_PASSWORD": redis_password,
            "PARAPHE_REDIS_TLS_CA": str(tls.ca),
            "PARAPHE_NATS_URL": nats_server.url,
            "PARAPHE_NATS_TLS_CA": str(tls.ca),
            "PARAPHE_TOKEN_VERIFICATION_KEYS": key.public_jwks,
            "PARAPHE_SIGNER_TOKEN_KEYS": signer_key.secret_jwks,
            "PARAPHE_SIGNER_TOKEN_KEY_ID": signer_key.kid,
            "PARAPHE_SIGNER_ATTEMPTS_PER_MINUTE": "1000000",
            "PARAPHE_LOG_LEVEL": "WARNING",
        }
        intake = subprocess.Popen(
            [*SERVER_CORE, *command, "paraphe_signature_intake"],
            env=service_env
            | {"PARAPHE_HOST": "127.0.0.1", "PARAPHE_PORT": str(intake_port)}
            # Settings to compare, e.g. PARAPHE_BENCH_INTAKE_ENV="PARAPHE_TOKEN_CACHE_SIZE=0".
            | dict(
                pair.split("=", 1)
                for pair in os.environ.get("PARAPHE_BENCH_INTAKE_ENV", "").split()
            ),
            stdout=subprocess.DEVNULL,
        )
        processes += [bare, intake]
        wait_for(bare_port, bare)
        wait_for(intake_port, intake)
        wrk(bare_port, tokens, "2s")  # warm-up
        bare_result = wrk(bare_port, tokens)
        healthz = wrk_get(f"http://127.0.0.1:{intake_port}/healthz", "5s")
        watched = {
            "signature-intake": intake.pid,
            "redis-server": redis.process.pid,  # type: ignore[union-attr]
            "nats-server": nats_server.process.pid,  # type: ignore[union-attr]
        }
        before = {name: cpu_seconds(pid) for name, pid in watched.items()}
        system_before = cpu_seconds(intake.pid, slice(12, 13))
        if profiler == "cprofile":
            intake.send_signal(signal.SIGUSR1)
        intake_result = wrk(intake_port, tokens)
        if profiler == "cprofile":
            intake.send_signal(signal.SIGUSR2)
        handled = intake_result["accepted"] + intake_result["already_signed"]
        cpu_per_signature = {
            name: (cpu_seconds(pid) - before[name]) / handled * 1e6 for name, pid in watched.items()
        }
        cpu_per_signature["signature-intake, of which in the kernel"] = (
            (cpu_seconds(intake.pid, slice(12, 13)) - system_before) / handled * 1e6
        )
        # The floor: intake's obligations alone (bench/intake_floor.py), on the same core.
        floor_port = free_port()
        floor = subprocess.Popen(
            [*SERVER_CORE, sys.executable, str(HERE / "intake_floor.py")],
            env=service_env | {"PARAPHE_PORT": str(floor_port)},
        )
        processes.append(floor)
        wait_for(floor_port, floor)
        floor_result = wrk(floor_port, tokens, petition=FLOOR_PETITION)
        ratio = intake_result["requests_per_second"] / bare_result["requests_per_second"]
        floor_ratio = floor_result["requests_per_second"] / bare_result["requests_per_second"]
        machine = (
            f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
        )
        print(
            f"Intake against a bare aiohttp endpoint — {machine}, "
            f"wrk -t1 -c{CONNECTIONS} {DURATION}"
            + (", each server on core 0, wrk, Redis and NATS on core 1" if PIN else "")
        )
        print(f"  {'':<22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'202':>9}{'200':>9}{'other':>7}")
        for name, row in (
            ("bare aiohttp", bare_result),
            ("signature-intake", intake_result),
            ("obligations alone", floor_result),
        ):
            print(
                f"  {name:<22}{row['requests_per_second']:>10,.0f}{row['latency_p50_us']:>9.2f}"
                f"{row['latency_p99_us']:>9.2f}{row['accepted']:>9}{row['already_signed']:>9}"
                f"{row['other']:>7}"
            )
        print(f"  ratio (intake / bare): {ratio:.2f}   target 0.5")
        print(f"  the floor: intake's obligations alone (token, mark, publish and ack, answer; "
              f"no application): {floor_ratio:.2f} of bare")  # fmt: skip
        print(f"  intake's /healthz (the shared middleware alone): {healthz:,.0f} req/s, "
              f"{healthz / bare_result['requests_per_second']:.2f} of bare")  # fmt: skip
        print("  CPU per signature: " + ", ".join(
            f"{name} {micros:.0f} µs" for name, micros in cpu_per_signature.items()
        ))  # fmt: skip
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        (results / "intake.json").write_text(json.dumps(
            {"machine": machine, "pinned": PIN, "bare": bare_result, "intake": intake_result,
             "ratio": ratio, "obligations_alone": floor_result, "floor_ratio": floor_ratio,
             "healthz_requests_per_second": healthz,
             "cpu_microseconds_per_signature": cpu_per_signature},
            indent=2,
        ))  # fmt: skip
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            process.wait(timeout=60)
        nats_server.stop()
        redis.stop()
        remove_tree(work)


if __name__ == "__main__":
    main()
