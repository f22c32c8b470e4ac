"""Find the server binaries, and install Debian's packages for the missing ones."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The Debian package that brings each program.
PACKAGES = {
    "postgres": "postgresql",
    "redis-server": "redis-server",
    "nats-server": "nats-server",
    "nginx": "nginx-light",
    "wrk": "wrk",
    "chromium": "chromium",  # browser tests (Playwright drives it; no browser download)
    "promtool": "prometheus",  # alert rule tests, metrics format checks
    "prometheus": "prometheus",
    "prometheus-redis-exporter": "prometheus-redis-exporter",  # Redis's metrics, as in prod
}

_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class MissingBinaries(RuntimeError):
    pass


@dataclass(frozen=True)
class Binaries:
    postgres_bin: Path  # the directory holding postgres, initdb, pg_isready, psql, pg_dump
    redis_server: Path
    nats_server: Path
    nginx: Path | None


def _which(program: str) -> Path | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    found = shutil.which(program, path=path)
    return Path(found) if found else None


def _postgres_bin() -> Path | None:
    configured = os.environ.get("PARAPHE_DEV_POSTGRES_BIN")
    if configured:
        return Path(configured)
    # Debian keeps each major version's programs apart; take the newest.
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = _which("postgres")
    return found.resolve().parent if found else None


def _locate(with_proxy: bool) -> tuple[dict[str, Path | None], list[str]]:
    found: dict[str, Path | None] = {
        "postgres": _postgres_bin(),
        "redis-server": _which("redis-server"),
        "nats-server": _which("nats-server"),
        "nginx": _which("nginx") if with_proxy else None,
    }
    wanted = ["postgres", "redis-server", "nats-server"] + (["nginx"] if with_proxy else [])
    return found, [program for program in wanted if found[program] is None]


def _install(programs: list[str]) -> None:
    packages = sorted({PACKAGES[p] for p in programs})
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo"):
        prefix = ["sudo", "-n"]
    else:
        raise MissingBinaries(
            f"{', '.join(programs)} not found; install them with: "
            f"sudo apt-get install {' '.join(packages)}"
        )
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {' '.join(packages)} (Debian packages)", flush=True)  # noqa: T201
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=env,
    )


def ensure_binaries(*, with_proxy: bool = False) -> Binaries:
    """The binaries the stack needs, installing what is missing (once)."""
    found, missing = _locate(with_proxy)
    if missing:
        _install(missing)
        found, missing = _locate(with_proxy)
        if missing:
            raise MissingBinaries(f"still missing after installation: {', '.join(missing)}")
    postgres_bin, redis_server, nats_server = (
        found["postgres"],
        found["redis-server"],
        found["nats-server"],
    )
    if postgres_bin is None or redis_server is None or nats_server is None:
        raise MissingBinaries("PostgreSQL, Redis and NATS are all required")
    return Binaries(postgres_bin, redis_server, nats_server, found["nginx"])


def ensure_programs(*programs: str) -> None:
    """Other programs the benchmarks need (wrk...), installed from Debian when missing."""
    missing = [program for program in programs if _which(program) is None]
    if missing:
        _install(missing)
