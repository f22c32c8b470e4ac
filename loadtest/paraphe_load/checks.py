"""Before and after a campaign: the count it starts from, then the verdict and its summary.

These run in Locust's master (or its only process), outside any user, with plain HTTP calls:
they are not load, and must not appear in the campaign's statistics.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner
from locust.stats import StatsEntry

from paraphe_load.config import Config
from paraphe_load.freshness import Freshness
from paraphe_load.freshness import summary as freshness_summary
from paraphe_load.shapes import step_windows

log = logging.getLogger("paraphe.loadtest")

# Custom statistics that are not requests: their "response time" is not a latency.
NOT_TIMED = {"SSE"}
JOURNEY = "JOURNEY"


class CampaignError(RuntimeError):
    """The campaign cannot start: no open petition, or the site does not answer."""


def _get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - http(s) host
        return json.loads(answer.read())


def first_open_petition(host: str) -> str:
    """The first published petition the catalogue lists, still open for signatures."""
    if not host.startswith(("http://", "https://")):
        raise CampaignError("give the site's address: --host or LOCUST_HOST")
    try:
        items = _get_json(host.rstrip("/") + "/api/petitions").get("items", [])
    except (OSError, ValueError) as exc:
        raise CampaignError(f"the catalogue at {host} does not answer: {exc}") from None
    now = time.time()
    for item in items:
        if item.get("status") == "published" and _closes_after(item.get("closes_at"), now):
            return str(item["id"])
    raise CampaignError(f"no open petition at {host}: set PARAPHE_LOADTEST_PETITION")


def _closes_after(closes_at: object, now: float) -> bool:
    if not isinstance(closes_at, str):
        return True
    from datetime import datetime

    try:
        return datetime.fromisoformat(closes_at).timestamp() > now
    except ValueError:
        return True


def current_count(host: str, petition: str) -> int:
    return int(_get_json(f"{host.rstrip('/')}/api/petitions/{petition}/count")["signatures"])


def settled_count(host: str, petition: str, *, within: float = 30.0) -> int:
    """The count once it stops moving: two reads two seconds apart that agree."""
    deadline = time.monotonic() + within
    previous = current_count(host, petition)
    while time.monotonic() < deadline:
        gevent.sleep(2.0)
        now = current_count(host, petition)
        if now == previous:
            return now
        previous = now
    return previous


@dataclass
class Before:
    """What the master notes at the start: the count, the time, the machine's load."""

    count: int | None = None
    started_at: float = 0.0
    shape_started_at: float | None = None
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    peak_users: dict[str, int] = field(default_factory=dict)
    _sampler: Any = None

    def record(self, environment: Environment, config: Config, petition: str) -> None:
        self.started_at = time.time()
        self.load_average = os.getloadavg()
        if config.check_count:
            self.count = settled_count(environment.host or "", petition)
            log.info("petition %s counts %d signatures before the campaign", petition, self.count)
        self._sampler = gevent.spawn(self._sample_users, environment)

    def _sample_users(self, environment: Environment) -> None:
        while True:
            runner = environment.runner
            if runner is not None:
                # A master knows its workers' users by their reports only.
                running = (
                    runner.reported_user_classes_count
                    if isinstance(runner, MasterRunner)
                    else runner.user_classes_count
                )
                for name, count in running.items():
                    self.peak_users[name] = max(self.peak_users.get(name, 0), count)
            gevent.sleep(1.0)


BEFORE = Before()


@dataclass
class Verdict:
    passed: bool
    reasons: list[str]
    summary: dict[str, Any]


def best_window_rate(entry: StatsEntry, seconds: int) -> float:
    """The highest average rate of ``entry`` over ``seconds`` consecutive seconds."""
    per_second = entry.num_reqs_per_sec
    if not per_second:
        return 0.0
    first, last = min(per_second), max(per_second)
    rates = [per_second.get(t, 0) for t in range(first, last + 1)]
    if len(rates) <= seconds:
        return sum(rates) / max(len(rates), 1)
    window = sum(rates[:seconds])
    best = window
    for i in range(seconds, len(rates)):
        window += rates[i] - rates[i - seconds]
        best = max(best, window)
    return best / seconds


def rate_between(entry: StatsEntry, start: float, end: float) -> float:
    """The mean rate of ``entry`` over whole seconds from ``start`` to ``end`` (epoch)."""
    first, last = math.ceil(start), math.floor(end)
    if last <= first:
        return 0.0
    return sum(entry.num_reqs_per_sec.get(t, 0) for t in range(first, last)) / (last - first)


def per_step(config: Config, new_signers: StatsEntry) -> list[dict[str, Any]]:
    """Journeys per second of each step of the staircase, its first seconds (ramp) left out."""
    if BEFORE.shape_started_at is None:
        return []
    origin = BEFORE.shape_started_at
    settle = min(5.0, config.step_seconds / 3)
    return [
        {
            "users": users,
            "journeys_per_second": round(
                rate_between(new_signers, origin + s + settle, origin + e), 1
            ),
        }
        for users, s, e in step_windows(config)
    ]


def _entry_summary(entry: StatsEntry) -> dict[str, Any]:
    return {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "per_second_overall": round(entry.total_rps, 1),
        "per_second_best_30s": round(best_window_rate(entry, 30), 1),
        "median_ms": entry.median_response_time,
        "p95_ms": entry.get_response_time_percentile(0.95),
        "p99_ms": entry.get_response_time_percentile(0.99),
        "max_ms": round(entry.max_response_time or 0.0, 1),
    }


def judge(
    environment: Environment,
    config: Config,
    petition: str,
    *,
    new_signers: StatsEntry,
    distributed: bool,
    freshness: Freshness,
) -> Verdict:
    stats = environment.stats
    reasons: list[str] = []
    if stats.total.num_failures:
        errors = "; ".join(
            f"{e.method} {e.name}: {e.error} (x{e.occurrences})" for e in stats.errors.values()
        )
        reasons.append(f"{stats.total.num_failures} failed requests ({errors[:2000]})")
    for entry in stats.entries.values():
        if entry.method in NOT_TIMED or not entry.num_requests:
            continue
        bound = config.max_journey_p95_ms if entry.method == JOURNEY else config.max_p95_ms
        p95 = entry.get_response_time_percentile(0.95)
        if p95 > bound:
            reasons.append(f"p95 of {entry.method} {entry.name} is {p95} ms (bound {bound:.0f})")
    signed = new_signers.num_requests - new_signers.num_failures
    if config.shape == "campaign" and new_signers.num_requests < config.signers:
        reasons.append(f"only {new_signers.num_requests} of {config.signers} people signed")

    count: dict[str, Any] = {"checked": False}
    if config.check_count and BEFORE.count is not None:
        expected = BEFORE.count + signed
        final = _count_when_caught_up(environment.host or "", petition, expected, config)
        count = {"checked": True, "before": BEFORE.count, "expected": expected, "final": final}
        if final != expected:
            reasons.append(
                f"the count is {final}, expected exactly {expected} "
                f"({BEFORE.count} before + {signed} people who signed)"
            )

    shown = (
        {"measured": False, "why": "signers and watchers in several Locust processes"}
        if distributed
        else freshness_summary(freshness, BEFORE.count)
    )
    p99 = shown.get("p99_ms")
    if isinstance(p99, int) and p99 > config.max_freshness_p99_ms:
        reasons.append(
            f"p99 of the count's freshness is {p99} ms (bound {config.max_freshness_p99_ms:.0f})"
        )

    summary = {
        "passed": not reasons,
        "reasons": reasons,
        "run_id": config.run_id,
        "shape": config.shape,
        "petition": petition,
        "host": environment.host,
        "config": asdict(config),
        "conditions": {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BEFORE.started_at)),
            "duration_seconds": round(time.time() - BEFORE.started_at, 1),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "load_average_before": BEFORE.load_average,
            "load_average_after": os.getloadavg(),
            "locust_processes": getattr(environment.parsed_options, "processes", None) or 1,
            "distributed": distributed,
        },
        "peak_users": BEFORE.peak_users,
        "count": count,
        "freshness": shown,
        "journeys": {
            "new_people_signed": signed,
            "per_second_overall": round(new_signers.total_rps, 1),
            "per_second_best_30s": round(best_window_rate(new_signers, 30), 1),
            "per_second_best_10s": round(best_window_rate(new_signers, 10), 1),
            "per_step": per_step(config, new_signers),
        },
        "requests": {
            f"{entry.method} {entry.name}": _entry_summary(entry)
            for entry in sorted(stats.entries.values(), key=lambda e: (e.method, e.name))
        },
        "total": _entry_summary(stats.total),
    }
    for reason in reasons:
        log.error("FAILED: %s", reason)
    if not reasons:
        log.info("PASSED: no failed request, every p95 within its bound, the count exact")
    if config.report_dir:
        path = Path(config.report_dir) / "summary.json"
        path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return Verdict(not reasons, reasons, summary)


def _count_when_caught_up(host: str, petition: str, expected: int, config: Config) -> int | None:
    """The count once it reaches ``expected`` (or its last value when the wait runs out)."""
    deadline = time.monotonic() + config.count_timeout_seconds
    final: int | None = None
    while True:
        try:
            final = current_count(host, petition)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            log.warning("count unavailable: %s", exc)
        if final is not None and final >= expected:
            # One more read after the cache's lifetime: a count that goes past is caught too.
            gevent.sleep(1.5)
            return current_count(host, petition)
        if time.monotonic() > deadline:
            return final
        gevent.sleep(0.5)
