"""``paraphe-dev run`` starts the whole stack in the foreground; ``paraphe-dev stop`` stops it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from paraphe_devstack.binaries import MissingBinaries, ensure_binaries
from paraphe_devstack.servers import ServerFailed
from paraphe_devstack.stack import Stack, StackPorts


def _say(message: str) -> None:
    print(f"paraphe-dev: {message}", flush=True)  # noqa: T201


def _state_dir() -> Path:
    return Path(os.environ.get("PARAPHE_DEV_STATE_DIR", ".paraphe")).resolve()


def intake_replicas() -> int:
    """``PARAPHE_DEV_INTAKE_REPLICAS`` intake processes behind the proxy (1 by default)."""
    value = os.environ.get("PARAPHE_DEV_INTAKE_REPLICAS", "") or "1"
    if not value.isdigit() or not 1 <= int(value) <= 16:
        raise ValueError(f"PARAPHE_DEV_INTAKE_REPLICAS must be 1 to 16, not {value!r}")
    return int(value)


def platform_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``PARAPHE_*`` settings of the caller's environment (not ``PARAPHE_DEV_*``, the
    stack's own), given to every service: ``PARAPHE_THRESHOLDS=10,20 make run``."""
    return {
        name: value
        for name, value in environ.items()
        if name.startswith("PARAPHE_") and not name.startswith("PARAPHE_DEV_")
    }


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def run() -> int:
    state_dir = _state_dir()
    pid_file = state_dir / "stack.pid"
    try:
        ports = StackPorts.from_env()
        settings = platform_settings(os.environ)
        stack = Stack(
            state_dir,
            ports,
            ensure_binaries(with_proxy=True),
            intake_replicas=intake_replicas(),
            settings=settings,
            say=_say,
        )
        if settings:  # names only: a value may be a secret
            _say("settings from the environment: " + ", ".join(sorted(settings)))
    except (MissingBinaries, ValueError) as exc:
        _say(str(exc))
        return 1
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        stack.start()
        state_dir.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(str(os.getpid()))
        base = f"http://localhost:{ports.proxy}"
        nats_authority = stack.nats.tls.ca if stack.nats.tls is not None else "none"
        redis_authority = stack.redis.tls.ca if stack.redis.tls is not None else "none"
        _say(
            f"""ready.
    site:             {base}/
    petitions (API):  {base}/api/petitions
    health:           {base}/_/<service>/healthz  (and /readyz, /metrics)
    services:         {", ".join(f"{n} :{p.port}" for n, p in stack.services.items())}
    PostgreSQL:       {stack.database_url}
    Redis:            {stack.redis.url}  (TLS, its authority: {redis_authority};
                      password: redis_password in secrets.json)
    NATS:             {stack.nats.url}  (TLS, its authority: {nats_authority};
                      a user per service; admin's password: nats_passwords in
                      {state_dir / "secrets.json"})
    logs:             {state_dir / "logs"}/
Ctrl-C (or make stop) stops everything."""
        )
        while True:
            exited = stack.exited()
            if exited:
                _say("\n".join(exited))
                return 1
            time.sleep(0.5)
    except _Stop:
        return 0
    except ServerFailed as exc:
        _say(str(exc))
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        pid_file.unlink(missing_ok=True)
        _say("stopped")


def stop() -> int:
    pid_file = _state_dir() / "stack.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        _say("no stack is running")
        pid_file.unlink(missing_ok=True)
        return 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _say("stopped")
            return 0
        time.sleep(0.2)
    _say(f"the stack (pid {pid}) did not stop within a minute")
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="paraphe-dev", description=__doc__)
    parser.add_argument("command", choices=["run", "stop"])
    command = parser.parse_args().command
    sys.exit(run() if command == "run" else stop())
