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
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import nats.errors
import pytest
import yaml  # type: ignore[import-untyped]
from nats.aio.client import Client as NatsClient
from pydantic_settings import BaseSettings
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

from paraphe_devstack.binaries import Binaries
from paraphe_devstack.nats_access import (
    SERVICE_PERMISSIONS,
    USERS,
    authorization,
    password_variable,
)
from paraphe_devstack.proxy import ROUTES
from paraphe_devstack.servers import LOCALHOST, free_port, port_answers
from paraphe_devstack.stack import SERVICES
from paraphe_devstack.tls import local_certificates

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
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

Object = dict[str, Any]


@cache
def render(overlay: str) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Kubernetes manifests cannot be rendered")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@cache
def _parsed(overlay: str) -> str:
    return json.dumps([document for document in yaml.safe_load_all(render(overlay)) if document])


def objects(overlay: str) -> list[Object]:
    """The rendered objects, a fresh copy for each caller."""
    parsed: list[Object] = json.loads(_parsed(overlay))
    return parsed


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
    """nginx: /internal/ refused (and /_/ is not for the Ingress); regular expressions in
    order; else the longest prefix."""
    if path.startswith(("/internal/", "/_/")):
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
    assert refused == {"/internal/", "/_/"}
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
    ],
)
def test_the_ingress_routes_each_path_as_the_local_proxy_does(path: str) -> None:
    assert route_like_ingress_nginx(ingress_paths("prod"), path) == route_like_the_local_proxy(path)


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


def test_every_image_is_built_by_a_dockerfile_of_the_repository(overlay: str) -> None:
    for workload in [o for o in objects(overlay) if o["kind"] in WORKLOADS]:
        for container in containers(workload):
            image = container["image"].rsplit(":", 1)[0]
            if image.startswith("paraphe/"):
                service = image.removeprefix("paraphe/")
                assert (ROOT / "services" / service / "Dockerfile").is_file(), image


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
    assert {c["name"] for c in pod_spec(redis)["containers"]} == {"redis", "sentinel"}
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
