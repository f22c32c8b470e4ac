"""Moderation on real PostgreSQL and NATS, with an aiohttp app standing in for the catalog.

The catalog is an HTTP peer, not a data store: the stand-in below answers its internal API the
way the contract says (idempotent by decision_id, 409 on a transition not allowed), records
what it was sent, and can be told to fail. Fixtures give plain types or callables: test modules
cannot import from this file (pytest imports them with importlib).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats
import nats.errors
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from pytest_aiohttp import AiohttpClient, AiohttpServer

from paraphe_common import follow_up
from paraphe_common.migrations import upgrade
from paraphe_common.petition_states import PetitionState, publish_state
from paraphe_common.problems import PROBLEM_TYPE_PREFIX
from paraphe_common.streams import (
    ensure_petition_events_stream,
    petition_event_subject,
    petitions_bucket,
)
from paraphe_common.tokens import STAFF, TokenIssuer
from paraphe_devstack.keys import SigningKey
from paraphe_devstack.servers import NatsServer
from paraphe_moderation.__main__ import MIGRATIONS
from paraphe_moderation.app import create_app
from paraphe_moderation.settings import ModerationSettings

Client = TestClient[web.Request, web.Application]
PUBLIC_URL = "http://petitions.example"

_NEXT = {"publish": "published", "reject": "rejected", "take-down": "hidden"}
_FROM = {"publish": "submitted", "reject": "submitted", "take-down": "published"}


@dataclass
class FakeCatalog:
    """What the stand-in holds and was sent; ``failures`` makes the next calls answer 503."""

    statuses: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    follow_ups: dict[str, list[str]] = field(default_factory=dict)
    thresholds: dict[str, list[int]] = field(default_factory=dict)  # reached, per petition
    # PARAPHE_THRESHOLDS, as moderation is given them (the settings fixture sets them).
    configured_thresholds: tuple[int, ...] = (100_000, 500_000)
    failures: int = 0
    delay: float = 0.0  # seconds before answering a decision
    applies_then_fails: bool = False
    # The next decision's answer, when set: a refusal the catalog would make (its status and
    # problem members), e.g. a 422 with invalid_params.
    refusal: dict[str, Any] | None = None
    # Awaited once a decision is applied, before the answer: the catalog's event may reach
    # moderation before the answer does.
    on_applied: Callable[[str, str], Awaitable[None]] | None = None
    url: str = ""
    bodies: dict[str, str] = field(default_factory=dict)  # a petition's text, when not the usual

    def petition(self, petition_id: str) -> dict[str, Any]:
        return {
            "id": petition_id,
            "title": "Une pétition du catalogue",
            "body": self.bodies.get(
                petition_id, "Le texte de la pétition, tel que le catalogue le garde."
            ),
            "status": self.statuses[petition_id],
            "committee": None,
            "author": {"given_names": "Camille", "family_name": "Durand"},
            "signature_count": 0,
            "thresholds": [
                {"threshold": t, "signatures": t, "reached_at": "2026-11-20T08:00:00+00:00"}
                for t in self.thresholds.get(petition_id, [])
            ],
            "follow_up": [{"step": s, "note": None} for s in self.follow_ups.get(petition_id, [])],
        }


def _problem(status: int, detail: str, **extensions: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": "x", "status": status, "detail": detail, **extensions},
        status=status,
        content_type="application/problem+json",
    )


def catalog_app(state: FakeCatalog) -> web.Application:
    async def decide(request: web.Request) -> web.Response:
        petition_id = request.match_info["petition_id"]
        state.tokens.append(request.headers.get("Authorization", ""))
        body = await request.json()
        state.calls.append(body)
        await asyncio.sleep(state.delay)
        if state.failures and not state.applies_then_fails:
            state.failures -= 1
            return _problem(503, "indisponible")
        if state.refusal is not None:
            refusal, state.refusal = state.refusal, None
            return web.json_response(
                {"type": "about:blank", "title": "x", **refusal},
                status=refusal["status"],
                content_type="application/problem+json",
            )
        if petition_id not in state.statuses:
            return _problem(404, "Pétition introuvable.")
        decision_id = body["decision_id"]
        if decision_id in state.decisions:
            return web.json_response(state.petition(petition_id))
        kind = body["decision"]
        if kind == "follow-up":
            # The committee's rule, as the catalog enforces it under the petition's row lock.
            if reason := follow_up.refusal(
                body["step"],
                reached=state.thresholds.get(petition_id, []),
                recorded=state.follow_ups.get(petition_id, []),
                thresholds=state.configured_thresholds,
            ):
                return _problem(
                    409,
                    reason,
                    type=PROBLEM_TYPE_PREFIX + follow_up.NOT_ALLOWED,
                    petition_status=state.statuses[petition_id],
                )
            state.follow_ups.setdefault(petition_id, []).append(body["step"])
        elif state.statuses[petition_id] != _FROM[kind]:
            return _problem(
                409,
                "Transition impossible depuis cet état.",
                petition_status=state.statuses[petition_id],
            )
        else:
            state.statuses[petition_id] = _NEXT[kind]
        state.decisions[decision_id] = body
        if state.on_applied is not None:
            await state.on_applied(petition_id, state.statuses[petition_id])
        if state.failures:  # applied, but the answer is lost
            state.failures -= 1
            return _problem(503, "réponse perdue")
        return web.json_response(state.petition(petition_id))

    async def read(request: web.Request) -> web.Response:
        petition_id = request.match_info["petition_id"]
        if petition_id not in state.statuses:
            return _problem(404, "Pétition introuvable.")
        return web.json_response(state.petition(petition_id))

    app = web.Application()
    app.router.add_post("/internal/petitions/{petition_id}/decisions", decide)
    app.router.add_get("/internal/petitions/{petition_id}", read)
    return app


@pytest.fixture
async def catalog(aiohttp_server: AiohttpServer) -> FakeCatalog:
    state = FakeCatalog()
    server: TestServer = await aiohttp_server(catalog_app(state))
    state.url = str(server.make_url("/")).rstrip("/")
    return state


@pytest.fixture
def settings(
    database_url: str, nats_server: NatsServer, signing_key: SigningKey, catalog: FakeCatalog
) -> ModerationSettings:
    upgrade(database_url, "moderation", MIGRATIONS)
    settings = ModerationSettings(
        database_url=database_url,
        nats_url=nats_server.url,
        token_verification_keys=signing_key.public_jwks,
        catalog_url=catalog.url,
        public_url=PUBLIC_URL,
        catalog_timeout=2.0,
        queue_metrics_interval=0.1,
    )
    catalog.configured_thresholds = settings.thresholds
    return settings


StartModeration = Callable[..., Awaitable[Client]]


@pytest.fixture
def start_moderation(
    settings: ModerationSettings, aiohttp_client: AiohttpClient
) -> StartModeration:
    """Moderation apps, closed before the database and NATS go (hence ``settings`` first)."""

    async def start(**overrides: Any) -> Client:
        return await aiohttp_client(create_app(settings.model_copy(update=overrides)))

    return start


@pytest.fixture
async def moderation(start_moderation: StartModeration) -> Client:
    return await start_moderation()


IssueStaffToken = Callable[..., str]


@pytest.fixture
def staff_token(signing_key: SigningKey) -> IssueStaffToken:
    """A staff token: ``staff_token("moderator", subject="marie", name="Marie")``."""
    issuer = TokenIssuer(signing_key.private_pem, signing_key.kid)

    def issue(*roles: str, subject: str | None = None, name: str = "Agent") -> str:
        return issuer.issue(
            STAFF, subject or f"agent-{uuid.uuid4().hex[:8]}", 600, roles=frozenset(roles),
            name=name,
        )  # fmt: skip

    return issue


@pytest.fixture
async def jetstream(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    connection: NatsClient = await nats.connect(nats_server.url)
    jetstream = connection.jetstream()
    await ensure_petition_events_stream(jetstream)
    yield jetstream
    await connection.close()


PublishEvent = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def publish_event(jetstream: JetStreamContext) -> PublishEvent:
    """Publish a catalog event the way the contract says; returns its body."""

    async def publish(kind: str, petition_id: str, **fields: Any) -> dict[str, Any]:
        body = {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "petition_id": petition_id,
            "at": datetime.now(UTC).isoformat(),
            **fields,
        }
        headers = {"Nats-Msg-Id": body["id"]} if kind != "threshold-reached" else None
        # Like the catalog's outbox, publish again until JetStream acknowledges.
        async with asyncio.timeout(15):
            while True:
                try:
                    await jetstream.publish(
                        petition_event_subject(kind),
                        json.dumps(body).encode(),
                        headers=headers,
                        timeout=1,
                    )
                except nats.errors.Error:
                    await asyncio.sleep(0.1)
                else:
                    return body

    return publish


SetState = Callable[[str, str], Awaitable[None]]


@pytest.fixture
def set_petition_state(jetstream: JetStreamContext) -> SetState:
    """Write a petition's state in the PETITIONS bucket, as the catalog does."""

    async def set_state(petition_id: str, status: str) -> None:
        bucket = await petitions_bucket(jetstream)
        await publish_state(bucket, petition_id, PetitionState(status, None))

    return set_state


Eventually = Callable[..., Awaitable[Any]]


@pytest.fixture
def eventually() -> Eventually:
    """Await ``check()`` until it returns something truthy, for at most ``timeout`` seconds."""

    async def wait(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while not (result := await check()):
                await asyncio.sleep(0.05)
            return result

    return wait


SubmitPetition = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def submit_petition(
    moderation: Client,
    catalog: FakeCatalog,
    publish_event: PublishEvent,
    eventually: Eventually,
    staff_token: IssueStaffToken,
) -> SubmitPetition:
    """A petition submitted to the catalog: its review item, once the queue has it."""
    reader = staff_token("admin")

    async def submit(
        title: str = "Pour une meilleure rénovation des écoles",
        body: str = "Les bâtiments scolaires vieillissent : élèves et enseignants méritent mieux.",
        suggested_committee: str | None = None,
    ) -> dict[str, Any]:
        petition_id = str(uuid.uuid4())
        catalog.statuses[petition_id] = "submitted"
        await publish_event(
            "submitted", petition_id, status="submitted", title=title, body=body,
            suggested_committee=suggested_committee,
            submitted_at=datetime.now(UTC).isoformat(),
        )  # fmt: skip

        async def item() -> dict[str, Any] | None:
            answer = await moderation.get(
                f"/api/moderation/queue?petition_id={petition_id}",
                headers={"Authorization": f"Bearer {reader}"},
            )
            items = (await answer.json())["items"]
            return items[0] if items else None

        found: dict[str, Any] = await eventually(item)
        return found

    return submit
