"""The load campaign kit (loadtest/): a short campaign through the whole stack, with its gates.

The campaign signs a few hundred distinct people through the full FranceConnect redirect dance
while others watch the count by polling and by server-sent events, authors deposit and submit
petitions and moderators browse the queue; it passes only with no failed request and the final
count exactly the number of people who signed. The latency gate is tested by making it fail;
latency itself is measured by make loadtest, never asserted in make test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from paraphe_devstack.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
LOADTEST = ROOT / "loadtest"
# Longer than the campaign may last: no request's p95 can reach it.
NO_LATENCY_BOUND_MS = 3_600_000


def run_campaign(stack: Stack, reports: Path, **settings: str) -> tuple[int, dict[str, Any]]:
    """Run loadtest/run.py against the stack; its exit status and summary.json."""
    before = set(reports.iterdir()) if reports.exists() else set()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PARAPHE_", "LOCUST_"))},
        "LOCUST_HOST": stack.public_url,
        "PARAPHE_LOADTEST_REPORTS": str(reports),
        **{f"PARAPHE_LOADTEST_{name.upper()}": value for name, value in settings.items()},
    }
    runner = subprocess.Popen(
        [sys.executable, str(LOADTEST / "run.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, errors = runner.communicate(timeout=110)
    except subprocess.TimeoutExpired:
        # Once: Locust drains its users and judges the run; twice: everything ends at once.
        runner.terminate()
        try:
            _, errors = runner.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            runner.terminate()
            _, errors = runner.communicate(timeout=10)
    (folder,) = set(reports.iterdir()) - before
    summary_path = folder / "summary.json"
    assert summary_path.exists(), errors[-3000:]
    return runner.returncode, json.loads(summary_path.read_text())


@pytest.fixture
def reports(request: pytest.FixtureRequest) -> Path:
    """Where a test's campaign keeps Locust's CSV and HTML reports: kept after the run, as CI
    artifacts, in the git-ignored loadtest/reports/."""
    name: str = request.node.name
    return LOADTEST / "reports" / "make-test" / name


@pytest.mark.stack
@pytest.mark.timeout(180)
def test_a_short_campaign_signs_everyone_once_and_counts_them_exactly(
    stack: Stack, reports: Path
) -> None:
    status, summary = run_campaign(
        stack,
        reports,
        shape="campaign",
        signers="600",
        campaign_users="40",
        campaign_timeout_seconds="45",
        spawn_rate="40",
        author_weight="3",
        moderator_weight="3",
        # make test judges what the campaign did, not how fast: a latency bound here fails on
        # a busy machine (CI once saw a p95 of 580 ms against 500). The latency gate is shown
        # able to fail by the next test; speed is measured by make loadtest (docs/loadtest.md).
        max_p95_ms=str(NO_LATENCY_BOUND_MS),
        max_journey_p95_ms=str(NO_LATENCY_BOUND_MS),
        processes="2",
    )
    assert status == 0, summary["reasons"]
    assert summary["passed"]
    assert summary["journeys"]["new_people_signed"] == 600
    assert summary["count"]["checked"]
    assert summary["count"]["final"] == summary["count"]["before"] + 600
    requests = summary["requests"]
    assert summary["total"]["failures"] == 0
    for action in (
        "GET auth: login (sign)",
        "GET franceconnect: authorize",
        "GET auth: callback",
        "POST api: sign",
        "POST api: sign (came back)",  # each answered 200, "already signed", or failed
        "GET api: count (poll)",
        "GET api: count (stream)",
        "SSE count event received",
        "GET auth: login (author)",
        "POST api: author deposits a draft",
        "POST api: author submits",
        "GET auth: login (staff)",
        "GET api: moderation queue",
    ):
        assert requests[action]["requests"] > 0, action
    # Every new person went through the whole dance once: one login per journey at least.
    assert requests["GET auth: login (sign)"]["requests"] >= 600
    folder = Path(summary["config"]["report_dir"])
    for artifact in ("report.html", "locust_stats.csv", "locust_stats_history.csv"):
        assert (folder / artifact).stat().st_size > 0, artifact
    assert summary["conditions"]["cpus"]
    assert summary["conditions"]["git_commit"]


@pytest.mark.stack
@pytest.mark.timeout(120)
def test_a_campaign_over_its_latency_bound_fails(stack: Stack, reports: Path) -> None:
    status, summary = run_campaign(
        stack,
        reports,
        shape="campaign",
        signers="30",
        campaign_users="10",
        campaign_timeout_seconds="20",
        max_p95_ms="0.001",  # no request answers this fast
    )
    assert status == 1
    assert not summary["passed"]
    assert any(reason.startswith("p95 of") for reason in summary["reasons"])
    # One Locust process: how soon streaming pages showed each signature was measured.
    assert summary["freshness"]["measured"], summary["freshness"]
    assert 0 <= summary["freshness"]["p50_ms"] <= summary["freshness"]["p99_ms"]
    # The count is still checked, and exact: failing on latency says nothing against it.
    assert summary["count"]["final"] == summary["count"]["expected"]


@pytest.fixture
def load_kit(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The kit's modules, importable as Locust imports them (beside the locustfile)."""
    monkeypatch.syspath_prepend(str(LOADTEST))
    import importlib

    return importlib.import_module("paraphe_load.shapes"), importlib.import_module(
        "paraphe_load.config"
    )


def test_freshness_is_the_delay_until_a_count_includes_each_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(LOADTEST))
    import importlib

    freshness = importlib.import_module("paraphe_load.freshness")
    seen = freshness.Freshness(accepted=[10.0, 10.1, 10.2, 11.0])
    # The page saw 100 (before), then 102 at 10.3, then 103 at 10.9 (a count may run ahead
    # of the answers), then 104 only at 12.5.
    seen.seen = [(10.05, 100), (10.3, 102), (10.6, 101), (10.9, 103), (12.5, 104)]
    delays = seen.delays(before=100)
    assert [round(d, 2) for d in delays] == [0.3, 0.2, 0.7, 1.5]
    # A signature no page saw counted before the end is left out, not taken as on time.
    assert len(freshness.Freshness([1.0, 2.0], [(1.5, 101)]).delays(before=100)) == 1
    assert freshness.summary(seen, before=None)["measured"] is False


def test_a_surge_ramps_to_its_peak_in_a_minute_holds_then_decays(load_kit: Any) -> None:
    shapes, config = load_kit
    surge = config.Config(shape="surge", peak_users=600, hold_seconds=120, decay_seconds=60)
    start = shapes.surge(surge, 0)
    assert (start.users, start.spawn_rate) == (600, 10.0)  # 600 users in 60 s
    assert shapes.surge(surge, 150).users == 600
    decay = shapes.surge(surge, 181)
    assert (decay.users, decay.spawn_rate) == (0, 10.0)
    assert shapes.surge(surge, 241) is None
    assert shapes.planned_seconds(surge) == 240


def test_a_staircase_adds_users_step_by_step_to_its_maximum(load_kit: Any) -> None:
    shapes, config = load_kit
    stairs = config.Config(shape="steps", step_users=20, step_seconds=30, max_users=50)
    assert [shapes.steps(stairs, t).users for t in (0, 29, 30, 60, 89)] == [20, 20, 40, 50, 50]
    assert shapes.steps(stairs, 90) is None
    assert shapes.step_windows(stairs) == [(20, 0, 30), (40, 30, 60), (50, 60, 90)]
    assert shapes.planned_seconds(stairs) == 90


def test_a_campaign_ends_when_its_people_have_signed_or_at_its_timeout(load_kit: Any) -> None:
    shapes, config = load_kit
    campaign = config.Config(shape="campaign", campaign_users=50, campaign_timeout_seconds=30)
    assert shapes.campaign(campaign, 10, finished=False).users == 50
    assert shapes.campaign(campaign, 10, finished=True) is None
    assert shapes.campaign(campaign, 30, finished=False) is None


def test_settings_come_from_the_environment_and_bad_ones_are_named(load_kit: Any) -> None:
    _, config = load_kit
    read = config.Config.from_env(
        {"PARAPHE_LOADTEST_SHAPE": "steady", "PARAPHE_LOADTEST_USERS": "300"}
    )
    assert (read.shape, read.users) == ("steady", 300)
    assert read.run_id  # generated people of two runs never meet
    with pytest.raises(config.ConfigurationError, match="PARAPHE_LOADTEST_USERS"):
        config.Config.from_env({"PARAPHE_LOADTEST_USERS": "many"})
    with pytest.raises(config.ConfigurationError, match="PARAPHE_LOADTEST_SHAPE"):
        config.Config.from_env({"PARAPHE_LOADTEST_SHAPE": "tsunami"})
    with pytest.raises(config.ConfigurationError, match="DOUBLE_CLICK_SHARE"):
        config.Config.from_env({"PARAPHE_LOADTEST_DOUBLE_CLICK_SHARE": "1.5"})
