"""The nginx configuration of the local proxy: one browser origin for every service.

The route table is the one the Kubernetes Ingress mirrors (deploy/k8s); keep them the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from paraphe_devstack.servers import LOCALHOST

# (nginx location, service) in the order nginx should see them; regex locations win over
# prefixes, so the signature and count routes are taken out of the catalogue's /api/ first.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/auth/", "auth-gateway"),
    ("~ ^/api/petitions/[^/]+/signatures(/|$)", "signature-intake"),
    ("~ ^/api/petitions/[^/]+/count(/|$)", "counter"),
    # The sign form without JavaScript: the catalogue's, but a route of its own, which the
    # Ingress keeps out of its access log with the other signing routes.
    ("~ ^/petitions/[^/]+/signature$", "petition-catalog"),
    ("/api/moderation/", "moderation"),
    ("/moderation/", "moderation"),
    ("/", "petition-catalog"),
)

# Each service's own probes and metrics, at the root of its port: never through the site's
# origin, where the catalogue's "/" would otherwise answer them to anyone (the Ingress refuses
# the same paths); on this machine they are under /_/<service>/.
SERVICE_ENDPOINTS = "~ ^/(healthz|readyz|metrics)$"

# Routes that stream (server-sent events): no buffering, long reads.
STREAMING = frozenset({"counter"})


def upstream_name(service: str) -> str:
    return service.replace("-", "_")


def nginx_config(prefix: Path, listen_port: int, services: Mapping[str, Sequence[int]]) -> str:
    """``services``: each service's ports, one per replica (requests go round the replicas)."""
    upstreams = "\n".join(
        f"    upstream {upstream_name(name)} {{ "
        + "".join(f"server {LOCALHOST}:{port}; " for port in ports)
        + "keepalive 64; }"
        for name, ports in services.items()
    )
    locations = []
    for location, service in ROUTES:
        extra = " proxy_buffering off; proxy_read_timeout 1h;" if service in STREAMING else ""
        locations.append(
            f"        location {location} {{{extra} proxy_pass http://{upstream_name(service)}; }}"
        )
    # Service-to-service routes and the services' own endpoints are never reachable from outside.
    locations.insert(0, "        location /internal/ { return 404; }")
    locations.insert(1, f"        location {SERVICE_ENDPOINTS} {{ return 404; }}")
    # Each service's probes and metrics, for people and tests on this machine only: the
    # production Ingress does not expose them.
    for service in services:
        locations.append(
            f"        location ~ ^/_/{service}/(healthz|readyz|metrics)$ "
            f"{{ proxy_pass http://{upstream_name(service)}/$1; }}"
        )
    # Workers leave root for an unprivileged account, which must write the temp dirs.
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    temp = prefix / "temp"
    return f"""# Written by paraphe-dev; changes are lost at the next start.
{user}
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {temp / "client_body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "proxy"};
    uwsgi_temp_path {temp / "proxy"};
    scgi_temp_path {temp / "proxy"};
    client_max_body_size 1m;
{upstreams}
    server {{
        listen {LOCALHOST}:{listen_port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Request-Id $request_id;
{chr(10).join(locations)}
    }}
}}
"""
