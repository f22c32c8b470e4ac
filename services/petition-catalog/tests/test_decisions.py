"""Moderation's decisions: the state machine, roles, idempotency, events and the KV state."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from nats.aio.client import Client as NatsClient

from paraphe_common.petition_states import PetitionState
from paraphe_petition_catalog.states import BUCKET

if TYPE_CHECKING:
    from conftest import AddPetition, Client, MakeCatalog, Tokens

STATUSES = ("draft", "submitted", "published", "rejected", "closed", "hidden")
DECISIONS: dict[str, dict[str, Any]] = {
    "publish": {"decision": "publish", "committee": "affaires-sociales"},
    "reject": {
        "decision": "reject",
        "reason_code": "diffamatoire",
        "reason": "Le texte met en cause une personne nommément désignée.",
    },
    "take-down": {
        "decision": "take-down",
        "reason_code": "diffamatoire",
        "reason": "Le texte met en cause une personne nommément désignée.",
    },
    "follow-up": {
        "decision": "follow-up",
        "step": "rapporteur-appointed",
        "note": "Mme Durand est nommée rapporteure.",
    },
}
# Allowed moves, and the status they leave; every other pair is refused with a 409.
ALLOWED = {
    ("publish", "submitted"): "published",
    ("reject", "submitted"): "rejected",
    ("take-down", "published"): "hidden",
    ("take-down", "closed"): "hidden",
    ("follow-up", "published"): "published",
    ("follow-up", "closed"): "closed",
}
ROLE_FOR = {
    "publish": "moderator",
    "reject": "moderator",
    "take-down": "moderator",
    "follow-up": "committee-secretariat",
}


@pytest.fixture
async def moderated(make_catalog: MakeCatalog, authors: tuple[str, str]) -> Client:
    return await make_catalog()


async def decide(
    catalog: Client,
    headers: dict[str, str],
    petition_id: uuid.UUID | str,
    decision: str,
    decision_id: uuid.UUID | None = None,
    **overrides: Any,
) -> tuple[int, dict[str, Any]]:
    body = {"decision_id": str(decision_id or uuid.uuid4())} | DECISIONS[decision] | overrides
    response = await catalog.post(
        f"/internal/petitions/{petition_id}/decisions", json=body, headers=headers
    )
    return response.status, await response.json()


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("decision", list(DECISIONS))
async def test_each_decision_is_taken_only_from_the_statuses_that_allow_it(
    moderated: Client,
    tokens: Tokens,
    add_petition: AddPetition,
    db: asyncpg.Pool,
    decision: str,
    status: str,
) -> None:
    # Past the committee's threshold, where the follow-up begins.
    petition_id = await add_petition(status, reached=(100_000,))
    answer, body = await decide(moderated, tokens.staff("admin"), petition_id, decision)
    after = ALLOWED.get((decision, status))
    stored = await db.fetchval("SELECT status FROM catalog.petitions WHERE id = $1", petition_id)
    events = await db.fetchval(
        "SELECT count(*) FROM catalog.events WHERE petition_id = $1", petition_id
    )
    if after is None:
        assert answer == 409
        assert body["type"] == "urn:paraphe:problem:invalid-transition"
        assert body["petition_status"] == status
        assert (stored, events) == (status, 0)
    else:
        assert answer == 200
        assert body["status"] == after
        assert (stored, events) == (after, 1)


async def test_publishing_sets_the_committee_and_a_six_month_deadline_and_tells_everyone(
    moderated: Client,
    tokens: Tokens,
    add_petition: AddPetition,
    nats_client: NatsClient,
    db: asyncpg.Pool,
) -> None:
    published = await nats_client.subscribe("petitions.events.published")
    petition_id = await add_petition("submitted")
    decision_id = uuid.uuid4()
    answer, body = await decide(
        moderated, tokens.staff("moderator", subject="marie"), petition_id, "publish", decision_id
    )
    assert answer == 200
    assert body["committee"] == {
        "id": "affaires-sociales",
        "name": "Commission des affaires sociales",
    }
    opened = datetime.fromisoformat(body["published_at"])
    closes = datetime.fromisoformat(body["closes_at"])
    assert (closes.year * 12 + closes.month) - (opened.year * 12 + opened.month) == 6
    event = json.loads((await published.next_msg(timeout=5)).data)
    assert event == {
        "id": event["id"],
        "kind": "published",
        "petition_id": str(petition_id),
        "at": event["at"],
        "status": "published",
        "committee": "affaires-sociales",
        "closes_at": event["closes_at"],
        "decision_id": str(decision_id),  # which of moderation's decisions it was
    }
    assert datetime.fromisoformat(event["closes_at"]) == closes
    state = await moderated.app[BUCKET].get(str(petition_id))
    assert PetitionState.decode(state.value or b"") == PetitionState(
        "published", closes.timestamp()
    )
    history = await db.fetch(
        "SELECT from_status, to_status, actor FROM catalog.transitions WHERE petition_id = $1",
        petition_id,
    )
    assert [tuple(row) for row in history] == [("submitted", "published", "marie")]
    public = await (await moderated.get(f"/api/petitions/{petition_id}")).json()
    assert public["status"] == "published"


async def test_the_same_decision_twice_is_taken_once(
    moderated: Client,
    tokens: Tokens,
    add_petition: AddPetition,
    nats_client: NatsClient,
    db: asyncpg.Pool,
) -> None:
    rejected = await nats_client.subscribe("petitions.events.rejected")
    petition_id = await add_petition("submitted")
    decision_id = uuid.uuid4()
    first = await decide(moderated, tokens.staff("moderator"), petition_id, "reject", decision_id)
    again = await decide(moderated, tokens.staff("moderator"), petition_id, "reject", decision_id)
    assert first[0] == again[0] == 200
    assert first[1] == again[1]
    assert await db.fetchval("SELECT count(*) FROM catalog.transitions") == 1
    assert await db.fetchval("SELECT count(*) FROM catalog.events") == 1
    await rejected.next_msg(timeout=5)
    with pytest.raises(TimeoutError):
        await rejected.next_msg(timeout=0.5)


async def test_a_decision_id_cannot_name_two_decisions(
    moderated: Client, tokens: Tokens, add_petition: AddPetition
) -> None:
    first, second = await add_petition("submitted"), await add_petition("submitted")
    decision_id = uuid.uuid4()
    staff = tokens.staff("moderator")
    assert (await decide(moderated, staff, first, "publish", decision_id))[0] == 200
    answer, body = await decide(moderated, staff, second, "publish", decision_id)
    assert answer == 409
    assert body["type"] == "urn:paraphe:problem:decision-id-reused"
    answer, body = await decide(moderated, staff, first, "take-down", decision_id)
    assert answer == 409


@pytest.mark.parametrize("decision", list(DECISIONS))
async def test_only_the_right_roles_decide(
    moderated: Client,
    tokens: Tokens,
    add_petition: AddPetition,
    db: asyncpg.Pool,
    decision: str,
) -> None:
    status = next(status for (d, status) in ALLOWED if d == decision)
    petition_id = await add_petition(status, reached=(100_000,))
    wrong_role = "committee-secretariat" if ROLE_FOR[decision] == "moderator" else "moderator"
    refused = {
        "anonymous": ({}, 401),
        "an author": (tokens.author(), 401),
        "staff without a role": (tokens.staff(), 403),
        "the wrong role": (tokens.staff(wrong_role), 403),
    }
    for who, (headers, status_code) in refused.items():
        answer, body = await decide(moderated, headers, petition_id, decision)
        assert answer == status_code, who
        assert body["status"] == status_code
    assert await db.fetchval("SELECT count(*) FROM catalog.events") == 0
    assert (await decide(moderated, tokens.staff(ROLE_FOR[decision]), petition_id, decision))[
        0
    ] == 200


async def test_staff_read_a_submission_by_role_and_citizens_and_authors_cannot(
    moderated: Client, tokens: Tokens, add_petition: AddPetition
) -> None:
    petition_id = await add_petition("submitted")
    url = f"/internal/petitions/{petition_id}"
    for role in ("moderator", "admin"):
        response = await moderated.get(url, headers=tokens.staff(role))
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "submitted"
        assert body["author"] == {"given_names": "Chloé", "family_name": "Bernard"}
        assert "email" not in json.dumps(body)
    assert (await moderated.get(url)).status == 401
    assert (await moderated.get(url, headers=tokens.author())).status == 401
    assert (await moderated.get(url, headers=tokens.staff())).status == 403
    unknown = await moderated.get(
        f"/internal/petitions/{uuid.uuid4()}", headers=tokens.staff("admin")
    )
    assert unknown.status == 404


@pytest.mark.parametrize(
    ("status", "answers"),
    [
        # A draft is its author's alone: no staff role learns it exists.
        ("draft", {"moderator": 404, "committee-secretariat": 404, "admin": 404}),
        # A text never made public is read by those who judge admissibility, not by a
        # committee's secretariat, whose work begins once a petition is published.
        ("submitted", {"moderator": 200, "committee-secretariat": 403, "admin": 200}),
        ("rejected", {"moderator": 200, "committee-secretariat": 403, "admin": 200}),
        ("published", {"moderator": 200, "committee-secretariat": 200, "admin": 200}),
        ("closed", {"moderator": 200, "committee-secretariat": 200, "admin": 200}),
        ("hidden", {"moderator": 200, "committee-secretariat": 200, "admin": 200}),
    ],
)
async def test_which_staff_read_a_petition_depends_on_whether_it_was_ever_public(
    moderated: Client,
    tokens: Tokens,
    add_petition: AddPetition,
    status: str,
    answers: dict[str, int],
) -> None:
    petition_id = await add_petition(status)
    for role, expected in answers.items():
        response = await moderated.get(
            f"/internal/petitions/{petition_id}", headers=tokens.staff(role)
        )
        assert response.status == expected, role
        body = await response.json()
        if expected == 200:
            assert body["status"] == status
        else:
            assert response.content_type == "application/problem+json"
            assert body["status"] == expected
            assert not {"body", "author", "committee"} & body.keys()  # nothing of the petition


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "publish"}, "decision_id"),
        ({"decision_id": "pas-un-uuid", "decision": "publish", "committee": "lois"}, "decision_id"),
        ({"decision_id": str(uuid.uuid4()), "decision": "publish"}, "committee"),
        (
            {"decision_id": str(uuid.uuid4()), "decision": "publish", "committee": "inconnue"},
            "committee",
        ),
        (
            {"decision_id": str(uuid.uuid4()), "decision": "reject", "reason": "Parce que."},
            "reason_code",
        ),
        ({"decision_id": str(uuid.uuid4()), "decision": "follow-up"}, "step"),
        (
            {
                "decision_id": str(uuid.uuid4()),
                "decision": "reject",
                "reason_code": "x",
                "reason": "",
            },
            "reason",
        ),
        (
            {"decision_id": str(uuid.uuid4()), "decision": "follow-up", "step": "pique-nique"},
            "step",
        ),
        ({"decision_id": str(uuid.uuid4()), "decision": "unpublish"}, "decision"),
        (
            {"decision_id": str(uuid.uuid4()), "decision": "publish", "committee": "lois", "x": 1},
            "x",
        ),
    ],
)
async def test_an_invalid_decision_is_a_422_and_changes_nothing(
    moderated: Client,
    tokens: Tokens,
    add_petition: AddPetition,
    db: asyncpg.Pool,
    body: dict[str, Any],
    field: str,
) -> None:
    petition_id = await add_petition("submitted")
    response = await moderated.post(
        f"/internal/petitions/{petition_id}/decisions", json=body, headers=tokens.staff("admin")
    )
    assert response.status == 422
    problem = await response.json()
    assert field in [param["name"] for param in problem["invalid_params"]]
    assert await db.fetchval("SELECT status FROM catalog.petitions") == "submitted"


async def test_a_decision_that_lacks_what_it_needs_says_so_in_french(
    moderated: Client, tokens: Tokens, add_petition: AddPetition
) -> None:
    petition_id = await add_petition("submitted")
    response = await moderated.post(
        f"/internal/petitions/{petition_id}/decisions",
        json={"decision_id": str(uuid.uuid4()), "decision": "reject"},
        headers=tokens.staff("admin"),
    )
    assert response.status == 422
    # Each missing field named, as a form would show it beside the field.
    assert (await response.json())["invalid_params"] == [
        {"name": "reason_code", "reason": "champ obligatoire pour la décision reject"},
        {"name": "reason", "reason": "champ obligatoire pour la décision reject"},
    ]


@pytest.mark.parametrize("petition_id", ["nope", "00000000-0000-0000-0000-000000000000"])
async def test_a_decision_on_an_unknown_petition_is_a_404(
    moderated: Client, tokens: Tokens, petition_id: str
) -> None:
    answer, body = await decide(moderated, tokens.staff("admin"), petition_id, "publish")
    assert answer == 404
    assert body["type"] == "urn:paraphe:problem:petition-not-found"


async def test_a_taken_down_petition_shows_only_that_it_was_and_why(
    moderated: Client, tokens: Tokens, add_petition: AddPetition
) -> None:
    petition_id = await add_petition("published", title="Un titre qui ne doit plus paraître")
    assert (await decide(moderated, tokens.staff("moderator"), petition_id, "take-down"))[0] == 200
    response = await moderated.get(f"/api/petitions/{petition_id}")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "hidden"
    assert body["decision"]["reason"] == DECISIONS["take-down"]["reason"]
    assert set(body) == {"id", "status", "decision"}
    listed = await (await moderated.get("/api/petitions")).json()
    assert listed["total"] == 0
    state = await moderated.app[BUCKET].get(str(petition_id))
    assert not PetitionState.decode(state.value or b"").is_open(now=0)


async def test_follow_up_steps_are_public_each_once(
    moderated: Client, tokens: Tokens, add_petition: AddPetition, nats_client: NatsClient
) -> None:
    followed = await nats_client.subscribe("petitions.events.followed-up")
    petition_id = await add_petition("closed", reached=(100_000,))
    secretariat = tokens.staff("committee-secretariat")
    assert (await decide(moderated, secretariat, petition_id, "follow-up"))[0] == 200
    answer, _ = await decide(
        moderated, secretariat, petition_id, "follow-up", step="examined-in-committee", note=None
    )
    assert answer == 200
    twice, _ = await decide(moderated, secretariat, petition_id, "follow-up")
    assert twice == 409
    public = await (await moderated.get(f"/api/petitions/{petition_id}")).json()
    assert [(s["step"], s["note"]) for s in public["follow_up"]] == [
        ("rapporteur-appointed", "Mme Durand est nommée rapporteure."),
        ("examined-in-committee", None),
    ]
    event = json.loads((await followed.next_msg(timeout=5)).data)
    assert (event["step"], event["status"], event["note"]) == (
        "rapporteur-appointed",
        "closed",
        "Mme Durand est nommée rapporteure.",
    )


async def test_the_catalogue_records_follow_up_steps_only_as_the_thresholds_allow(
    moderated: Client, tokens: Tokens, add_petition: AddPetition, db: asyncpg.Pool
) -> None:
    """Called directly, as a moderation that checked nothing (or too early) would."""
    petition_id = await add_petition()
    secretariat = tokens.staff("committee-secretariat")

    async def step(name: str, decision_id: uuid.UUID | None = None) -> tuple[int, dict[str, Any]]:
        return await decide(
            moderated, secretariat, petition_id, "follow-up", decision_id, step=name, note=None
        )

    async def refused(name: str, detail: str) -> None:
        answer, problem = await step(name)
        assert answer == 409, problem
        assert problem["type"] == "urn:paraphe:problem:follow-up-not-allowed"
        assert problem["detail"] == detail
        assert problem["petition_status"] == "published"

    async def recorded() -> list[str]:
        rows = await db.fetch(
            "SELECT step FROM catalog.follow_ups WHERE petition_id = $1 ORDER BY at", petition_id
        )
        return [row["step"] for row in rows]

    before = (
        "Le suivi commence quand la pétition atteint 100\u202f000 signatures, le seuil qui la "
        "renvoie en commission : elle ne l'a pas atteint."
    )
    for name in ("debated-in-public-session", "rapporteur-appointed", "classified"):
        await refused(name, before)
    assert await recorded() == []
    assert not await db.fetchval(
        "SELECT count(*) FROM catalog.events WHERE petition_id = $1", petition_id
    )
    await db.execute(
        "INSERT INTO catalog.thresholds_reached (petition_id, threshold, signatures, reached_at)"
        " VALUES ($1, 100000, 100000, now())",
        petition_id,
    )
    await refused(
        "debated-in-public-session",
        "Un débat en séance publique suppose 500\u202f000 signatures : la pétition n'a pas "
        "atteint ce seuil.",
    )
    assert (await step("examined-in-committee"))[0] == 200
    await db.execute(
        "INSERT INTO catalog.thresholds_reached (petition_id, threshold, signatures, reached_at)"
        " VALUES ($1, 500000, 500000, now())",
        petition_id,
    )
    assert (await step("debated-in-public-session"))[0] == 200
    answer_id = uuid.uuid4()
    assert (await step("answer-published", answer_id))[0] == 200
    await refused(
        "classified",
        "Le suivi de cette pétition est terminé (« Réponse publiée ») : aucune étape ne s'y "
        "ajoute.",
    )
    # The same decision sent again (its answer lost) still answers as it did.
    assert (await step("answer-published", answer_id))[0] == 200
    assert await recorded() == [
        "examined-in-committee",
        "debated-in-public-session",
        "answer-published",
    ]


async def test_two_steps_that_end_the_follow_up_sent_at_once_are_not_both_recorded(
    moderated: Client, tokens: Tokens, add_petition: AddPetition, db: asyncpg.Pool
) -> None:
    petitions = [await add_petition(reached=(100_000, 500_000)) for _ in range(5)]
    secretariat = tokens.staff("committee-secretariat")
    answers = await asyncio.gather(
        *(
            decide(moderated, secretariat, petition_id, "follow-up", step=step, note=None)
            for petition_id in petitions
            for step in ("classified", "answer-published")
        )
    )
    for petition_id, (first, second) in zip(
        petitions, zip(answers[::2], answers[1::2], strict=True), strict=True
    ):
        assert sorted([first[0], second[0]]) == [200, 409], (first, second)
        refused = first[1] if first[0] == 409 else second[1]
        assert refused["type"] == "urn:paraphe:problem:follow-up-not-allowed"
        assert refused["detail"].startswith("Le suivi de cette pétition est terminé")
        steps = await db.fetchval(
            "SELECT count(*) FROM catalog.follow_ups WHERE petition_id = $1", petition_id
        )
        events = await db.fetchval(
            "SELECT count(*) FROM catalog.events WHERE petition_id = $1", petition_id
        )
        assert (steps, events) == (1, 1)
