"""Every service's OpenAPI document, fuzzed by schemathesis against the running stack.

For each operation of each document, schemathesis generates a bounded number of requests
(valid and invalid) and checks every answer: never a 5xx, a status the document lists, the
content type it gives, a body that matches its schema (problems included). Each service is
fuzzed directly on its port with the token of its audience, as the proxy would pass it.

Besides, the documents of auth-gateway, signature-intake and counter list exactly the routes
their routers serve (moderation's and the catalogue's have tests of their own).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from paraphe_common.app import create_service_app
from paraphe_common.openapi import documented_operations, load, served_operations
from paraphe_common.settings import ServiceSettings
from paraphe_devstack.petitions import StackTokens, open_petition
from paraphe_devstack.servers import LOCALHOST
from paraphe_devstack.stack import Stack

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES_PER_OPERATION = 30
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


def routes_of(setup: Callable[[web.Application], None]) -> web.Application:
    app = create_service_app("example", ServiceSettings())
    setup(app)
    return app


def _auth_gateway() -> web.Application:
    from paraphe_auth_gateway.routes import setup_routes

    return routes_of(setup_routes)


def _intake() -> web.Application:
    from paraphe_signature_intake.routes import setup_routes

    return routes_of(setup_routes)


def _counter() -> web.Application:
    from paraphe_counter.routes import setup_routes

    return routes_of(setup_routes)


@pytest.mark.parametrize(
    ("package", "router", "prefixes"),
    [
        ("paraphe_auth_gateway", _auth_gateway, ("/auth/",)),
        ("paraphe_signature_intake", _intake, ("/api/",)),
        ("paraphe_counter", _counter, ("/api/",)),
    ],
)
def test_the_document_and_the_router_agree(
    package: str, router: Callable[[], web.Application], prefixes: tuple[str, ...]
) -> None:
    document = load(package)
    assert document["openapi"] == "3.1.0"
    assert documented_operations(document) == served_operations(router(), *prefixes)
    assert ("/openapi.json", "get") in served_operations(router(), "/openapi.json")
    for path, method in documented_operations(document):
        for status, answer in document["paths"][path][method]["responses"].items():
            if int(status) >= 400:
                assert list(answer["content"]) == ["application/problem+json"], (path, status)


def token_for(stack: Stack, service: str) -> str | None:
    """The token of the audience the service serves, as the proxy would pass it on."""
    tokens = StackTokens(stack)
    return {
        "signature-intake": tokens.signer("fuzz-signer"),
        "petition-catalog": tokens.author("f" * 64),
        "moderation": tokens.staff("fuzz-admin", "admin"),
    }.get(service)


def configuration(petition: str) -> str:
    """Half the petition ids generated are an open petition's: the handlers past the 404.

    The live count's stream of a real petition never ends, by design: it is left out of the
    fuzzing and read below instead.
    """
    return f"""
[dictionaries.petitions]
values = ["{petition}"]

[parameters]
"path.petition_id" = {{ dictionary = "petitions", probability = 0.5 }}
"""


@pytest.mark.stack
@pytest.mark.parametrize(
    "service",
    ["auth-gateway", "signature-intake", "counter", "petition-catalog", "moderation"],
)
def test_no_answer_is_a_server_error_or_outside_the_document(
    stack: Stack, service: str, tmp_path: Path
) -> None:
    base = f"http://{LOCALHOST}:{stack.ports.services[service]}"
    token = token_for(stack, service)
    petition = asyncio.run(open_petition(stack, f"Une pétition que {service} reçoit au hasard"))
    (tmp_path / "schemathesis.toml").write_text(configuration(petition))
    done = subprocess.run(
        [
            str(SCHEMATHESIS), "run", f"{base}/openapi.json",
            "--url", base,
            "--checks", CHECKS,
            "--max-examples", str(EXAMPLES_PER_OPERATION),
            "--max-redirects", "0",
            "--phases", "examples,coverage,fuzzing",
            "--generation-database", "none",
            "--seed", "20261123",
            "--workers", "1",
            "--request-timeout", "10",
            "--report", "ndjson",
            "--report-dir", str(tmp_path),
            "--no-color",
            "--exclude-operation-id", "countStream",
            *(["--header", f"Authorization: Bearer {token}"] if token else []),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # schemathesis keeps its state in the working directory
        timeout=600,
        check=False,
    )  # fmt: skip
    sys.stdout.write(done.stdout[-2500:])
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout or "passed" in done.stdout, done.stdout[-3000:]
    events = [
        json.loads(line)
        for report in tmp_path.glob("*.ndjson")
        for line in report.read_text().splitlines()
        if line.strip()
    ]
    assert events, "schemathesis sent nothing"


@pytest.mark.stack
async def test_the_live_count_stream_answers_as_documented(stack: Stack) -> None:
    document = load("paraphe_counter")
    schemas = document["components"]["schemas"]
    petition = await open_petition(stack, "Une pétition dont on suit le compte")
    base = f"http://{LOCALHOST}:{stack.ports.services['counter']}/api/petitions"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/{petition}/count/stream") as stream:
            assert stream.status == 200
            assert stream.content_type == "text/event-stream"
            event: dict[str, str] = {}
            while "data" not in event:
                line = (await asyncio.wait_for(stream.content.readline(), 10)).decode().strip()
                name, _, value = line.partition(": ")
                if name:
                    event[name] = value
        Draft202012Validator(schemas["CountEvent"]).validate(event)
        count = json.loads(event["data"])
        Draft202012Validator({**schemas["Count"], "components": document["components"]}).validate(
            count
        )
        assert count == {"petition_id": petition, "signatures": 0}
        async with session.get(f"{base}/{uuid.uuid4()}/count/stream") as unknown:
            assert unknown.status == 404
            assert unknown.content_type == "application/problem+json"
