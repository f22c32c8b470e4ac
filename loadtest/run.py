"""Run a campaign with Locust, headless, and keep its reports: ``make loadtest``.

    PARAPHE_LOADTEST_SHAPE=surge PARAPHE_LOADTEST_PEAK_USERS=800 make loadtest
    LOCUST_HOST=https://staging.example make loadtest

The site is ``LOCUST_HOST``, else the local stack of ``make run`` (``PARAPHE_DEV_PROXY_PORT``,
8080 by default). ``PARAPHE_LOADTEST_PROCESSES`` runs Locust's generator in that many processes
(``--processes``; -1 for one per core). Everything else is in loadtest/README.md. Reports go to
``loadtest/reports/<time>-<shape>/`` (``PARAPHE_LOADTEST_REPORTS`` to choose another parent):
Locust's CSV files and HTML report, its log, and ``summary.json`` (the verdict, the numbers and
the conditions they were measured in). The exit status is Locust's: 0 when every threshold held.
Extra arguments are passed to Locust as they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCUST = Path(sys.executable).with_name("locust")


def host() -> str:
    if os.environ.get("LOCUST_HOST"):
        return os.environ["LOCUST_HOST"]
    return f"http://localhost:{os.environ.get('PARAPHE_DEV_PROXY_PORT') or 8080}"


def report_dir(shape: str) -> Path:
    parent = Path(os.environ.get("PARAPHE_LOADTEST_REPORTS") or HERE / "reports")
    folder = parent / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{shape}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def git_commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def locust_command(folder: Path, extra: list[str]) -> list[str]:
    command = [
        str(LOCUST),
        "--locustfile", str(HERE / "locustfile.py"),
        "--headless",
        "--host", host(),
        "--csv", str(folder / "locust"),
        "--html", str(folder / "report.html"),
        "--logfile", str(folder / "locust.log"),
        "--only-summary",
        # At the end a signer finishes the journey under way: one killed between its POST and
        # the answer would be counted by the site and not by Locust.
        "--stop-timeout", "30",
    ]  # fmt: skip
    processes = os.environ.get("PARAPHE_LOADTEST_PROCESSES", "").strip()
    if processes and processes not in {"0", "1"}:
        # Locust's master listens on 5557 unless told otherwise: two campaigns at once on one
        # machine (two engineers, or CI beside a developer) would meet there.
        port = str(free_port())
        command += ["--processes", processes, "--master-bind-port", port, "--master-port", port]
    return command + extra


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_locust(command: list[str], env: dict[str, str]) -> int:
    """Locust in a process group of its own, ended with us: its workers never outlive the run."""
    locust = subprocess.Popen(command, env=env, start_new_session=True)
    asked = []

    def end(signum: int, _frame: object) -> None:
        # Asked once, Locust's master stops its workers and still writes its reports and
        # verdict; asked twice, everything ends at once.
        with contextlib.suppress(ProcessLookupError):
            if asked:
                os.killpg(locust.pid, signal.SIGKILL)
            else:
                locust.send_signal(signal.SIGTERM)
        asked.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, end)
    try:
        return locust.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(locust.pid, signal.SIGKILL)  # whatever worker is left


def main(argv: list[str]) -> int:
    shape = os.environ.get("PARAPHE_LOADTEST_SHAPE") or "surge"
    folder = report_dir(shape)
    env = {
        **os.environ,
        "PARAPHE_LOADTEST_SHAPE": shape,
        "PARAPHE_LOADTEST_REPORT_DIR": str(folder),
    }
    command = locust_command(folder, argv)
    sys.stderr.write(f"loadtest: {shape} against {host()}; reports in {folder}\n")
    status = run_locust(command, env)
    summary_path = folder / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        summary["conditions"]["git_commit"] = git_commit()
        summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        journeys = summary["journeys"]
        sys.stderr.write(
            f"loadtest: {'PASSED' if summary['passed'] else 'FAILED'}; "
            f"{journeys['new_people_signed']} people signed in and signed, "
            f"best 30 s {journeys['per_second_best_30s']}/s; "
            f"count {summary['count']}; peak users {summary['peak_users']}\n"
        )
        for reason in summary["reasons"]:
            sys.stderr.write(f"  - {reason}\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
