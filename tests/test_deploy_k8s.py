"""Offline checks of the Kubernetes deployment (deploy/k8s): nothing is applied to a cluster.

Every overlay is rendered with ``kubectl kustomize``; each object is validated against the
Kubernetes JSON schemas (kubernetes-validate), scanned by checkov (no failed check, each skip
justified in place), and the files pass yamllint. Beyond what those tools know, the tests
check what paraphe needs: the routes of the local proxy, every required setting of every
service, hardened pods, probes, the clustered data layer of prod, and no committed secret.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import nats.errors
import pytest
import redis
import redis.sentinel
import yaml  # type: ignore[import-untyped]
from nats.aio.client import Client as NatsClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic_settings import BaseSettings
from redis.backoff import NoBackoff
from redis.retry import Retry
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

from paraphe_common.marks import HASH_MAX_LISTPACK_ENTRIES
from paraphe_common.resources import redis_tls_options
from paraphe_common.security import client_network
from paraphe_devstack.binaries import Binaries
from paraphe_devstack.clusters import wait_until
from paraphe_devstack.manifests import K8S, Object, objects, render
from paraphe_devstack.nats_access import (
    SERVICE_PERMISSIONS,
    USERS,
    authorization,
    password_variable,
)
from paraphe_devstack.prometheus import RedisExporter
from paraphe_devstack.proxy import ROUTES, SERVICE_ENDPOINTS
from paraphe_devstack.servers import LOCALHOST, free_port, port_answers
from paraphe_devstack.stack import SERVICES
from paraphe_devstack.tls import LocalAuthority, TlsFiles, local_certificates

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ("dev", "prod")
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
# The oldest Kubernetes minor version the manifests are written for (docs/deploy.md).
KUBERNETES_VERSION = "1.30"
# Kinds of operators the overlays rely on, whose schemas kubernetes-validate does not ship.
OPERATOR_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
}
DEPLOYED = [spec for spec in SERVICES if spec.name != "franceconnect-sandbox"]
WORKLOADS = {"Deployment", "StatefulSet", "Job"}


def named(actual: str, name: str) -> bool:
    """``name`` itself, or as kustomize's generators name it (with a hash of the content)."""
    return actual == name or re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", actual) is not None


def find(overlay: str, kind: str, name: str | None = None) -> list[Object]:
    return [
        o
        for o in objects(overlay)
        if o["kind"] == kind and (name is None or named(o["metadata"]["name"], name))
    ]


def one(overlay: str, kind: str, name: str) -> Object:
    found = find(overlay, kind, name)
    assert len(found) == 1, f"{overlay}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Object) -> list[Object]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---- the tools -------------------------------------------------------------------------------


def test_every_overlay_renders_into_one_namespace(overlay: str) -> None:
    rendered = objects(overlay)
    assert rendered
    namespaced = [o for o in rendered if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"paraphe"}


def test_every_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    unknown = []
    for document in objects(overlay):
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.append((document["apiVersion"], document["kind"]))
        except kubernetes_validate.ValidationError as exc:
            name = f"{document['kind']}/{document['metadata']['name']}"
            pytest.fail(f"{overlay}: {name} is invalid: {exc.message} at {list(exc.path)}")
    assert set(unknown) <= OPERATOR_KINDS


def test_operator_objects_have_the_fields_their_operators_need() -> None:
    cluster = one("prod", "Cluster", "paraphe-database")["spec"]
    assert cluster["instances"] == 3
    assert cluster["bootstrap"]["initdb"]["database"] == "paraphe"
    assert cluster["storage"]["size"]
    for monitor in find("prod", "ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"]
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
    for group in one("prod", "PrometheusRule", "paraphe")["spec"]["groups"]:
        assert group["name"]
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule)
            assert rule["expr"]


def test_checkov_finds_no_misconfiguration_and_every_exception_is_justified(
    overlay: str, tmp_path: Path
) -> None:
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed: `make checkov` installs it into .tools/checkov")
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(render(overlay))
    done = subprocess.run(
        [
            str(CHECKOV),
            "--file", str(manifest),
            "--framework", "kubernetes",
            "--output", "json",
            "--skip-download",  # offline: no Prisma Cloud guidelines, no severities
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip
    report = json.loads(done.stdout)
    results = report["results"]
    failed = [
        f"{check['check_id']} {check['check_name']}: {check['resource']}"
        for check in results["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 100
    for skipped in results["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 30, f"{skipped['check_id']} on {skipped['resource']} is unexplained"


def test_yaml_is_lint_clean() -> None:
    config = YamlLintConfig(file=str(K8S / ".yamllint.yaml"))
    problems = []
    files = sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")])
    assert files
    for path in files:
        relative = path.relative_to(K8S)
        if config.is_file_ignored(str(relative)):
            continue
        for problem in linter.run(path.read_text(encoding="utf-8"), config, str(relative)):
            problems.append(f"{relative}:{problem.line}: {problem.message} ({problem.rule})")
    assert not problems, "\n".join(problems)


# ---- routes ----------------------------------------------------------------------------------


DENIED = "nginx.ingress.kubernetes.io/denylist-source-range"


def ingress_paths(overlay: str) -> dict[str, str | None]:
    """Each path of the site's host, and the service it reaches (None: refused to all)."""
    paths: dict[str, str | None] = {}
    for ingress in find(overlay, "Ingress"):
        if ingress["metadata"]["name"] == "franceconnect-sandbox":
            continue
        refused = ingress["metadata"].get("annotations", {}).get(DENIED) == "0.0.0.0/0,::/0"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                paths[path["path"]] = None if refused else path["backend"]["service"]["name"]
    return paths


def route_like_ingress_nginx(paths: dict[str, str | None], path: str) -> str | None:
    """With use-regex, ingress-nginx tries the paths of all the host's Ingresses as anchored,
    case-insensitive regular expressions, longest first."""
    for pattern in sorted(paths, key=len, reverse=True):
        if re.match(pattern, path, flags=re.IGNORECASE):
            return paths[pattern]
    return None


def route_like_the_local_proxy(path: str) -> str | None:
    """nginx: /internal/ and the services' own endpoints refused (and /_/ is not for the
    Ingress); regular expressions in order; else the longest prefix."""
    if path.startswith(("/internal/", "/_/")) or re.search(SERVICE_ENDPOINTS[2:], path):
        return None
    for location, service in ROUTES:
        if location.startswith("~ ") and re.search(location[2:], path):
            return service
    prefixes = [
        (loc, svc) for loc, svc in ROUTES if not loc.startswith("~") and path.startswith(loc)
    ]
    return max(prefixes, key=lambda route: len(route[0]))[1] if prefixes else None


def test_the_ingress_has_a_path_for_each_route_of_the_local_proxy(overlay: str) -> None:
    paths = ingress_paths(overlay)
    for location, service in ROUTES:
        expected = location.removeprefix("~ ^") if location.startswith("~") else location
        assert paths.get(expected) == service, f"{location} should reach {service}"
    refused = {path for path, service in paths.items() if service is None}
    assert refused == {"/internal/", "/_/", SERVICE_ENDPOINTS.removeprefix("~ ^")}
    assert len(paths) == len(ROUTES) + len(refused)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/petitions/8a7c",
        "/api/petitions",
        "/api/petitions/8a7c",
        "/api/petitions/8a7c/signatures",
        "/api/petitions/8a7c/signatures/me",
        "/api/petitions/8a7c/signaturesx",
        "/api/petitions/8a7c/count",
        "/api/petitions/8a7c/count/stream",
        "/api/moderation/queue",
        "/moderation/",
        "/auth/login",
        "/auth/callback",
        "/static/site.css",
        "/internal/authors/abc",
        "/api/moderation",
        "/_/counter/metrics",
        "/_/signature-intake/readyz",
        "/metrics",
        "/readyz",
        "/healthz",
        "/metrics/",
        "/petitions/metrics",
        "/petitions/8a7c/signature",
        "/petitions/8a7c/signatures",
    ],
)
def test_the_ingress_routes_each_path_as_the_local_proxy_does(path: str) -> None:
    assert route_like_ingress_nginx(ingress_paths("prod"), path) == route_like_the_local_proxy(path)


@pytest.mark.parametrize(
    "path",
    [
        "/api/petitions/8a7c/signatures",
        "/api/petitions/8a7c/signatures/me",
        "/petitions/8a7c/signature",
        "/auth/login",
        "/auth/callback",
    ],
)
def test_the_controller_logs_no_request_that_names_what_a_citizen_signs(path: str) -> None:
    """Its access log keeps the client's address beside the path: not for these (privacy.md)."""
    logged = {}
    for ingress in find("prod", "Ingress"):
        annotations = ingress["metadata"].get("annotations", {})
        for rule in ingress["spec"]["rules"]:
            for route in rule["http"]["paths"]:
                off = annotations.get("nginx.ingress.kubernetes.io/enable-access-log") == "false"
                logged[route["path"]] = not off
    pattern = next(
        p for p in sorted(logged, key=len, reverse=True) if re.match(p, path, re.IGNORECASE)
    )
    assert logged[pattern] is False, f"{path} is logged (through {pattern})"


def test_the_count_stream_is_not_buffered() -> None:
    counts = one("prod", "Ingress", "paraphe-counts")
    annotations = counts["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


# ---- the services ----------------------------------------------------------------------------


def settings_class(module: str) -> type[BaseSettings]:
    settings = importlib.import_module(f"{module}.settings")
    classes = [
        value
        for value in vars(settings).values()
        if inspect.isclass(value)
        and issubclass(value, BaseSettings)
        and value.__module__ == settings.__name__
    ]
    assert len(classes) == 1, f"{module}.settings should define one settings class"
    return classes[0]


def environment_names(overlay: str, deployment: Object) -> set[str]:
    """Every variable the service's container gets, from its ConfigMaps and its env."""
    container = pod_spec(deployment)["containers"][0]
    names = {variable["name"] for variable in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= set(one(overlay, "ConfigMap", source["configMapRef"]["name"]).get("data", {}))
    return names


@pytest.mark.parametrize("spec", DEPLOYED, ids=lambda spec: spec.name)
def test_each_service_gets_every_setting_it_requires(overlay: str, spec: Any) -> None:
    settings = settings_class(spec.module)
    names = environment_names(overlay, one(overlay, "Deployment", spec.name))
    for field, info in settings.model_fields.items():
        if field in {"redis_url", "redis_sentinels"}:
            continue  # one of the two, below
        if info.is_required():
            assert f"PARAPHE_{field.upper()}" in names, f"PARAPHE_{field.upper()} is missing"
    if "redis_url" in settings.model_fields:
        assert ("PARAPHE_REDIS_URL" in names) != ("PARAPHE_REDIS_SENTINELS" in names)
    assert "PARAPHE_PORT" not in names  # 8080, the image's, the container port


@pytest.mark.parametrize("spec", DEPLOYED, ids=lambda spec: spec.name)
def test_each_service_is_replicated_probed_bounded_and_spread(overlay: str, spec: Any) -> None:
    deployment = one(overlay, "Deployment", spec.name)
    scaled = find(overlay, "HorizontalPodAutoscaler", spec.name)
    if scaled:
        # The HPA owns the count: a Deployment's own would reset it at every apply, mid-surge.
        assert "replicas" not in deployment["spec"]
        assert scaled[0]["spec"]["minReplicas"] >= 2
    else:
        assert deployment["spec"]["replicas"] >= 2
    pod = pod_spec(deployment)
    (container,) = pod["containers"]
    assert container["image"].split(":")[0].endswith(f"paraphe/{spec.name}")
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    keys = {constraint["topologyKey"] for constraint in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert one(overlay, "ServiceAccount", spec.name)["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == spec.name
    budget = one(overlay, "PodDisruptionBudget", spec.name)["spec"]
    assert budget["selector"] == deployment["spec"]["selector"]
    service = one(overlay, "Service", spec.name)["spec"]
    assert service["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_intake_and_catalog_scale_on_cpu_and_counter_on_its_backlog(overlay: str) -> None:
    def metrics(name: str) -> list[Object]:
        hpa = one(overlay, "HorizontalPodAutoscaler", name)["spec"]
        assert hpa["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
        found: list[Object] = hpa["metrics"]
        return found

    for name in ("signature-intake", "petition-catalog"):
        assert [m["resource"]["name"] for m in metrics(name) if m["type"] == "Resource"] == ["cpu"]
    backlog = [m for m in metrics("counter") if m["type"] == "External"]
    metric = backlog[0]["external"]["metric"]["name"]
    assert metric == "counter_consumer_pending_messages"
    counter_metrics = ROOT / "services" / "counter" / "src" / "paraphe_counter" / "metrics.py"
    assert f'"{metric}"' in counter_metrics.read_text(encoding="utf-8")


def test_prod_reaches_the_surge_the_deployment_guide_plans_for() -> None:
    """docs/deploy.md's million signatures a minute: 16,667/s, 3,500 an intake pod at the
    HPA's 70 % of a whole core, and ~34 cores of auth-gateway (a sign-in per signature)."""

    def cores_at_target(name: str) -> float:
        container = pod_spec(one("prod", "Deployment", name))["containers"][0]
        assert (
            container["resources"]["requests"]["cpu"]
            == "1"
            == container["resources"]["limits"]["cpu"]
        )
        hpa = one("prod", "HorizontalPodAutoscaler", name)["spec"]
        (target,) = [m["resource"]["target"] for m in hpa["metrics"] if m["type"] == "Resource"]
        return float(hpa["maxReplicas"] * target["averageUtilization"] / 100)

    assert cores_at_target("signature-intake") / 0.7 * 3_500 >= 16_667 * 1.5  # a zone lost
    assert cores_at_target("auth-gateway") >= 34


def images(overlay: str) -> list[str]:
    """Every image the overlay runs: its workloads' containers' and CloudNativePG's."""
    return [
        container["image"]
        for workload in objects(overlay)
        if workload["kind"] in WORKLOADS
        for container in containers(workload)
    ] + [cluster["spec"]["imageName"] for cluster in find(overlay, "Cluster")]


def test_every_image_is_built_by_a_dockerfile_of_the_repository(overlay: str) -> None:
    for image in images(overlay):
        repository = image.rsplit(":", 1)[0]
        if repository.startswith("paraphe/"):
            service = repository.removeprefix("paraphe/")
            assert (ROOT / "services" / service / "Dockerfile").is_file(), image


def documented_images() -> dict[str, str]:
    """Each image from elsewhere and its version, as docs/deploy.md's table under "The images
    from elsewhere" names them (a row naming two images names their versions in the same
    order)."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text.split("## The images from elsewhere", 1)[1].split("\n## ", 1)[0]
    versions: dict[str, str] = {}
    for row in section.splitlines():
        cells = row.split(" | ")
        if not row.startswith("| `") or len(cells) < 3:
            continue
        named = re.findall(r"`([^`]+)`", re.sub(r"\([^)]*\)", "", cells[0]))
        tags = re.findall(r"`([^`]+)`", cells[1])
        if len(tags) == 1:
            tags *= len(named)
        versions.update(zip(named, tags, strict=True))
    return versions


def test_every_image_from_elsewhere_runs_the_version_the_deployment_guide_names() -> None:
    """Servers and sidecars alike: an image this repository does not build is in the guide's
    table, with its version and why, or the test names it."""
    documented = documented_images()
    assert {"redis", "nats", "postgres", "oliver006/redis_exporter"} <= set(documented)
    used: set[str] = set()
    for overlay in OVERLAYS:
        for image in images(overlay):
            repository, _, tag = image.rpartition(":")
            if not repository.startswith("paraphe/"):
                assert tag == documented.get(repository), f"{overlay}: {image}"
                used.add(repository)
    assert used == set(documented)  # the guide names no image the manifests left


def test_every_pod_is_hardened(overlay: str) -> None:
    for workload in [o for o in objects(overlay) if o["kind"] in WORKLOADS]:
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = pod_spec(workload)
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] >= 10000, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in containers(workload):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in context["capabilities"], name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), name


@pytest.mark.parametrize("spec", DEPLOYED, ids=lambda spec: spec.name)
def test_the_pods_run_as_the_user_of_the_image(spec: Any) -> None:
    dockerfile = (ROOT / "services" / spec.name / "Dockerfile").read_text(encoding="utf-8")
    user = re.findall(r"^USER (\d+):(\d+)", dockerfile, flags=re.MULTILINE)[-1]
    context = pod_spec(one("prod", "Deployment", spec.name))["securityContext"]
    assert (str(context["runAsUser"]), str(context["runAsGroup"])) == user
    assert re.search(r"PARAPHE_PORT=8080\b", dockerfile)


def test_the_migration_job_migrates_each_schema_with_its_service_image(overlay: str) -> None:
    job = one(overlay, "Job", "paraphe-migrations")
    steps = {
        container["name"]: (container["image"].split(":")[0], container["args"])
        for container in containers(job)
    }
    assert steps == {
        spec.name: (f"paraphe/{spec.name}", ["migrate"]) for spec in SERVICES if spec.migrates
    }
    assert pod_spec(job)["restartPolicy"] == "OnFailure"


# ---- network -------------------------------------------------------------------------------


def test_everything_is_denied_unless_a_policy_allows_it(overlay: str) -> None:
    deny = one(overlay, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for policy in find(overlay, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            assert rule.get("ports"), f"{policy['metadata']['name']} opens every port"


def allowed(overlay: str, direction: str, pod: str, peer: str, port: int) -> bool:
    """Whether a policy selecting ``pod`` lets traffic go to or come from ``peer`` on
    ``port`` (same-namespace pods selected by their app.kubernetes.io/name)."""

    def selects(selector: Object, name: str) -> bool:
        if selector == {}:
            return True
        if selector.get("matchLabels", {}).get("app.kubernetes.io/name") == name:
            return True
        return any(
            expression["key"] == "app.kubernetes.io/name" and name in expression["values"]
            for expression in selector.get("matchExpressions", [])
        )

    side = "from" if direction == "ingress" else "to"
    for policy in find(overlay, "NetworkPolicy"):
        spec = policy["spec"]
        if not selects(spec["podSelector"], pod):
            continue
        for rule in spec.get(direction, []):
            peers = [p for p in rule.get(side, []) if "podSelector" in p and len(p) == 1]
            ports = {p["port"] for p in rule.get("ports", [])}
            if port in ports and any(selects(p["podSelector"], peer) for p in peers):
                return True
    return False


@pytest.mark.parametrize(
    ("client", "server", "port"),
    [
        ("signature-intake", "redis", 6379),
        ("signature-intake", "nats", 4222),
        ("counter", "nats", 4222),
        ("counter", "postgresql", 5432),
        ("counter", "redis", 6379),
        ("petition-catalog", "postgresql", 5432),
        ("petition-catalog", "nats", 4222),
        ("moderation", "postgresql", 5432),
        ("moderation", "petition-catalog", 8080),
        ("auth-gateway", "redis", 6379),
        ("auth-gateway", "petition-catalog", 8080),
        ("petition-catalog", "signature-intake", 8080),  # signatures posted without JavaScript
        ("paraphe-migrations", "postgresql", 5432),
    ],
)
def test_the_flows_of_the_architecture_are_allowed(client: str, server: str, port: int) -> None:
    for overlay in OVERLAYS:
        assert allowed(overlay, "egress", client, server, port), f"{overlay}: {client} out"
        assert allowed(overlay, "ingress", server, client, port), f"{overlay}: {server} in"


@pytest.mark.parametrize(
    ("client", "server", "port"),
    [
        ("signature-intake", "postgresql", 5432),
        ("auth-gateway", "postgresql", 5432),
        ("auth-gateway", "nats", 4222),
        ("signature-intake", "petition-catalog", 8080),
        ("moderation", "redis", 6379),
        ("counter", "petition-catalog", 8080),
    ],
)
def test_flows_outside_the_architecture_are_not(client: str, server: str, port: int) -> None:
    for overlay in OVERLAYS:
        assert not allowed(overlay, "egress", client, server, port)
        assert not allowed(overlay, "ingress", server, client, port)


# ---- the data layer ------------------------------------------------------------------------


def platform_settings(overlay: str) -> dict[str, str]:
    data: dict[str, str] = one(overlay, "ConfigMap", "paraphe-platform")["data"]
    return data


def test_prod_runs_nats_as_a_three_node_jetstream_cluster_with_streams_at_three_replicas() -> None:
    nats = one("prod", "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3
    config = one("prod", "ConfigMap", "nats-config")["data"]["nats.conf"]
    routes = re.findall(r"nats://(nats-\d)\.nats-headless:6222", config)
    assert routes == ["nats-0", "nats-1", "nats-2"]
    assert "jetstream" in config
    settings = platform_settings("prod")
    assert settings["PARAPHE_NATS_STREAM_REPLICAS"] == "3"
    servers = settings["PARAPHE_NATS_URL"].split(",")
    assert servers == [f"nats://nats-{n}.nats-headless:4222" for n in range(3)]
    assert one("prod", "PodDisruptionBudget", "nats")["spec"]["maxUnavailable"] == 1


NATS_USERS_DIR = K8S / "components" / "nats-users"


def test_the_nats_users_shipped_are_those_the_code_defines() -> None:
    shipped = (NATS_USERS_DIR / "authorization.conf").read_text(encoding="utf-8")
    assert shipped == authorization(), (
        "deploy/k8s/components/nats-users/authorization.conf is stale: "
        "python -m paraphe_devstack.nats_access > it"
    )
    assert {spec.name for spec in DEPLOYED if "nats" in spec.needs} == set(SERVICE_PERMISSIONS)


def test_nats_admits_each_service_as_its_own_user(overlay: str) -> None:
    authorization_map = one(overlay, "ConfigMap", "nats-authorization")
    assert authorization_map["data"]["authorization.conf"] == authorization()
    config = one(overlay, "ConfigMap", "nats-config")["data"]["nats.conf"]
    assert 'include "../nats-users/authorization.conf"' in config
    nats = one(overlay, "StatefulSet", "nats")
    server = next(c for c in containers(nats) if c["name"] == "nats")
    assert server["args"] == ["--config", "/etc/nats/nats.conf"]
    volumes = {volume["name"]: volume for volume in pod_spec(nats)["volumes"]}
    mounted = {  # (the data volume comes from the claim templates)
        m["mountPath"]: volumes[m["name"]] for m in server["volumeMounts"] if m["name"] in volumes
    }
    assert named(mounted["/etc/nats"]["configMap"]["name"], "nats-config")
    assert named(mounted["/etc/nats-users"]["configMap"]["name"], "nats-authorization")
    passwords = {
        variable["name"]: variable["valueFrom"]["secretKeyRef"]
        for variable in server["env"]
        if "secretKeyRef" in variable.get("valueFrom", {})
    }
    assert passwords == {
        password_variable(user): {"name": "paraphe-nats", "key": user} for user in USERS
    }
    for spec in DEPLOYED:
        container = pod_spec(one(overlay, "Deployment", spec.name))["containers"][0]
        env = {variable["name"]: variable for variable in container.get("env", [])}
        if "nats" in spec.needs:
            reference = env["PARAPHE_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert reference == {"name": "paraphe-nats", "key": spec.name}
        else:
            assert "PARAPHE_NATS_PASSWORD" not in env


NATS_TLS_DIR = "/etc/nats-tls"  # where components/nats-tls mounts the servers' certificate
SERVICE_NATS_CA = "/etc/paraphe/nats-tls/ca.crt"


def mounted_nats_configuration(overlay: str, root: Path) -> Path:
    """The overlay's nats.conf and what it reads, laid out under ``root`` as mounted: the
    included users, and a certificate of this machine's where cert-manager's would be."""
    for directory in ("nats", "nats-users", "data"):
        (root / directory).mkdir()
    config = one(overlay, "ConfigMap", "nats-config")["data"]["nats.conf"]
    tls = local_certificates(root / "certificates")
    for name, made in (("tls.crt", tls.cert), ("tls.key", tls.key), ("ca.crt", tls.ca)):
        config = config.replace(f"{NATS_TLS_DIR}/{name}", str(made))
    assert NATS_TLS_DIR not in config, "nats.conf reads a file components/nats-tls does not mount"
    config = config.replace("store_dir: /data", f"store_dir: {root / 'data'}")
    config = config.replace("/var/run/nats/", f"{root}/")
    (root / "nats" / "nats.conf").write_text(config)
    (root / "nats-users" / "authorization.conf").write_text(
        one(overlay, "ConfigMap", "nats-authorization")["data"]["authorization.conf"]
    )
    return root / "nats" / "nats.conf"


def test_the_dev_nats_configuration_admits_the_users_it_includes_over_tls_only(
    binaries: Binaries, tmp_path: Path
) -> None:
    """The overlay's nats.conf and the files it reads, laid out as mounted, run by a real
    nats-server: a service's user is admitted with its password over TLS, verifying the server
    with the authority's certificate; refused with another's password, and refused without
    the authority (the server's certificate unverifiable) or without TLS."""
    config = mounted_nats_configuration("dev", tmp_path)
    passwords = {user: f"password-of-{user}" for user in USERS}
    port = free_port()
    server = subprocess.Popen(
        [str(binaries.nats_server), "--config", str(config),
         "--addr", LOCALHOST, "--port", str(port), "--http_port", str(free_port())],
        env={password_variable(user): password for user, password in passwords.items()},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    trusted = local_certificates(tmp_path / "certificates").client_context()  # those laid out
    try:
        deadline = time.monotonic() + 10
        while not port_answers(port):
            assert server.poll() is None, "nats-server did not accept the configuration"
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)
        assert asyncio.run(admitted(port, "counter", passwords["counter"], trusted))
        assert not asyncio.run(admitted(port, "counter", passwords["moderation"], trusted))
        system_authorities = ssl.create_default_context()
        assert not asyncio.run(admitted(port, "counter", passwords["counter"], system_authorities))
        assert clear_text_refused(port, "counter", passwords["counter"])
    finally:
        server.terminate()
        server.wait(10)


async def admitted(port: int, user: str, password: str, tls: ssl.SSLContext) -> bool:
    client = NatsClient()
    try:
        await client.connect(
            f"nats://{LOCALHOST}:{port}", user=user, password=password, tls=tls,
            allow_reconnect=False, connect_timeout=2,
        )  # fmt: skip
    except ssl.SSLError:
        return False  # (nats-py's close would wait forever on a failed handshake's connection)
    except nats.errors.Error:
        await client.close()
        return False
    await client.close()
    return True


def clear_text_refused(port: int, user: str, password: str) -> bool:
    """A client that answers the server's greeting in clear, as a client without TLS would:
    the server closes the connection before taking its CONNECT."""
    with socket.create_connection((LOCALHOST, port), timeout=5) as connection:
        greeting = connection.recv(4096)
        assert greeting.startswith(b"INFO ")
        assert b'"tls_required":true' in greeting
        credentials = json.dumps({"user": user, "pass": password, "verbose": True})
        try:
            connection.sendall(f"CONNECT {credentials}\r\nPING\r\n".encode())
            answer = connection.recv(4096)
        except OSError:  # reset before the answer
            return True
    return b"+OK" not in answer and b"PONG" not in answer


def test_the_prod_nats_configuration_is_valid_with_its_certificates(
    binaries: Binaries, tmp_path: Path
) -> None:
    """nats-server's own check (``-t``) of production's nats.conf, laid out as mounted."""
    config = mounted_nats_configuration("prod", tmp_path)
    checked = subprocess.run(
        [str(binaries.nats_server), "--config", str(config), "-t"],
        env={"POD_NAME": "nats-0"} | {password_variable(user): "p" for user in USERS},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def host_names(urls: str) -> set[str]:
    return {url.split("://", 1)[1].rsplit(":", 1)[0] for url in urls.split(",")}


def certifies(pattern: str, host: str) -> bool:
    """Whether a certificate's DNS name stands for ``host`` (a wildcard: one label)."""
    if pattern.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == pattern[2:]
    return pattern == host


def test_nats_certificate_names_every_host_clients_and_routes_reach(overlay: str) -> None:
    certificate = one(overlay, "Certificate", "nats-server")["spec"]
    assert certificate["secretName"] == "paraphe-nats-tls"
    assert {"server auth", "client auth"} <= set(certificate["usages"])  # routes: mutual TLS
    config = one(overlay, "ConfigMap", "nats-config")["data"]["nats.conf"]
    hosts = host_names(platform_settings(overlay)["PARAPHE_NATS_URL"])
    hosts |= set(re.findall(r"nats://([a-z0-9.-]+):6222", config))
    for host in hosts:
        assert any(certifies(name, host) for name in certificate["dnsNames"]), host
    # Signed by the NATS authority, itself from the bootstrap issuer, all in the overlay.
    authority = one(overlay, "Issuer", certificate["issuerRef"]["name"])["spec"]["ca"]
    ca = one(overlay, "Certificate", "paraphe-nats-ca")["spec"]
    assert ca["isCA"] is True
    assert ca["secretName"] == authority["secretName"]
    assert "selfSigned" in one(overlay, "Issuer", ca["issuerRef"]["name"])["spec"]


def test_nats_presents_its_certificate_and_reloads_it_when_renewed(overlay: str) -> None:
    config = one(overlay, "ConfigMap", "nats-config")["data"]["nats.conf"]
    blocks = re.findall(r"tls \{([^}]*)\}", config)
    assert len(blocks) == (2 if overlay == "prod" else 1)  # clients; prod's routes too
    for block in blocks:
        assert f"cert_file: {NATS_TLS_DIR}/tls.crt" in block
        assert f"key_file: {NATS_TLS_DIR}/tls.key" in block
    nats = one(overlay, "StatefulSet", "nats")
    spec = pod_spec(nats)
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    by_name = {c["name"]: c for c in containers(nats)}
    for container in (by_name["nats"], by_name["reloader"]):
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert volumes[mounts[NATS_TLS_DIR]]["secret"]["secretName"] == "paraphe-nats-tls"
    # The reloader signals the server named by nats.conf's pid file when the files change.
    pid_file = re.search(r"pid_file: (\S+)", config)
    assert pid_file is not None
    args = by_name["reloader"]["args"]
    assert args[args.index("-pid") + 1] == pid_file[1]
    watched = {args[i + 1] for i, arg in enumerate(args) if arg == "-config"}
    assert {f"{NATS_TLS_DIR}/tls.crt", f"{NATS_TLS_DIR}/tls.key"} <= watched
    assert spec["shareProcessNamespace"] is True
    run = next(m for m in by_name["nats"]["volumeMounts"] if pid_file[1].startswith(m["mountPath"]))
    assert run in by_name["reloader"]["volumeMounts"]


def test_each_nats_service_trusts_the_nats_authority_and_holds_no_key(overlay: str) -> None:
    for spec in DEPLOYED:
        deployment = one(overlay, "Deployment", spec.name)
        container = pod_spec(deployment)["containers"][0]
        env = {variable["name"]: variable.get("value") for variable in container.get("env", [])}
        if "nats" not in spec.needs:
            assert "PARAPHE_NATS_TLS_CA" not in env
            continue
        assert env["PARAPHE_NATS_TLS_CA"] == SERVICE_NATS_CA
        volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
        mount = next(
            m for m in container["volumeMounts"] if SERVICE_NATS_CA.startswith(m["mountPath"] + "/")
        )
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == "paraphe-nats-tls"
        assert secret["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never tls.key


def database_clients(overlay: str) -> list[tuple[Object, Object]]:
    """Every container given PostgreSQL's address, with the workload it runs in."""
    return [
        (workload, container)
        for kind in WORKLOADS
        for workload in find(overlay, kind)
        for container in containers(workload)
        if any(v["name"] == "PARAPHE_DATABASE_URL" for v in container.get("env", []))
    ]


def test_prod_database_clients_verify_the_server_with_its_own_authority() -> None:
    """libpq (the migrations) and asyncpg (the services) verify CloudNativePG's certificate
    with the authority CloudNativePG made for this cluster, and hold nothing else of it."""
    authority = f"{one('prod', 'Cluster', 'paraphe-database')['metadata']['name']}-ca"
    clients = database_clients("prod")
    assert {c["name"] for _, c in clients} == {"counter", "petition-catalog", "moderation"}
    assert len(clients) == 6  # the three services and the migrations' three containers
    for workload, container in clients:
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert env["PGSSLMODE"] in {"verify-ca", "verify-full"}, container["name"]
        volumes = {volume["name"]: volume for volume in pod_spec(workload)["volumes"]}
        mount = next(
            m
            for m in container["volumeMounts"]
            if env["PGSSLROOTCERT"].startswith(m["mountPath"] + "/")
        )
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == authority
        assert secret["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never ca.key


def test_dev_database_clients_ask_no_tls_of_a_server_that_has_none() -> None:
    for _, container in database_clients("dev"):
        assert not {v["name"] for v in container["env"]} & {"PGSSLMODE", "PGSSLROOTCERT"}


def test_prod_runs_redis_with_sentinels_and_the_services_follow_them() -> None:
    redis = one("prod", "StatefulSet", "redis")
    assert redis["spec"]["replicas"] == 3
    names = {c["name"] for c in pod_spec(redis)["containers"]}
    assert names == {"redis", "sentinel", "reloader", "exporter"}
    script = one("prod", "ConfigMap", "redis-scripts")["data"]["configure.sh"]
    assert "sentinel monitor paraphe ${master} 6379 2" in script
    settings = platform_settings("prod")
    assert "PARAPHE_REDIS_URL" not in settings
    sentinels = settings["PARAPHE_REDIS_SENTINELS"].split(",")
    assert sentinels == [f"redis-{n}.redis-headless:26379" for n in range(3)]
    assert settings["PARAPHE_REDIS_SENTINEL_MASTER"] == "paraphe"


def test_prod_runs_postgresql_through_cloudnativepg_and_no_sandbox() -> None:
    cluster = one("prod", "Cluster", "paraphe-database")["spec"]
    assert cluster["instances"] == 3
    assert cluster["minSyncReplicas"] >= 1
    assert cluster["inheritedMetadata"]["labels"]["app.kubernetes.io/name"] == "postgresql"
    names = {o["metadata"]["name"] for o in objects("prod")}
    assert not {name for name in names if "sandbox" in name}
    assert not find("prod", "StatefulSet", "postgresql")


def test_dev_runs_single_instances_and_the_sandbox() -> None:
    for name in ("nats", "redis", "postgresql"):
        assert one("dev", "StatefulSet", name)["spec"]["replicas"] == 1
    assert one("dev", "Deployment", "franceconnect-sandbox")
    settings = platform_settings("dev")
    assert settings["PARAPHE_NATS_STREAM_REPLICAS"] == "1"
    assert settings["PARAPHE_REDIS_URL"] == "redis://redis:6379/0"
    issuer = one("dev", "ConfigMap", "auth-gateway")["data"]["PARAPHE_FRANCECONNECT_ISSUER"]
    assert (
        issuer == one("dev", "ConfigMap", "franceconnect-sandbox")["data"]["PARAPHE_SANDBOX_ISSUER"]
    )
    # The sandbox is served on the issuer's host, which is not the site's.
    sandbox = one("dev", "Ingress", "franceconnect-sandbox")["spec"]
    assert [rule["host"] for rule in sandbox["rules"]] == [urlsplit(issuer).hostname]
    assert sandbox["tls"][0]["hosts"] == [urlsplit(issuer).hostname]
    site = {rule["host"] for rule in one("dev", "Ingress", "paraphe")["spec"]["rules"]}
    assert urlsplit(issuer).hostname not in site


def test_prod_keeps_every_platform_setting_of_the_base_but_the_single_redis() -> None:
    """prod merges its settings over the base's and removes PARAPHE_REDIS_URL alone (the
    sentinels stand for it): a base setting lost there would fall back to the code's default,
    as the trusted proxies once did."""
    dev_only = {"PARAPHE_ACCESS_LOG"}  # dev's additions, over the base
    prod = platform_settings("prod")
    assert "PARAPHE_REDIS_URL" not in prod
    assert set(platform_settings("dev")) - dev_only - {"PARAPHE_REDIS_URL"} <= set(prod)


def test_the_services_that_read_the_thresholds_get_them_from_one_place(overlay: str) -> None:
    """Counter, catalogue and moderation must agree on them (ThresholdSettings): the shared
    ConfigMap gives them, and no service's own ConfigMap or env says otherwise."""
    readers = {s.name for s in DEPLOYED if "thresholds" in settings_class(s.module).model_fields}
    assert readers == {"counter", "petition-catalog", "moderation"}
    for name in readers:
        deployment = one(overlay, "Deployment", name)
        assert "PARAPHE_THRESHOLDS" in environment_names(overlay, deployment)
        container = pod_spec(deployment)["containers"][0]
        assert "PARAPHE_THRESHOLDS" not in {v["name"] for v in container.get("env", [])}
        for own in find(overlay, "ConfigMap", name):
            assert "PARAPHE_THRESHOLDS" not in own.get("data", {})
    assert platform_settings(overlay)["PARAPHE_THRESHOLDS"] == "100000,500000"


def test_the_services_that_keep_or_forget_the_marks_get_their_keeping_from_one_place(
    overlay: str,
) -> None:
    """The counter forgets an ended petition's marks after PARAPHE_MARKS_KEPT_DAYS, intake
    stops saying "not signed" of it then: given different values, intake would say "not
    signed" of someone whose mark the counter forgot. The shared ConfigMap gives it alone."""
    readers = {
        s.name for s in DEPLOYED if "marks_kept_days" in settings_class(s.module).model_fields
    }
    assert readers == {"counter", "signature-intake"}
    for name in readers:
        deployment = one(overlay, "Deployment", name)
        assert "PARAPHE_MARKS_KEPT_DAYS" in environment_names(overlay, deployment)
        container = pod_spec(deployment)["containers"][0]
        assert "PARAPHE_MARKS_KEPT_DAYS" not in {v["name"] for v in container.get("env", [])}
        for own in find(overlay, "ConfigMap", name):
            assert "PARAPHE_MARKS_KEPT_DAYS" not in own.get("data", {})
    assert platform_settings(overlay)["PARAPHE_MARKS_KEPT_DAYS"] == "30"


def test_every_overlay_believes_forwarded_addresses_from_the_cluster_only(overlay: str) -> None:
    """The Ingress controller's pods forward each citizen's address; were they not trusted,
    every citizen would be the controller, one client for every rate limit."""
    proxies = platform_settings(overlay)["PARAPHE_TRUSTED_PROXIES"]
    network = client_network([ip_network(cidr) for cidr in proxies.split(",")], None)
    assert all(map(network.peer_is_proxy, ["10.244.3.7", "172.20.0.9", "fd00::1:7"]))
    assert not any(map(network.peer_is_proxy, ["203.0.113.9", "2001:db8::1"]))


# ---- Redis over TLS ------------------------------------------------------------------------


REDIS_TLS_DIR = "/etc/redis-tls"  # where components/redis-tls mounts the servers' certificate
SERVICE_REDIS_CA = "/etc/paraphe/redis-tls/ca.crt"
RELOAD_SCRIPT = K8S / "components" / "redis-tls" / "reload-tls.sh"
# Letters only: the configurations are searched for port numbers.
REDIS_PASSWORD = "passwordOfTheRedisGroup"


def redis_pod_names(namespace: str) -> set[str]:
    """The names configure.sh gives production's Redis pods: the peers it asks where the
    master is, and each pod's own, which its server and sentinel announce (and which the
    sentinels give the services as the master's address)."""
    script = one("prod", "ConfigMap", "redis-scripts")["data"]["configure.sh"]
    domain = re.search(r'domain="([^"]+)"', script)
    peers = re.search(r"for peer in ([a-z0-9 -]+); do", script)
    assert domain is not None
    assert peers is not None
    assert 'me="$(hostname).${domain}"' in script
    domain_name = domain[1].replace("${POD_NAMESPACE}", namespace)
    return {f"{peer}.{domain_name}" for peer in peers[1].split()}


def redis_hosts(overlay: str) -> set[str]:
    """Every name Redis is reached by, each checked against its certificate: the services'
    server (dev) or sentinels (prod), and in prod the pods' own names."""
    settings = platform_settings(overlay)
    hosts = set()
    if "PARAPHE_REDIS_URL" in settings:
        hosts.add(str(urlsplit(settings["PARAPHE_REDIS_URL"]).hostname))
    sentinels = settings.get("PARAPHE_REDIS_SENTINELS", "")
    hosts |= {address.rsplit(":", 1)[0] for address in sentinels.split(",") if address}
    if find(overlay, "ConfigMap", "redis-scripts"):
        hosts |= redis_pod_names(one(overlay, "StatefulSet", "redis")["metadata"]["namespace"])
    return hosts


def test_redis_certificate_names_every_host_clients_and_peers_reach(overlay: str) -> None:
    certificate = one(overlay, "Certificate", "redis-server")["spec"]
    assert certificate["secretName"] == "paraphe-redis-tls"
    # Server and client: replicas connect to their master, sentinels to servers and one another.
    assert {"server auth", "client auth"} <= set(certificate["usages"])
    hosts = redis_hosts(overlay)
    assert len(hosts) == (1 if overlay == "dev" else 6)
    for host in hosts:
        assert any(certifies(name, host) for name in certificate["dnsNames"]), host
    # Signed by the Redis authority (not NATS'), itself from the bootstrap issuer, all in the
    # overlay.
    authority = one(overlay, "Issuer", certificate["issuerRef"]["name"])["spec"]["ca"]
    ca = one(overlay, "Certificate", "paraphe-redis-ca")["spec"]
    assert ca["isCA"] is True
    assert ca["secretName"] == authority["secretName"] == "paraphe-redis-ca"
    assert "selfSigned" in one(overlay, "Issuer", ca["issuerRef"]["name"])["spec"]


def redis_cli_calls(text: str) -> list[str]:
    """Each redis-cli command of a shell text, its continued lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line[line.index("redis-cli") :] for line in joined.splitlines() if "redis-cli" in line]


def test_redis_and_its_sentinels_read_the_certificate_where_it_is_mounted(overlay: str) -> None:
    redis_set = one(overlay, "StatefulSet", "redis")
    pod = pod_spec(redis_set)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    by_name = {c["name"]: c for c in containers(redis_set)}
    in_prod = {"configure", "sentinel", "exporter"}
    expected = {"redis", "reloader"} | (in_prod if overlay == "prod" else set())
    assert set(by_name) == expected
    for container in by_name.values():
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        secret = volumes[mounts[REDIS_TLS_DIR]]["secret"]
        assert secret == {"secretName": "paraphe-redis-tls", "defaultMode": 0o440}
    # Owner and group may read: Redis' user is in the group the kubelet gives the files.
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    # Every redis-cli, the probes' and configure.sh's, speaks TLS and verifies the server.
    texts = [
        " ".join(c["readinessProbe"]["exec"]["command"])
        for c in by_name.values()
        if "exec" in c.get("readinessProbe", {})
    ]
    if overlay == "prod":
        texts.append(one(overlay, "ConfigMap", "redis-scripts")["data"]["configure.sh"])
    calls = [call for text in texts for call in redis_cli_calls(text)]
    assert len(calls) == (1 if overlay == "dev" else 3)
    for call in calls:
        assert f"--tls --cacert {REDIS_TLS_DIR}/ca.crt" in call, call
    # Liveness: a TCP connection, which a TLS port accepts as any other.
    for name in {"redis", "sentinel"} & set(by_name):
        assert "tcpSocket" in by_name[name]["livenessProbe"]


def test_the_redis_reloader_runs_the_components_script_for_the_pods_redis(overlay: str) -> None:
    redis_set = one(overlay, "StatefulSet", "redis")
    volumes = {volume["name"]: volume for volume in pod_spec(redis_set)["volumes"]}
    by_name = {c["name"]: c for c in containers(redis_set)}
    reloader = by_name["reloader"]
    assert reloader["image"] == by_name["redis"]["image"]  # its redis-cli, sh and sha256sum
    mounts = {m["mountPath"]: m["name"] for m in reloader["volumeMounts"]}
    shell, script_path = reloader["command"]
    assert shell == "sh"
    directory, script_name = script_path.rsplit("/", 1)
    scripts = one(overlay, "ConfigMap", volumes[mounts[directory]]["configMap"]["name"])
    script = scripts["data"][script_name]
    assert script == RELOAD_SCRIPT.read_text(encoding="utf-8")
    assert f"\ntls={REDIS_TLS_DIR}\n" in script
    env = {variable["name"]: variable for variable in reloader["env"]}
    password = env.pop("REDIS_PASSWORD")["valueFrom"]["secretKeyRef"]
    assert password == {"name": "paraphe-redis", "key": "password"}
    ports = {p["name"]: p["containerPort"] for c in by_name.values() for p in c.get("ports", [])}
    assert ports["redis"] == 6379  # the reloader's default
    if "sentinel" in by_name:  # restarted by the reloader, at the port it listens on
        assert env.pop("RELOAD_SENTINEL_PORT")["value"] == str(ports["sentinel"])
    assert env == {}  # the tests' settings (intervals) are left at their defaults


def test_each_redis_service_trusts_the_redis_authority_and_holds_no_key(overlay: str) -> None:
    for spec in DEPLOYED:
        deployment = one(overlay, "Deployment", spec.name)
        container = pod_spec(deployment)["containers"][0]
        env = {variable["name"]: variable.get("value") for variable in container.get("env", [])}
        if "redis" not in spec.needs:
            assert "PARAPHE_REDIS_TLS_CA" not in env
            continue
        assert env["PARAPHE_REDIS_TLS_CA"] == SERVICE_REDIS_CA
        volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
        mount = next(
            m
            for m in container["volumeMounts"]
            if SERVICE_REDIS_CA.startswith(m["mountPath"] + "/")
        )
        assert mount["readOnly"] is True
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == "paraphe-redis-tls"
        assert secret["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never tls.key


def issued(authority: LocalAuthority, directory: Path) -> TlsFiles:
    """A server certificate of ``authority`` with a new key, under the names of the Secret's
    keys (as cert-manager renews one: a new key, the same authority)."""
    return authority.issue(
        TlsFiles(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    )


class MountedSecret:
    """A Secret volume as the kubelet lays it out and updates it: each key a link through
    ``..data`` to the directory of the current version, which an update swaps in one rename
    (readers never see half of an update)."""

    def __init__(self, directory: Path, tls: TlsFiles) -> None:
        self.directory = directory
        self.versions = 0
        directory.mkdir()
        self.write(tls)

    def write(self, tls: TlsFiles) -> None:
        self.versions += 1
        version = self.directory / f"..version-{self.versions}"
        version.mkdir()
        for key, source in (("ca.crt", tls.ca), ("tls.crt", tls.cert), ("tls.key", tls.key)):
            shutil.copyfile(source, version / key)
            if not (self.directory / key).is_symlink():
                (self.directory / key).symlink_to(f"..data/{key}")
        staged = self.directory / "..data_tmp"
        staged.symlink_to(version.name)
        staged.replace(self.directory / "..data")


class Processes:
    """Servers a test starts, each logging to a file of its name; all stopped at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        assert name not in self.running or self.running[name].poll() is not None, name
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.running[name] = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def __getitem__(self, name: str) -> subprocess.Popen[bytes]:
        return self.running[name]

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
        for process in self.running.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()


def redis_client(port: int, ca: Path | None, password: str | None = REDIS_PASSWORD) -> redis.Redis:
    """A client as the services make one: with an authority, TLS, the name connected to checked
    against the certificate. It fails at once (no retries: the tests wait themselves)."""
    tls = {"ssl": True, **redis_tls_options(ca)} if ca is not None else {}
    return redis.Redis(
        "localhost", port, password=password, socket_timeout=2, decode_responses=True,
        retry=Retry(NoBackoff(), 0), **tls,
    )  # fmt: skip


def ping(port: int, ca: Path | None, password: str | None = REDIS_PASSWORD) -> str:
    """PONG, or the error the client failed with."""
    try:
        with redis_client(port, ca, password) as client:
            return "PONG" if client.ping() else "no answer"
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"


def answers(port: int, ca: Path) -> bool:
    return ping(port, ca) == "PONG"


def presented(port: int) -> bytes:
    """The certificate a TLS server presents (DER), or nothing when it does not answer."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # whatever it presents: compared by the caller
    try:
        with (
            socket.create_connection((LOCALHOST, port), timeout=2) as connection,
            context.wrap_socket(connection) as tls,
        ):
            return tls.getpeercert(binary_form=True) or b""
    except OSError:
        return b""


def der(certificate: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(certificate.read_text())


def presents(ports: list[int], certificate: Path) -> bool:
    """Whether the servers at ``ports`` all present this certificate."""
    return all(presented(port) == der(certificate) for port in ports)


def fake_hostname(directory: Path, name: str) -> Path:
    """A directory to put first in PATH, where ``hostname`` answers ``name``, as in a pod."""
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / "hostname"
    program.write_text(f"#!/bin/sh\necho {name}\n")
    program.chmod(0o755)
    return directory


def test_the_dev_redis_serves_tls_only_with_its_password(
    binaries: Binaries, processes: Processes, tmp_path: Path
) -> None:
    """Dev's redis-server arguments, run by a real server with a certificate where the component
    mounts it: a client that verifies the server with the authority, and gives the password,
    is answered (and the readiness probe); without the password, in clear, or trusting another
    authority, refused."""
    redis_set = one("dev", "StatefulSet", "redis")
    container = next(c for c in pod_spec(redis_set)["containers"] if c["name"] == "redis")
    tls = MountedSecret(tmp_path / "redis-tls", local_certificates(tmp_path / "certificates"))
    args = container["args"]
    options = dict(zip(args[::2], args[1::2], strict=True))
    assert options["--port"] == "0"  # no clear-text port
    assert options["--tls-port"] == "6379"
    assert options["--tls-auth-clients"] == "no"
    for option, key in (("cert", "tls.crt"), ("key", "tls.key"), ("ca-cert", "ca.crt")):
        assert options[f"--tls-{option}-file"] == f"{REDIS_TLS_DIR}/{key}"
    assert options["--requirepass"] == "$(REDIS_PASSWORD)"  # the kubelet's expansion
    # The signed marks' buckets in the compact encoding (paraphe_common.marks).
    assert options["--hash-max-listpack-entries"] == str(HASH_MAX_LISTPACK_ENTRIES)
    port = free_port()
    (tmp_path / "data").mkdir()
    here = {
        "--requirepass": REDIS_PASSWORD,
        "--tls-port": str(port),
        "--dir": str(tmp_path / "data"),
    }
    argv = [str(binaries.redis_server)]
    for option, value in options.items():
        argv += [option, here.get(option, value.replace(REDIS_TLS_DIR, str(tls.directory)))]
    processes.start("redis", [*argv, "--bind", LOCALHOST])
    authority = tls.directory / "ca.crt"
    wait_until(partial(answers, port, authority), "redis-server answers in TLS")
    assert "Authentication" in ping(port, authority, password=None)
    assert ping(port, None).startswith("ConnectionError")
    other = local_certificates(tmp_path / "other-authority").ca
    assert "certificate verify failed" in ping(port, other)
    probe = container["readinessProbe"]["exec"]["command"]
    assert probe[:2] == ["sh", "-c"]
    command = probe[2].replace(REDIS_TLS_DIR, str(tls.directory)).replace("-p 6379", f"-p {port}")
    path = f"{binaries.redis_server.parent}:{os.environ['PATH']}"
    done = subprocess.run(
        ["sh", "-c", command], env={"PATH": path, "REDIS_PASSWORD": REDIS_PASSWORD},
        capture_output=True, check=False, timeout=10,
    )  # fmt: skip
    assert done.returncode == 0, done


@dataclass
class RedisPod:
    ordinal: int
    config: Path  # /config: redis.conf and sentinel.conf, as configure.sh wrote them
    written: dict[str, str]  # what configure.sh wrote, before this machine's names and ports
    server_port: int
    sentinel_port: int
    bin: Path  # hostname answers redis-<ordinal>


@dataclass
class RedisGroup:
    """Production's Redis pods on this machine, each a redis-server and a sentinel started on
    the configuration configure.sh wrote, sharing the mounted certificate."""

    pods: list[RedisPod]
    tls: MountedSecret
    authority: LocalAuthority
    initial: TlsFiles  # the certificate mounted first
    processes: Processes
    redis_bin: Path  # redis-server, redis-cli

    def start_server(self, pod: RedisPod) -> None:
        config = str(pod.config / "redis.conf")
        self.processes.start(
            f"server-{pod.ordinal}", [str(self.redis_bin / "redis-server"), config]
        )

    def start_sentinel(self, pod: RedisPod) -> None:
        """The sentinel's container, as the kubelet starts it (again): on /config/sentinel.conf."""
        config = str(pod.config / "sentinel.conf")
        argv = [str(self.redis_bin / "redis-server"), config, "--sentinel"]
        self.processes.start(f"sentinel-{pod.ordinal}", argv)

    def env(self, pod: RedisPod, **variables: str) -> dict[str, str]:
        path = f"{pod.bin}:{self.redis_bin}:{os.environ['PATH']}"
        return {"PATH": path, "REDIS_PASSWORD": REDIS_PASSWORD, **variables}

    def sentinel_peers(self, pod: RedisPod) -> list[str]:
        """The flags of every other sentinel that pod's knows ("sentinel" alone: it answers)."""
        try:
            with redis_client(pod.sentinel_port, self.tls.directory / "ca.crt") as client:
                return [peer["flags"] for peer in client.sentinel_sentinels("paraphe")]
        except redis.RedisError:
            return []

    def sentinels_meet(self) -> bool:
        """Whether each sentinel knows every other, and hears from it."""
        return all(self.sentinel_peers(pod) == ["sentinel"] for pod in self.pods)


def configure_redis_pod(root: Path, tls: Path, ordinal: int, redis_bin: Path) -> RedisPod:
    """Prod's configure.sh run for real as redis-<ordinal>'s init container, the other pods out of
    reach (as at the group's first start: redis-0 the master), its paths this machine's; then
    what it wrote made to run here: each pod's name localhost, its ports free ones."""
    script = one("prod", "ConfigMap", "redis-scripts")["data"]["configure.sh"]
    pod = root / f"redis-{ordinal}"
    (pod / "config").mkdir(parents=True)
    (pod / "data").mkdir()
    for path, here in (("/config/", f"{pod}/config/"), (f"{REDIS_TLS_DIR}/", f"{tls}/"),
                       ("dir /data\n", f"dir {pod}/data\n")):  # fmt: skip
        assert path in script
        script = script.replace(path, here)
    (pod / "configure.sh").write_text(script)
    bin_dir = fake_hostname(pod / "bin", f"redis-{ordinal}")
    done = subprocess.run(
        ["sh", str(pod / "configure.sh")],
        env={"PATH": f"{bin_dir}:{redis_bin}:{os.environ['PATH']}", "POD_NAMESPACE": "paraphe",
             "REDIS_PASSWORD": REDIS_PASSWORD},
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    files = ("redis.conf", "sentinel.conf")
    written = {name: (pod / "config" / name).read_text() for name in files}
    return RedisPod(ordinal, pod / "config", written, free_port(), free_port(), bin_dir)


def run_here(text: str, pod: RedisPod, servers: list[int]) -> str:
    """A configuration configure.sh wrote, for this machine: the pods' names localhost (each
    pod's server then told by its port), the ports free ones, listening on the loopback."""
    domain = re.escape(".redis-headless.paraphe.svc.cluster.local")
    text = re.sub(rf"redis-(\d){domain} 6379\b", lambda m: f"localhost {servers[int(m[1])]}", text)
    text = re.sub(rf"redis-\d{domain}", "localhost", text)
    text = text.replace("tls-port 6379\n", f"tls-port {pod.server_port}\n")
    text = text.replace("tls-port 26379\n", f"tls-port {pod.sentinel_port}\n")
    assert "svc.cluster.local" not in text
    # (The loopback only; replicas' first synchronisation at once, not after 5 s.)
    return text + "bind 127.0.0.1 -::1\nrepl-diskless-sync-delay 0\n"


@pytest.fixture
def redis_group(binaries: Binaries, processes: Processes, tmp_path: Path) -> RedisGroup:
    authority = LocalAuthority()
    initial = issued(authority, tmp_path / "authority" / "first")
    tls = MountedSecret(tmp_path / "redis-tls", initial)
    redis_bin = binaries.redis_server.parent
    assert (redis_bin / "redis-cli").exists()
    pods = [configure_redis_pod(tmp_path, tls.directory, n, redis_bin) for n in range(2)]
    servers = [pod.server_port for pod in pods]
    for pod in pods:
        for name, text in pod.written.items():
            (pod.config / name).write_text(run_here(text, pod, servers))
    group = RedisGroup(pods, tls, authority, initial, processes, redis_bin)
    ca = tls.directory / "ca.crt"
    for pod in pods:
        group.start_server(pod)
        wait_until(partial(answers, pod.server_port, ca), f"redis-{pod.ordinal}'s server")
    # The sentinels once the replica follows: their first look at the master finds it.
    with redis_client(pods[1].server_port, ca) as client:
        wait_until(lambda: client.info("replication")["master_link_status"] == "up", "replication")
    for pod in pods:
        group.start_sentinel(pod)
        wait_until(partial(answers, pod.sentinel_port, ca), f"redis-{pod.ordinal}'s sentinel")
    wait_until(group.sentinels_meet, "the sentinels know one another")
    return group


def test_prod_redis_configuration_is_tls_only_for_clients_replicas_and_sentinels(
    redis_group: RedisGroup, tmp_path: Path
) -> None:
    """What prod's configure.sh writes, run by real servers and sentinels: no clear-text port;
    the replica follows its master in TLS; the sentinels find one another in TLS; a client as
    the services make one (the authority, the password) finds the master through the sentinels
    and is answered; in clear, or trusting another authority, refused everywhere."""
    group = redis_group
    tls_lines = [f"tls-cert-file {group.tls.directory}/tls.crt",
                 f"tls-key-file {group.tls.directory}/tls.key",
                 f"tls-ca-cert-file {group.tls.directory}/ca.crt",
                 "tls-auth-clients no", "tls-replication yes"]  # fmt: skip
    for pod in group.pods:
        for name, tls_port in (("redis.conf", "6379"), ("sentinel.conf", "26379")):
            lines = pod.written[name].splitlines()
            assert "port 0" in lines, name
            assert f"tls-port {tls_port}" in lines, name
            assert set(tls_lines) <= set(lines), name
    master, replica = group.pods
    ca = group.tls.directory / "ca.crt"
    with redis_client(replica.server_port, ca) as client:
        assert client.info("replication")["master_link_status"] == "up"  # in TLS
    for pod in group.pods:  # the signed marks' buckets in the compact encoding
        with redis_client(pod.server_port, ca) as client:
            limit = client.config_get("hash-max-listpack-entries")
        assert limit == {"hash-max-listpack-entries": str(HASH_MAX_LISTPACK_ENTRIES)}
    with redis_client(master.sentinel_port, ca) as client:
        replicas = client.sentinel_slaves("paraphe")
    assert [(r["ip"], r["port"], r["flags"]) for r in replicas] == [
        ("localhost", replica.server_port, "slave")  # "slave" alone: reached, in TLS
    ]
    # As the services ask: the sentinels, in TLS, name the master, reached in TLS by that name.
    sentinels = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        [("localhost", pod.sentinel_port) for pod in group.pods],
        sentinel_kwargs={"password": REDIS_PASSWORD, "ssl": True, "ssl_ca_certs": str(ca),
                         "ssl_check_hostname": True, "socket_timeout": 2},
        password=REDIS_PASSWORD, ssl=True, ssl_ca_certs=str(ca), ssl_check_hostname=True,
        socket_timeout=2,
    )  # fmt: skip
    found = sentinels.discover_master("paraphe")  # type: ignore[no-untyped-call]
    assert found == ("localhost", master.server_port)
    with sentinels.master_for("paraphe") as client:  # type: ignore[no-untyped-call]
        assert client.set("signed", "1")
    for sentinel in sentinels.sentinels:
        sentinel.close()
    with redis_client(replica.server_port, ca) as client:
        wait_until(lambda: client.get("signed") == "1", "the write replicated")
    other = local_certificates(tmp_path / "other-authority").ca
    for pod in group.pods:
        for port in (pod.server_port, pod.sentinel_port):
            assert ping(port, None).startswith("ConnectionError"), port
            assert "certificate verify failed" in ping(port, other), port
    # The containers' readiness probes, as they are, answered.
    redis_set = one("prod", "StatefulSet", "redis")
    for container in containers(redis_set):
        if "exec" not in container.get("readinessProbe", {}):
            continue
        command = container["readinessProbe"]["exec"]["command"][2]
        command = command.replace(REDIS_TLS_DIR, str(group.tls.directory))
        command = command.replace("-p 26379", f"-p {master.sentinel_port}")
        command = command.replace("-p 6379", f"-p {master.server_port}")
        done = subprocess.run(
            ["sh", "-c", command], env=group.env(master), capture_output=True, check=False,
            timeout=10,
        )  # fmt: skip
        assert done.returncode == 0, container["name"]


def test_prod_redis_exporter_reaches_its_server_in_tls_and_reads_its_memory_limit(
    redis_group: RedisGroup, tmp_path: Path
) -> None:
    """The exporter as shipped, run by a real redis_exporter (Debian's) beside the master
    configure.sh configured: it verifies the server in TLS with the authority and gives the
    password, and exposes what the Redis alerts read (maxmemory as configure.sh sets it)."""
    exporter = next(
        c for c in containers(one("prod", "StatefulSet", "redis")) if c["name"] == "exporter"
    )
    env = {variable["name"]: variable["valueFrom"] for variable in exporter["env"]}
    assert env["REDIS_PASSWORD"]["secretKeyRef"] == {"name": "paraphe-redis", "key": "password"}
    assert env["POD_NAME"]["fieldRef"] == {"fieldPath": "metadata.name"}
    mounts = {m["mountPath"]: m["name"] for m in exporter["volumeMounts"]}
    assert mounts[REDIS_TLS_DIR] == "tls"
    master, _ = redis_group.pods
    here = [
        argument.replace(
            "$(POD_NAME).redis-headless:6379", f"localhost:{master.server_port}"
        ).replace(REDIS_TLS_DIR, str(redis_group.tls.directory))
        for argument in exporter["args"]
        if not argument.startswith("-web.listen-address=")
    ]
    assert f"-redis.addr=rediss://localhost:{master.server_port}" in here  # the pod's own server
    server = RedisExporter(tmp_path / "exporter", free_port(), here, REDIS_PASSWORD)
    server.start()
    try:
        samples = {
            sample.name: sample.value
            for family in text_string_to_metric_families(server.metrics())
            for sample in family.samples
            if not sample.labels
        }
    finally:
        server.stop()
    assert samples["redis_up"] == 1
    assert samples["redis_memory_max_bytes"] == 3 * 1024**3  # configure.sh's maxmemory 3gb
    assert samples["redis_memory_used_bytes"] > 0
    assert samples["redis_connected_slaves"] == 1  # redis-1 follows it


def test_prod_redis_exporters_are_scraped_by_prometheus_as_job_redis() -> None:
    redis_set = one("prod", "StatefulSet", "redis")
    exporter = next(c for c in containers(redis_set) if c["name"] == "exporter")
    port = {p["name"]: p["containerPort"] for p in exporter["ports"]}["metrics"]
    assert f"-web.listen-address=:{port}" in exporter["args"]
    monitor = one("prod", "PodMonitor", "redis")["spec"]
    labels = redis_set["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in monitor["selector"]["matchLabels"].items())
    assert [endpoint["port"] for endpoint in monitor["podMetricsEndpoints"]] == ["metrics"]
    assert labels[monitor["jobLabel"]] == "redis"  # what the Redis alerts select
    rules = [
        rule
        for policy in find("prod", "NetworkPolicy")
        if policy["spec"]["podSelector"].get("matchLabels") == {"app.kubernetes.io/name": "redis"}
        for rule in policy["spec"].get("ingress", [])
    ]
    assert any(
        {"protocol": "TCP", "port": port} in rule["ports"]
        and any(
            peer.get("namespaceSelector", {}).get("matchLabels")
            == {"kubernetes.io/metadata.name": "monitoring"}
            and peer.get("podSelector", {}).get("matchLabels")
            == {"app.kubernetes.io/name": "prometheus"}
            for peer in rule["from"]
        )
        for rule in rules
    )
    # Nothing else comes in on the exporter's port.
    for rule in rules:
        if {"protocol": "TCP", "port": port} in rule["ports"]:
            assert all("namespaceSelector" in peer for peer in rule["from"])


def start_reloader(group: RedisGroup, pod: RedisPod, **settings: str) -> None:
    """The pod's reloader sidecar, the script from the rendered ConfigMap, looking at the
    mounted files every 0.2 s; returns once it has taken the current ones in."""
    script = one("prod", "ConfigMap", "redis-tls-reload")["data"]["reload-tls.sh"]
    script = script.replace(f"\ntls={REDIS_TLS_DIR}\n", f"\ntls={group.tls.directory}\n")
    path = pod.config.parent / "reload-tls.sh"
    path.write_text(script)
    env = group.env(
        pod, RELOAD_SERVER_PORT=str(pod.server_port), RELOAD_SENTINEL_PORT=str(pod.sentinel_port),
        RELOAD_INTERVAL="0.2", **settings,
    )  # fmt: skip
    name = f"reloader-{pod.ordinal}"
    group.processes.start(name, ["sh", str(path)], env)
    wait_until(lambda: "watching" in group.processes.log(name), f"{name} starts")


def test_the_reloader_has_redis_take_its_renewed_certificate_one_sentinel_at_a_time(
    redis_group: RedisGroup,
) -> None:
    """cert-manager renews the certificate (a new key, the same authority) and the kubelet swaps
    the files: each pod's reloader has its server load them at once (no restart: the data and
    the clients stay), then shuts its sentinel down for the kubelet to start again on the new
    files: redis-0's first; redis-1's after its stagger, and not while redis-0's is down."""
    group = redis_group
    first, second = group.pods
    for pod in group.pods:
        start_reloader(group, pod, RELOAD_STAGGER="3", RELOAD_PEER_WAIT="60")
    ca = group.tls.directory / "ca.crt"
    with redis_client(first.server_port, ca) as client:
        client.set("kept", "1")
        renewed = issued(group.authority, group.tls.directory.parent / "renewed")
        renewed_at = time.monotonic()
        group.tls.write(renewed)
        servers = [pod.server_port for pod in group.pods]
        wait_until(partial(presents, servers, renewed.cert), "the servers present the renewal")
        assert client.get("kept") == "1"  # the same server, its data kept
    assert group.processes["sentinel-0"].wait(10) == 0  # a clean exit, restarted by the kubelet
    # redis-1's stagger is over (3 s): its sentinel waits for redis-0's, still down.
    time.sleep(max(0.0, renewed_at + 4.5 - time.monotonic()))
    assert group.processes["sentinel-1"].poll() is None, "both sentinels down at once"
    assert group.sentinel_peers(second) != ["sentinel"]
    group.start_sentinel(first)  # the kubelet
    assert group.processes["sentinel-1"].wait(15) == 0
    group.start_sentinel(second)
    sentinels = [pod.sentinel_port for pod in group.pods]
    wait_until(partial(presents, sentinels, renewed.cert), "the sentinels present the renewal")
    wait_until(group.sentinels_meet, "the sentinels know one another again")
    for pod in group.pods:
        log = group.processes.log(f"reloader-{pod.ordinal}")
        assert log.count("redis-server reloaded the certificate") == 1, log
        assert log.count("sentinel asked to shut down") == 1, log
    with redis_client(first.sentinel_port, ca) as client:
        assert client.sentinel_get_master_addr_by_name("paraphe") == (
            "localhost",
            first.server_port,
        )


def test_the_reloader_has_redis_take_a_certificate_of_a_new_authority(
    redis_group: RedisGroup, tmp_path: Path
) -> None:
    """When the authority itself changes (renewed, or Secret paraphe-redis-ca lost), the new
    ca.crt cannot verify what the servers still present: the reloader reaches its own server
    all the same (over the pod's loopback) and has it load the new files; a sentinel whose
    peers it can no longer verify restarts after RELOAD_PEER_WAIT rather than never."""
    group = redis_group
    first, second = group.pods
    start_reloader(group, first)
    start_reloader(group, second, RELOAD_STAGGER="1", RELOAD_PEER_WAIT="2")
    new = local_certificates(tmp_path / "new-authority")
    group.tls.write(new)
    servers = [pod.server_port for pod in group.pods]
    wait_until(partial(presents, servers, new.cert), "the servers present the new certificate")
    assert group.processes["sentinel-0"].wait(10) == 0
    group.start_sentinel(first)
    assert group.processes["sentinel-1"].wait(15) == 0
    assert "still down after 2s" in group.processes.log("reloader-1")
    group.start_sentinel(second)
    sentinels = [pod.sentinel_port for pod in group.pods]
    wait_until(partial(presents, sentinels, new.cert), "the sentinels present the new certificate")
    wait_until(group.sentinels_meet, "the sentinels know one another again")
    for port in servers + sentinels:
        assert ping(port, new.ca) == "PONG"
        assert "certificate verify failed" in ping(port, group.initial.ca)


# ---- monitoring and secrets ----------------------------------------------------------------


def load_rule_generator() -> Any:
    path = K8S / "components" / "monitoring" / "prometheus_rule.py"
    spec = importlib.util.spec_from_file_location("prometheus_rule", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_prometheus_rule_is_the_monitoring_rules_files() -> None:
    rule_files = sorted((ROOT / "deploy" / "monitoring" / "rules").glob("*.yml"))
    assert rule_files, "deploy/monitoring/rules has no rule file"
    groups = [group for path in rule_files for group in yaml.safe_load(path.read_text())["groups"]]
    assert one("prod", "PrometheusRule", "paraphe")["spec"]["groups"] == groups
    generator = load_rule_generator()
    committed = (K8S / "components" / "monitoring" / "prometheus-rule.yaml").read_text()
    assert committed == generator.render(), (
        "prometheus-rule.yaml is stale: run "
        "`.venv/bin/python deploy/k8s/components/monitoring/prometheus_rule.py`"
    )


def test_a_service_monitor_scrapes_each_service_under_its_name() -> None:
    monitors = {m["metadata"]["name"]: m["spec"] for m in find("prod", "ServiceMonitor")}
    assert set(monitors) == {spec.name for spec in DEPLOYED}
    for name, monitor in monitors.items():
        labels = one("prod", "Service", name)["metadata"]["labels"]
        assert monitor["selector"]["matchLabels"].items() <= labels.items()


def secret_references(overlay: str) -> Iterator[tuple[str, str]]:
    def walk(node: Any) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"secretKeyRef", "accessKeyId", "secretAccessKey"}:
                    yield value["name"], value["key"]
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for document in objects(overlay):
        yield from walk(document)


def test_no_secret_is_committed_and_each_one_referenced_is_documented(overlay: str) -> None:
    assert not find(overlay, "Secret")
    text = "\n".join(path.read_text() for path in K8S.rglob("*.yaml"))
    # (A password read from a variable, as nats-server's users' are, is no secret written.)
    assert not re.search(
        r"(?im)^\s*(stringData|password|client-secret)\s*:\s*(?!\$[A-Z_]+$)\S", text
    )
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name, key in sorted(set(secret_references(overlay))):
        assert f"`{name}`" in guide, f"Secret {name} is not documented"
        assert f"`{key}`" in guide, f"key {key} of Secret {name} is not documented"
