"""A real Prometheus server and its HTTP API, for the tests of the operators' view.

Debian's ``prometheus`` package brings both ``prometheus`` and ``promtool``; they are installed
when missing, like the other servers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paraphe_devstack.binaries import ensure_programs
from paraphe_devstack.servers import LOCALHOST, ManagedProcess, ServerFailed


def prometheus_program(name: str = "prometheus") -> Path:
    """``prometheus`` or ``promtool``, installed from Debian when missing."""
    ensure_programs(name)
    found = shutil.which(name)
    if found is None:
        raise ServerFailed(f"{name} not found after installing Debian's prometheus package")
    return Path(found)


def promtool(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``promtool`` and return what it said, whatever its exit status."""
    return subprocess.run(
        [str(prometheus_program("promtool")), *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


class PrometheusError(RuntimeError):
    pass


class PrometheusServer(ManagedProcess):
    """Prometheus with ``config`` (written as JSON, which is YAML), its data under ``work_dir``."""

    def __init__(self, work_dir: Path, port: int, config: dict[str, Any]) -> None:
        super().__init__("prometheus", work_dir / "prometheus.log")
        self.binary = prometheus_program()
        self.work_dir = work_dir
        self.port = port
        self.config = config

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def prepare(self) -> None:
        (self.work_dir / "data").mkdir(parents=True, exist_ok=True)
        (self.work_dir / "prometheus.yml").write_text(json.dumps(self.config, indent=2))

    def argv(self) -> Sequence[str]:
        return [
            str(self.binary),
            "--config.file", str(self.work_dir / "prometheus.yml"),
            "--storage.tsdb.path", str(self.work_dir / "data"),
            "--web.listen-address", f"{LOCALHOST}:{self.port}",
            "--log.level", "warn",
        ]  # fmt: skip

    def ready(self) -> bool:
        try:
            url = f"http://{LOCALHOST}:{self.port}/-/ready"
            with urllib.request.urlopen(url, timeout=0.5) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def api(self, path: str, **parameters: str) -> Any:
        """The ``data`` of an HTTP API answer (``/api/v1/<path>``); PrometheusError otherwise."""
        query = f"?{urllib.parse.urlencode(parameters)}" if parameters else ""
        url = f"http://{LOCALHOST}:{self.port}/api/v1/{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        if body.get("status") != "success":
            raise PrometheusError(f"{path}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant query's vector: each sample's ``metric`` labels and ``value``."""
        data = self.api("query", query=expression)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expression!r} is a {data['resultType']}, not a vector")
        return list(data["result"])

    def value(self, expression: str) -> float | None:
        """The value of a query that yields one sample, None when it yields none."""
        samples = self.query(expression)
        if len(samples) > 1:
            raise PrometheusError(f"{expression!r} yields {len(samples)} samples, not one")
        return float(samples[0]["value"][1]) if samples else None


class RedisExporter(ManagedProcess):
    """Debian's ``prometheus-redis-exporter`` (oliver006/redis_exporter, as production runs
    beside each Redis server) with ``arguments``, the Redis password from its environment as
    there; ready once it has scraped its server."""

    def __init__(
        self, work_dir: Path, port: int, arguments: Sequence[str], password: str | None
    ) -> None:
        super().__init__("redis-exporter", work_dir / "redis-exporter.log")
        ensure_programs("prometheus-redis-exporter")
        found = shutil.which("prometheus-redis-exporter")
        if found is None:
            raise ServerFailed("prometheus-redis-exporter not found after installing it")
        self.binary = Path(found)
        self.work_dir = work_dir
        self.port = port
        self.arguments = list(arguments)
        self.password = password

    def prepare(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> Sequence[str]:
        return [str(self.binary), *self.arguments, f"-web.listen-address={LOCALHOST}:{self.port}"]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in super().env().items() if not k.startswith("REDIS_")}
        if self.password is not None:
            env["REDIS_PASSWORD"] = self.password
        return env

    def ready(self) -> bool:
        try:
            return "redis_up" in self.metrics()
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{LOCALHOST}:{self.port}/metrics", timeout=5) as got:
            return str(got.read().decode())
