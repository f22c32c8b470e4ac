"""Known vulnerabilities in the locked dependencies (pip-audit against PyPI's advisories).

Every package uv.lock pins from the registry, in every group (what the images ship and what
the tests run), is audited at its locked version. A vulnerability with a fixed version is a
failure: bump the package (``uv lock --upgrade-package <name>``). One without a fix is listed
in the output and left to the reviewer.

The audit needs PyPI's JSON API for each version. Where it does not answer (an offline mirror),
pip-audit says every package is "not found": the tests then skip, saying so, rather than pass
having checked nothing; the canary proves the service does recognise a known advisory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP_AUDIT = Path(sys.executable).parent / "pip-audit"
# Old versions with advisories fixed long ago: the audit must see them.
CANARY = {"jinja2": "2.10", "urllib3": "1.26.4"}


def locked_packages() -> dict[str, str]:
    """``name -> version`` of every registry package in uv.lock (not the workspace's own)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    return {
        package["name"]: package["version"]
        for package in lock["package"]
        if "registry" in package.get("source", {})
    }


def audit(packages: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("".join(f"{n}=={v}\n" for n, v in sorted(packages.items())))
    done = subprocess.run(
        [
            str(PIP_AUDIT),
            "--requirement", str(requirements),
            "--no-deps",  # the lock is complete: every dependency is listed already
            "--disable-pip",
            "--vulnerability-service", "pypi",
            "--format", "json",
            "--progress-spinner", "off",
            "--timeout", "30",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    # 0: nothing found, 1: vulnerabilities found; anything else is pip-audit failing.
    assert done.returncode in {0, 1}, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    audited = [d for d in report["dependencies"] if "skip_reason" not in d]
    if not audited:
        reasons = {d["skip_reason"].split(":")[0] for d in report["dependencies"]}
        pytest.skip(f"PyPI's vulnerability data did not answer for any package ({reasons})")
    return report


def fixable(report: dict[str, Any]) -> list[str]:
    return [
        f"{dependency['name']} {dependency['version']}: {vuln['id']} (fixed in "
        f"{', '.join(vuln['fix_versions'])})"
        for dependency in report["dependencies"]
        for vuln in dependency.get("vulns", [])
        if vuln.get("fix_versions")
    ]


def test_the_lock_pins_every_package_it_ships() -> None:
    packages = locked_packages()
    for needed in ("aiohttp", "asyncpg", "redis", "nats-py", "python-jose", "pip-audit"):
        assert needed in packages


def test_the_audit_recognises_a_known_vulnerability(tmp_path: Path) -> None:
    report = audit(CANARY, tmp_path)
    found = fixable(report)
    assert any(line.startswith("jinja2 2.10") for line in found), report


def test_no_locked_package_has_a_known_vulnerability_with_a_fix(tmp_path: Path) -> None:
    report = audit(locked_packages(), tmp_path)
    unaudited = [d["name"] for d in report["dependencies"] if "skip_reason" in d]
    assert len(unaudited) < len(report["dependencies"]) / 10, (
        f"most packages could not be audited: {unaudited}"
    )
    assert not fixable(report), "\n".join(fixable(report))
