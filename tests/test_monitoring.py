"""The operators' view, checked by Prometheus's own tools and a real Prometheus server.

- the rules pass ``promtool check rules`` and their unit tests (``promtool test rules``);
- every service's /metrics passes ``promtool check metrics``, with labels that cannot carry a
  petition or a person;
- the Grafana dashboard is one Grafana 10 imports, and every expression in it and in the
  rules names a metric a service exposes or a rule records;
- Prometheus, configured as deploy/monitoring/prometheus.yml says, scrapes the whole stack
  while signatures are driven, and its API shows each one signed and counted.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from paraphe_common.tokens import SIGNER
from paraphe_devstack.keys import DevSecrets
from paraphe_devstack.prometheus import PrometheusServer, RedisExporter, promtool
from paraphe_devstack.servers import LOCALHOST, free_port
from paraphe_devstack.stack import SERVICES, Stack, StackPorts

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yml"))
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "paraphe.json"
OPERATIONS = ROOT / "docs" / "operations.md"

SIGNING_ROUTE = "/api/petitions/{petition_id}/signatures"
# Series Prometheus makes itself rather than scrapes.
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"}
# Every label a service may put on a metric: each takes a handful of values. A petition id, a
# signer key, an address or a path would make one series per petition or per person.
BOUNDED_LABELS = {
    "route", "method", "status", "dependency", "outcome", "reason", "flow", "part", "store",
    "kind", "decision", "le",
    "limit",  # the per-client limits: sign-in, signing, deposit, report
    "rank",  # signing velocity: the k-th busiest network range or petition, never which
    "step",  # follow-up steps after thresholds
    # prometheus-client's process, platform and garbage-collector collectors
    "generation", "implementation", "major", "minor", "patchlevel", "version",
}  # fmt: skip
# Panel types Grafana 10 ships (no plugin to install).
GRAFANA_10_PANELS = {
    "row", "stat", "timeseries", "heatmap", "state-timeline", "table", "gauge", "bargauge", "text",
}  # fmt: skip
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_LONG_HEX = re.compile(r"[0-9a-f]{32,}", re.I)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, Any]]:
    groups = [group for path in RULE_FILES for group in load_yaml(path)["groups"]]
    return [rule for group in groups for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def dashboard_expressions() -> list[str]:
    """Every query of the dashboard, as Prometheus will receive it from Grafana."""
    return [
        target["expr"]
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$job", ".+")
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPINGS = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan", "atan2"}  # fmt: skip


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (its syntax is promtool's to check)."""
    text = _STRINGS.sub('""', expression)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = _GROUPINGS.sub("", text)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def exposed_names(exposition: str) -> set[str]:
    """The series names a /metrics text offers, those of labelled families not yet used too."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("", "_sum", "_count"),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://{LOCALHOST}:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


@pytest.fixture(scope="module")
def service_metrics(stack: Stack) -> dict[str, str]:
    """Each service's /metrics, once it has answered a few requests."""
    for spec in SERVICES:
        with urllib.request.urlopen(
            f"http://{LOCALHOST}:{stack.ports.services[spec.name]}/readyz", timeout=10
        ):
            pass
    return {spec.name: scrape(stack.ports.services[spec.name]) for spec in SERVICES}


@pytest.fixture(scope="module")
def redis_exporter_metrics(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """What redis_exporter (production's, beside each Redis server) exposes, scraped from the
    stack's Redis as production's exporter reaches its own: in TLS, with the password."""
    assert stack.redis.tls is not None
    arguments = [
        f"-redis.addr=rediss://localhost:{stack.redis.port}",
        f"-tls-ca-cert-file={stack.redis.tls.ca}",
    ]
    exporter = RedisExporter(
        tmp_path_factory.mktemp("redis-exporter"), free_port(), arguments, stack.redis.password
    )
    exporter.start()
    try:
        return exporter.metrics()
    finally:
        exporter.stop()


# The rules


def test_rule_files_pass_promtool_check_rules() -> None:
    checked = promtool("check", "rules", *map(str, RULE_FILES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_alert_and_recording_rules_pass_their_unit_tests() -> None:
    assert RULE_TESTS
    tested = promtool("test", "rules", *map(str, RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_seen_firing_by_a_unit_test_and_explained_in_the_runbook() -> None:
    alerts = [rule for rule in rules() if "alert" in rule]
    fired = {
        case["alertname"]
        for path in RULE_TESTS
        for test in load_yaml(path)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    headings = {
        line.removeprefix("### ").strip()
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("### ")
    }
    for alert in alerts:
        name = alert["alert"]
        assert name in fired, f"no unit test sees {name} fire"
        assert alert["labels"]["severity"] in {"page", "ticket"}, name
        assert alert["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
        assert name in headings, f"docs/operations.md has no section for {name}"


def test_the_example_prometheus_configuration_scrapes_every_service_of_make_run() -> None:
    checked = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = load_yaml(PROMETHEUS_CONFIG)
    assert [MONITORING / path for path in config["rule_files"]] == [
        MONITORING / "rules" / "recording.yml",
        MONITORING / "rules" / "alerts.yml",
    ]
    scraped = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert scraped == {
        name: [f"{LOCALHOST}:{port}"] for name, port in StackPorts().services.items()
    }


# The services' metrics


@pytest.mark.stack
@pytest.mark.parametrize("service", [spec.name for spec in SERVICES])
def test_every_service_metrics_pass_promtool_check_metrics(
    service_metrics: dict[str, str], service: str
) -> None:
    checked = promtool("check", "metrics", stdin=service_metrics[service])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == checked.stderr.strip() == ""


@pytest.mark.stack
def test_no_label_can_carry_a_petition_or_a_person(service_metrics: dict[str, str]) -> None:
    for service, exposition in service_metrics.items():
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                unbounded = set(sample.labels) - BOUNDED_LABELS
                assert not unbounded, f"{service}: {sample.name} has labels {unbounded}"
                for value in sample.labels.values():
                    assert not _UUID.search(value), f"{service}: {sample.name} {value}"
                    assert not _LONG_HEX.search(value), f"{service}: {sample.name} {value}"


# The dashboard


def test_the_dashboard_is_one_grafana_10_imports() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 38  # Grafana 10.0
    assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"])
    assert board["title"]
    assert board.get("id") is None  # Grafana gives it one on import
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    panels = list(all_panels(board["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["type"] in GRAFANA_10_PANELS, panel["title"]
        if panel["type"] == "row":
            continue
        # Bound to the variable, never to one Grafana's data source uid.
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            used = set(re.findall(r"\$\{?(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= set(variables), f"{panel['title']}: unknown variables {used}"
    # No two panels on the same cells.
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        taken = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        cells |= taken


def test_the_dashboard_shows_what_an_operator_watches_in_a_surge() -> None:
    read = set().union(*map(metric_names, dashboard_expressions()))
    for watched in (
        "paraphe:signatures_accepted:rate1m",  # the signing rate
        "paraphe:signing_latency_seconds:p99_rate5m",  # its latency
        "job:http_server_requests_errors:ratio_rate5m",  # errors, per service
        "counter_consumer_pending_messages",  # the backlog
        "paraphe:count_freshness_seconds:p99_rate5m",  # the count's freshness
        "moderation_queue_oldest_age_seconds",
        "flow_outcome:auth_gateway_sign_ins:rate5m",
        "dependency_up",
        "redis_memory_used_bytes",  # Redis filling: full, it refuses sign-ins
        "redis_connected_slaves",
    ):
        assert watched in read


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses rules with Prometheus's own parser: each query becomes one.
    rules_file = tmp_path / "dashboard.yml"
    rules_file.write_text(
        json.dumps(
            {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [
                            {"record": f"dashboard:query{n}", "expr": expression}
                            for n, expression in enumerate(dashboard_expressions())
                        ],
                    }
                ]
            }
        )
    )
    checked = promtool("check", "rules", str(rules_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_metric_names_are_read_from_promql() -> None:
    expression = (
        "histogram_quantile(0.99, sum by (job, le) (rate(http_server_request_duration_seconds_"
        'bucket{route!~"/healthz|a(b)"}[5m]))) > 0.25 and on (job) up{job="x"} == 1 or '
        "paraphe:signing_slow:ratio_rate1h offset 5m"
    )
    assert metric_names(expression) == {
        "http_server_request_duration_seconds_bucket",
        "up",
        "paraphe:signing_slow:ratio_rate1h",
    }


@pytest.mark.stack
def test_every_expression_names_a_metric_a_service_exposes_or_a_rule_records(
    service_metrics: dict[str, str], redis_exporter_metrics: str
) -> None:
    assert "redis_up 1" in redis_exporter_metrics.splitlines()
    known = set().union(*map(exposed_names, [*service_metrics.values(), redis_exporter_metrics]))
    known |= recorded_names() | PROMETHEUS_SERIES
    expressions = dashboard_expressions() + [rule["expr"] for rule in rules()]
    for expression in expressions:
        unknown = metric_names(expression) - known
        assert not unknown, f"{expression!r} reads {unknown}, which nothing exposes"


# A real Prometheus


def stack_prometheus_config(stack: Stack) -> dict[str, Any]:
    """deploy/monitoring/prometheus.yml, pointed at the stack's ports, every second."""
    config = load_yaml(PROMETHEUS_CONFIG)
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(MONITORING / path) for path in config["rule_files"]]
    for job in config["scrape_configs"]:
        job["static_configs"] = [
            {"targets": [f"{LOCALHOST}:{stack.ports.services[job['job_name']]}"]}
        ]
    return dict(config)


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path / "prometheus", free_port(), stack_prometheus_config(stack))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def eventually(probe: Any, within: float = 30.0) -> Any:
    """Poll a synchronous probe until it answers something truthy."""
    deadline = time.monotonic() + within
    while True:
        answer = probe()
        if answer or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.25)


# Totals since each service started; "or vector(0)" for a series that has no sample yet (no
# 202 answered yet, say), once its service is scraped.
SIGNATURES_ACCEPTED = 'sum(signature_intake_signatures_total{outcome="accepted"}) or vector(0)'
ALREADY_SIGNED = 'sum(signature_intake_signatures_total{outcome="already-signed"}) or vector(0)'
STORED = "sum(counter_signatures_stored_total) or vector(0)"
FRESHNESS_COUNT = "sum(counter_count_freshness_seconds_count) or vector(0)"
ANSWERED_202 = (
    f'sum(http_server_requests_total{{job="signature-intake",route="{SIGNING_ROUTE}",'
    'method="POST",status="202"}) or vector(0)'
)
TOTALS = (SIGNATURES_ACCEPTED, ALREADY_SIGNED, STORED, FRESHNESS_COUNT, ANSWERED_202)


async def sign_all(stack: Stack, petition: str, tokens: list[str]) -> list[int]:
    """Each token signs once, 16 at a time, straight to signature-intake."""
    intake = f"http://{LOCALHOST}:{stack.ports.services['signature-intake']}"
    url = f"{intake}/api/petitions/{petition}/signatures"
    queue: asyncio.Queue[str] = asyncio.Queue()
    for token in tokens:
        queue.put_nowait(token)
    statuses: list[int] = []
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            while not queue.empty():
                token = queue.get_nowait()
                headers = {"Authorization": f"Bearer {token}"}
                async with session.post(url, headers=headers) as answer:
                    await answer.read()
                    statuses.append(answer.status)

        await asyncio.gather(*(worker() for _ in range(16)))
    return statuses


@pytest.mark.stack
async def test_prometheus_scraping_the_stack_sees_every_signature_and_how_fresh_its_count_is(
    stack: Stack, prometheus: PrometheusServer
) -> None:
    def every_target_up() -> bool:
        targets = prometheus.api("targets")["activeTargets"]
        return len(targets) == len(SERVICES) and all(t["health"] == "up" for t in targets)

    assert await eventually(every_target_up), prometheus.api("targets")

    def all_totals() -> dict[str, float]:
        return {query: prometheus.value(query) or 0.0 for query in TOTALS}

    def after(signed: int, again: int, totals: dict[str, float]) -> dict[str, float]:
        """The totals once ``signed`` new signatures and ``again`` repeats are scraped."""
        return {
            SIGNATURES_ACCEPTED: totals[SIGNATURES_ACCEPTED] + signed,
            ALREADY_SIGNED: totals[ALREADY_SIGNED] + again,
            STORED: totals[STORED] + signed,
            FRESHNESS_COUNT: totals[FRESHNESS_COUNT] + signed,
            ANSWERED_202: totals[ANSWERED_202] + signed,
        }

    async with aiohttp.ClientSession() as session:
        catalog = f"http://{LOCALHOST}:{stack.ports.services['petition-catalog']}"
        async with session.get(f"{catalog}/api/petitions") as answer:
            petition = str((await answer.json())["items"][0]["id"])
    issuer = DevSecrets.load_or_create(stack.state_dir / "secrets.json").signer_key.issuer()
    # A first signature, so that the signing route's series exist, scraped, before the others
    # raise them: a rate needs a sample before the increase.
    initially = all_totals()
    first = issuer.issue(SIGNER, "monitoring-first", 600)
    assert await sign_all(stack, petition, [first]) == [202]
    before = after(1, 0, initially)
    assert await eventually(lambda: all_totals() == before), (all_totals(), before)

    signers = [issuer.issue(SIGNER, f"monitoring-{n:04d}", 600) for n in range(300)]
    statuses = await sign_all(stack, petition, signers)
    statuses += await sign_all(stack, petition, signers[:50])  # a second time: already signed
    assert (statuses.count(202), statuses.count(200)) == (300, 50), set(statuses)

    expected = after(300, 50, before)
    assert await eventually(lambda: all_totals() == expected), (all_totals(), expected)

    # The recording rules the dashboard and the alerts read, evaluated on these scrapes (a
    # rate needs two of them, a recording rule one evaluation more).
    def number(expression: str) -> float | None:
        value = prometheus.value(expression)
        return None if value is None or math.isnan(value) else value

    async def recorded(expression: str) -> float:
        value = await eventually(lambda: number(expression))
        assert value is not None, f"{expression} has no value"
        return float(value)

    assert await recorded("paraphe:signatures_accepted:rate1m") > 0
    assert await recorded('outcome:signature_intake_signatures:rate1m{outcome="accepted"}') > 0
    assert await recorded("paraphe:signatures_counted:rate1m") > 0
    assert 0 < await recorded("paraphe:count_freshness_seconds:p99_rate5m") < 5
    assert await recorded("paraphe:signing_latency_seconds:p99_rate5m") > 0
    assert 0 < await recorded("paraphe:counter_batch_size_signatures:mean_rate5m") <= 300
    assert await eventually(
        lambda: (
            prometheus.value("paraphe:counter_backlog_messages") == 0
            and prometheus.value("paraphe:counter_oldest_uncounted_signature_age_seconds") == 0
        )
    )
    # Recorded by a group of its own, evaluated at its own moment (every 5 s).
    errors = "paraphe:signing_errors:ratio_rate5m"
    assert await eventually(lambda: number(errors) is not None), f"{errors} has no value"
    assert number(errors) == 0

    # Every rule evaluates without error on real series, and the job names they expect are
    # the ones scraped: no instance is missed, none is down.
    def evaluated() -> list[dict[str, Any]]:
        found = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        return found if all(r["health"] == "ok" for r in found) else []

    evaluated_rules = await eventually(evaluated)
    assert len(evaluated_rules) == len(rules()), prometheus.api("rules")
    assert not prometheus.query('ALERTS{alertname=~"NoInstanceUp|InstanceDown|DependencyDown"}')

    # Every dashboard query runs on this Prometheus; the signing and counting ones show data.
    queries = dashboard_expressions()
    for expression in queries:
        prometheus.api("query", query=expression)
    for shown in (
        "paraphe:signing_latency_seconds:p50_rate5m",
        "paraphe:count_freshness_seconds:p50_rate5m",
        "paraphe:counter_batch_size_signatures:mean_rate5m",
        'job:http_server_requests:rate1m{job=~".+"}',
        'job:http_server_request_duration_seconds:p99_rate5m{job=~".+"}',
    ):
        assert shown in queries
        assert prometheus.query(shown), shown
