"""The operators' view, checked by Prometheus's own tools and a real Prometheus server.

- the rules pass ``promtool check rules`` and their unit tests (``promtool test rules``); every
  alert, and every dependency a readiness probe may report down, has its runbook;
- every service's /metrics passes ``promtool check metrics``, with labels that cannot carry a
  petition or a person, read once traffic has filled every labelled metric (404s on paths
  naming random ids included);
- the Grafana dashboard is one Grafana 10 imports, and every expression in it and in the
  rules names a metric a service exposes or a rule records;
- Prometheus, configured as deploy/monitoring/prometheus.yml says, scrapes the whole stack
  while signatures are driven, and its API shows each one signed and counted.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from paraphe_common.tokens import SIGNER
from paraphe_devstack.browser import Browser
from paraphe_devstack.keys import DevSecrets
from paraphe_devstack.petitions import StackTokens, published_by_the_catalogue
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


@dataclass(frozen=True)
class Traffic:
    """What the fixture's requests named: a petition, unknown ids, signers."""

    petition: str
    identifiers: frozenset[str]


# Signers who sign once each, beside the citizen who signs in through the sandbox and one who
# tries again and again, past intake's limit per signer (PARAPHE_SIGNER_ATTEMPTS_PER_MINUTE, 60).
SIGNERS = 5
ATTEMPTS_OF_ONE_SIGNER = 70


# Labelled families a stack nobody used leaves empty, and a sample the traffic must put there.
FILLED_BY_TRAFFIC = [
    ("auth-gateway", "auth_gateway_sign_ins", {"flow": "sign", "outcome": "success"}),
    ("signature-intake", "signature_intake_refusals", {"reason": "rate-limited"}),
    ("petition-catalog", "petition_catalog_events_published", {"kind": "published"}),
    ("moderation", "moderation_events", {"kind": "published"}),
]


async def drive_traffic(stack: Stack) -> Traffic:
    """What the services see in a day, in small: a sign-in, signatures (one signer refused for
    trying too often), a count read, a petition published, and paths naming unknown ids."""
    tokens = StackTokens(stack)
    run = uuid.uuid4().hex  # this run's people, never seen by the stack before
    url = {name: f"http://{LOCALHOST}:{port}" for name, port in stack.ports.services.items()}
    unknown = {name: str(uuid.uuid4()) for name in url}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        petition = await published_by_the_catalogue(
            stack,
            "Une pétition pour les métriques",
            "Elle est publiée, signée et comptée pendant que les métriques sont lues.",
        )

        # A citizen signs in with FranceConnect (the sandbox) and signs from the site, once
        # intake has read the petition's new state.
        browser = Browser(session, stack.public_url)
        hint = f"generated:monitoring-{run}"
        answer, _ = await browser.sign_in(f"flow=sign&petition={petition}&login_hint={hint}")
        assert answer.status == 302, await answer.text()

        async def signed_from_the_site() -> bool:
            signing = f"{stack.public_url}/api/petitions/{petition}/signatures"
            return (await browser.post(signing)).status == 202

        assert await eventually(signed_from_the_site, within=15.0), (
            "the stack did not get there in time"
        )

        async def sign(token: str, target: str = petition) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            signing = f"{url['signature-intake']}/api/petitions/{target}/signatures"
            async with session.post(signing, headers=headers) as signed:
                return signed.status

        signers = [tokens.signer(f"monitoring-{run}-{n}") for n in range(SIGNERS)]
        assert [await sign(token) for token in signers] == [202] * SIGNERS
        assert await sign(signers[0]) == 200  # already signed
        eager = tokens.signer(f"monitoring-{run}-eager")
        attempts = [await sign(eager) for _ in range(ATTEMPTS_OF_ONE_SIGNER)]
        assert (attempts[0], attempts[-1]) == (202, 429), attempts

        async def counted() -> bool:
            async with session.get(f"{url['counter']}/api/petitions/{petition}/count") as count:
                return count.status == 200 and (await count.json())["signatures"] == SIGNERS + 2

        assert await eventually(counted, within=15.0), "the stack did not get there in time"

        # Paths naming ids no service knows: unmatched, and matched by a route's template.
        staff = {"Authorization": f"Bearer {tokens.staff('marie', 'moderator')}"}
        signer = {"Authorization": f"Bearer {signers[0]}"}
        missing: list[tuple[str, str, dict[str, str]]] = [
            ("GET", f"{url[name]}/nothing-here/{unknown[name]}", {}) for name in url
        ]
        missing += [
            ("GET", f"{url['petition-catalog']}/api/petitions/{unknown['petition-catalog']}", {}),
            ("GET", f"{url['petition-catalog']}/petitions/{unknown['petition-catalog']}", {}),
            ("GET", f"{url['counter']}/api/petitions/{unknown['counter']}/count", {}),
            (
                "POST",
                f"{url['signature-intake']}/api/petitions/{unknown['signature-intake']}/signatures",
                signer,
            ),
            ("GET", f"{url['moderation']}/api/moderation/items/{unknown['moderation']}", staff),
        ]
        for method, target, headers in missing:
            async with session.request(method, target, headers=headers) as answer:
                assert answer.status == 404, (method, target, answer.status)

        for name in url:  # each readiness probe: dependency_up
            async with session.get(f"{url[name]}/readyz") as ready:
                assert ready.status == 200, (name, await ready.text())

        # Moderation has read the publication from JetStream.
        async def event_read() -> bool:
            async with session.get(f"{url['moderation']}/metrics") as metrics:
                return 'moderation_events_total{kind="published"' in await metrics.text()

        assert await eventually(event_read, within=15.0), "the stack did not get there in time"
    return Traffic(petition, frozenset({petition, run, *unknown.values()}))


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> Traffic:
    return asyncio.run(drive_traffic(stack))


@pytest.fixture(scope="module")
def service_metrics(stack: Stack, traffic: Traffic) -> dict[str, str]:
    """Each service's /metrics, once the traffic has reached every one of them."""
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


def runbook(alert: str) -> str:
    """The section of docs/operations.md under the alert's heading."""
    section = OPERATIONS.read_text().split(f"\n### {alert}\n", 1)[1]
    return section.split("\n### ", 1)[0]


def readiness_dependencies() -> set[str]:
    """Every name a service or the shared library gives a check of its readiness probe: the
    values of ``dependency_up``'s ``dependency`` label, hence of DependencyDown's."""
    sources = [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]
    names: set[str] = set()
    for path in sources:
        text = path.read_text()
        registered = re.findall(r"\[READINESS\]\.add\(\s*\"([^\"]+)\"", text)
        # A name this test cannot read (a variable) must not slip past it.
        assert len(registered) == text.count("[READINESS].add("), path
        names.update(registered)
    return names


def test_every_dependency_a_readiness_probe_reports_is_explained_in_the_runbook() -> None:
    dependencies = readiness_dependencies()
    assert dependencies >= {"postgresql", "redis", "nats", "consumer"}
    explained = runbook("DependencyDown")
    for dependency in dependencies:
        assert f"`{dependency}`" in explained, (
            f"the DependencyDown runbook does not say what {dependency!r} down means"
        )


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
def test_no_label_can_carry_a_petition_or_a_person(
    service_metrics: dict[str, str], traffic: Traffic
) -> None:
    needs = {spec.name: spec.needs for spec in SERVICES}
    for service, exposition in service_metrics.items():
        families = {family.name: family for family in text_string_to_metric_families(exposition)}
        # The traffic reached every service, its 404s, and every labelled family (a service
        # that needs nothing has no dependency to report): no label goes unchecked.
        answered = families["http_server_requests"].samples
        assert any(s.labels.get("status") == "404" for s in answered), f"{service}: no 404"
        for family in families.values():
            if family.name == "dependency_up" and not needs[service]:
                continue
            assert family.samples, f"{service}: no traffic reached {family.name}"
            for sample in family.samples:
                unbounded = set(sample.labels) - BOUNDED_LABELS
                assert not unbounded, f"{service}: {sample.name} has labels {unbounded}"
                for value in sample.labels.values():
                    named = [i for i in traffic.identifiers if i.lower() in value.lower()]
                    assert not named, f"{service}: {sample.name} {sample.labels} names {named}"
                    assert not _UUID.search(value), f"{service}: {sample.name} {value}"
                    assert not _LONG_HEX.search(value), f"{service}: {sample.name} {value}"
    for service, name, labels in FILLED_BY_TRAFFIC:
        samples = next(
            f.samples
            for f in text_string_to_metric_families(service_metrics[service])
            if f.name == name
        )
        assert any(labels.items() <= s.labels.items() for s in samples), (service, name, labels)


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
        "petition_catalog_events_oldest_unpublished_age_seconds",  # petition states held back
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


async def eventually(probe: Callable[[], Any], within: float = 30.0) -> Any:
    """Poll a probe, plain or a coroutine function, until it answers something truthy; its last
    answer once `within` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        answer = probe()
        if inspect.isawaitable(answer):
            answer = await answer
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
