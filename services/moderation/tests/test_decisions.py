"""Decisions: applied by the catalog with the agent's own token, then written to the audit log."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from paraphe_moderation import decisions as moderation_decisions

Client = TestClient[web.Request, web.Application]
# The shapes of conftest's fixtures (test modules cannot import it).
Eventually = Callable[..., Awaitable[Any]]
PublishEvent = Callable[..., Awaitable[Any]]
StartModeration = Callable[..., Awaitable[Client]]
SubmitPetition = Callable[..., Awaitable[dict[str, Any]]]
IssueStaffToken = Callable[..., str]
FakeCatalog = Any


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def claimed(client: Client, item: dict[str, Any], token: str) -> None:
    answer = await client.post(f"/api/moderation/items/{item['id']}/claim", headers=bearer(token))
    assert answer.status == 200, await answer.text()


async def audit_rows(settings: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return await connection.fetch("SELECT * FROM moderation.audit_log ORDER BY id")
    finally:
        await connection.close()


async def test_a_moderator_publishes_with_a_committee_through_the_catalog(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    settings: Any,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie", name="Marie Modératrice")
    await claimed(moderation, item, marie)
    answer = await moderation.post(
        f"/api/moderation/items/{item['id']}/decision",
        json={"decision": "publish", "committee": item["suggested_committee"]},
        headers=bearer(marie),
    )
    assert answer.status == 200, await answer.text()
    outcome = await answer.json()
    assert outcome["decision"]["decision"] == "publish"
    assert outcome["decision"]["committee"] == "affaires-culturelles"
    assert outcome["decision"]["actor"] == "marie"
    assert outcome["petition"]["status"] == "published"
    # The catalog saw Marie's own token and a decision id; the contract's fields, no others.
    assert catalog.tokens == [f"Bearer {marie}"]
    [sent] = catalog.calls
    assert set(sent) == {"decision_id", "decision", "committee"}
    assert sent["decision_id"] == outcome["decision"]["decision_id"]
    [row] = await audit_rows(settings)
    assert (row["actor"], row["action"], str(row["petition_id"])) == (
        "marie",
        "publish",
        item["petition_id"],
    )
    listed = await moderation.get(
        f"/api/moderation/queue?status=resolved&petition_id={item['petition_id']}",
        headers=bearer(marie),
    )
    [resolved] = (await listed.json())["items"]
    assert resolved["resolution"] == "published"
    assert resolved["claimed_by"] is None
    metrics = await (await moderation.get("/metrics")).text()
    assert 'moderation_decisions_total{decision="publish"} 1.0' in metrics


async def test_publishing_without_a_committee_is_refused_naming_the_field(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie")
    await claimed(moderation, item, marie)
    for body in (
        {"decision": "publish"},
        {"decision": "publish", "committee": ""},
        {"decision": "publish", "committee": "commission-inconnue"},
    ):
        answer = await moderation.post(
            f"/api/moderation/items/{item['id']}/decision", json=body, headers=bearer(marie)
        )
        assert answer.status == 422, body
        assert answer.content_type == "application/problem+json"
        problem = await answer.json()
        assert problem["type"] == "urn:paraphe:problem:invalid-decision"
        assert problem["invalid_params"] == [
            {"name": "committee", "reason": "Choisissez la commission saisie de la pétition."}
        ]
    assert catalog.calls == []


CONTROL_CHARACTERS = (
    "Ce texte contient un caractère invisible non autorisé (caractère de contrôle) : "
    "retirez-le, par exemple en le retapant."
)


@pytest.mark.parametrize("character", ["\x0b", "\x00", "\x1b", "\x7f", "\ud800"])
async def test_an_explanation_with_a_control_character_is_refused_naming_the_field(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    character: str,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie")
    await claimed(moderation, item, marie)
    url = f"/api/moderation/items/{item['id']}/decision"
    answer = await moderation.post(
        url,
        json={"decision": "reject", "reason_code": "insulting", "reason": f"Propos{character}x"},
        headers=bearer(marie),
    )
    assert answer.status == 422, await answer.text()
    problem = await answer.json()
    assert problem["invalid_params"] == [{"name": "reason", "reason": CONTROL_CHARACTERS}]
    assert catalog.calls == []
    # Corrected, it goes through; line breaks as a browser sends them are kept as the catalog
    # keeps them.
    answer = await moderation.post(
        url,
        json={"decision": "reject", "reason_code": "insulting", "reason": "Propos\r\ninjurieux"},
        headers=bearer(marie),
    )
    assert answer.status == 200, await answer.text()
    assert catalog.calls[-1]["reason"] == "Propos\ninjurieux"


async def test_a_note_with_a_control_character_is_refused_naming_the_field(
    moderation: Client, staff_token: IssueStaffToken, catalog: FakeCatalog
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    answer = await moderation.post(
        f"/api/moderation/petitions/{petition_id}/decisions",
        json={"decision": "follow-up", "step": "rapporteur-appointed", "note": "M.\x0bDupont"},
        headers=bearer(staff_token("committee-secretariat")),
    )
    assert answer.status == 422
    assert (await answer.json())["invalid_params"] == [
        {"name": "note", "reason": CONTROL_CHARACTERS}
    ]
    assert catalog.calls == []


async def test_the_fields_the_catalog_refuses_are_named_in_the_answer(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie")
    await claimed(moderation, item, marie)
    refused = [{"name": "reason", "reason": "texte trop long (au plus 2000 caractères)"}]
    catalog.refusal = {
        "status": 422,
        "detail": "La décision n'est pas valide : corrigez les champs indiqués.",
        "invalid_params": refused,
    }
    answer = await moderation.post(
        f"/api/moderation/items/{item['id']}/decision",
        json={"decision": "reject", "reason_code": "insulting", "reason": "Injures."},
        headers=bearer(marie),
    )
    assert answer.status == 422
    problem = await answer.json()
    assert problem["type"] == "urn:paraphe:problem:invalid-decision"
    assert problem["detail"] == "La décision n'est pas valide : corrigez les champs indiqués."
    assert problem["invalid_params"] == refused
    # Refused, so not applied: the item is still open, the decision can be corrected.
    answer = await moderation.post(
        f"/api/moderation/items/{item['id']}/decision",
        json={"decision": "reject", "reason_code": "insulting"},
        headers=bearer(marie),
    )
    assert answer.status == 200, await answer.text()


async def test_a_rejection_carries_the_reason_the_author_will_read(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator")
    await claimed(moderation, item, marie)
    decide = f"/api/moderation/items/{item['id']}/decision"
    unknown = await moderation.post(
        decide, json={"decision": "reject", "reason_code": "because"}, headers=bearer(marie)
    )
    assert unknown.status == 422
    assert "not-french" in (await unknown.json())["allowed"]
    answer = await moderation.post(
        decide, json={"decision": "reject", "reason_code": "outside-remit"}, headers=bearer(marie)
    )
    assert answer.status == 200, await answer.text()
    [sent] = catalog.calls
    assert sent["reason_code"] == "outside-remit"
    assert sent["reason"].startswith("La demande ne relève pas de la compétence du Parlement")


async def test_deciding_needs_a_claim_held_by_oneself(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    item = await submit_petition()
    marie, ines = staff_token("moderator", subject="marie"), staff_token("admin", subject="ines")
    decide = f"/api/moderation/items/{item['id']}/decision"
    body = {"decision": "publish", "committee": "lois"}
    unclaimed = await moderation.post(decide, json=body, headers=bearer(marie))
    assert unclaimed.status == 409
    assert (await unclaimed.json())["type"] == "urn:paraphe:problem:not-claimed"
    await claimed(moderation, item, ines)
    assert (await moderation.post(decide, json=body, headers=bearer(marie))).status == 409


async def test_the_same_decision_sent_twice_is_applied_and_recorded_once(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    settings: Any,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator")
    await claimed(moderation, item, marie)
    body = {"decision_id": str(uuid.uuid4()), "decision": "publish", "committee": "lois"}
    decide = f"/api/moderation/items/{item['id']}/decision"
    first = await moderation.post(decide, json=body, headers=bearer(marie))
    again = await moderation.post(decide, json=body, headers=bearer(marie))
    assert first.status == again.status == 200
    assert (await first.json())["decision"] == (await again.json())["decision"]
    assert len(await audit_rows(settings)) == 1
    assert len(catalog.decisions) == 1
    # Another decision on the resolved item is refused.
    other = await moderation.post(
        decide, json={"decision": "reject", "reason_code": "duplicate"}, headers=bearer(marie)
    )
    assert other.status == 409


async def test_a_catalog_that_does_not_answer_leaves_the_item_claimed_and_undecided(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    settings: Any,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie")
    await claimed(moderation, item, marie)
    catalog.failures = 1
    decide = f"/api/moderation/items/{item['id']}/decision"
    body = {"decision": "publish", "committee": "lois"}
    failed = await moderation.post(decide, json=body, headers=bearer(marie))
    assert failed.status == 503
    assert failed.headers["Retry-After"] == "5"
    assert (await failed.json())["type"] == "urn:paraphe:problem:catalog-unavailable"
    assert await audit_rows(settings) == []
    state = await (
        await moderation.get(f"/api/moderation/items/{item['id']}", headers=bearer(marie))
    ).json()
    assert state["claimed_by"] == "marie"
    assert state["resolution"] is None
    # The retry, without an id of the client's, reuses the decision's id.
    retried = await moderation.post(decide, json=body, headers=bearer(marie))
    assert retried.status == 200
    first_id, second_id = (call["decision_id"] for call in catalog.calls)
    assert first_id == second_id
    assert [row["decision_id"] for row in await audit_rows(settings)] == [uuid.UUID(first_id)]


async def test_a_decision_applied_whose_answer_was_lost_is_audited_from_its_event(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    publish_event: PublishEvent,
    eventually: Eventually,
    settings: Any,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie")
    await claimed(moderation, item, marie)
    catalog.failures, catalog.applies_then_fails = 1, True
    decide = f"/api/moderation/items/{item['id']}/decision"
    body = {"decision": "publish", "committee": "finances"}
    assert (await moderation.post(decide, json=body, headers=bearer(marie))).status == 503
    # The catalog did publish it, and says so on NATS.
    await publish_event("published", item["petition_id"], status="published", committee="finances")
    [row] = await eventually(lambda: audit_rows(settings))
    assert (row["actor"], row["action"]) == ("marie", "publish")
    assert str(row["decision_id"]) == catalog.calls[0]["decision_id"]
    # Marie's retry finds the decision recorded: the same answer, nothing twice.
    retried = await moderation.post(decide, json=body, headers=bearer(marie))
    assert retried.status == 200, await retried.text()
    assert len(await audit_rows(settings)) == 1


async def test_a_transition_the_catalog_refuses_is_a_conflict(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    settings: Any,
) -> None:
    item = await submit_petition()
    catalog.statuses[item["petition_id"]] = "published"  # published meanwhile
    marie = staff_token("moderator")
    await claimed(moderation, item, marie)
    answer = await moderation.post(
        f"/api/moderation/items/{item['id']}/decision",
        json={"decision": "reject", "reason_code": "duplicate"},
        headers=bearer(marie),
    )
    assert answer.status == 409
    assert (await answer.json())["detail"] == "Transition impossible depuis cet état."
    assert await audit_rows(settings) == []
    # Published by other means: the review item has nothing left to decide.
    state = await moderation.get(f"/api/moderation/items/{item['id']}", headers=bearer(marie))
    assert (await state.json())["resolution"] == "published"


async def test_reports_lead_to_a_take_down_with_a_reason(
    moderation: Client,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    set_petition_state: Any,
    eventually: Eventually,
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    await set_petition_state(petition_id, "published")

    async def reported() -> bool:
        answer = await moderation.post(
            "/api/moderation/reports",
            json={"petition_id": petition_id, "reason_code": "insulting", "message": "Injurieux."},
        )
        return answer.status == 202

    await eventually(reported)  # once the state has reached moderation's view
    marie = staff_token("moderator")
    [item] = (
        await (
            await moderation.get(
                f"/api/moderation/queue?kind=report&petition_id={petition_id}",
                headers=bearer(marie),
            )
        ).json()
    )["items"]
    await claimed(moderation, item, marie)
    answer = await moderation.post(
        f"/api/moderation/items/{item['id']}/decision",
        json={"decision": "take-down", "reason_code": "insulting", "reason": "Propos injurieux."},
        headers=bearer(marie),
    )
    assert answer.status == 200, await answer.text()
    assert catalog.statuses[petition_id] == "hidden"
    assert catalog.calls[-1] == {
        "decision_id": catalog.calls[-1]["decision_id"],
        "decision": "take-down",
        "reason_code": "insulting",
        "reason": "Propos injurieux.",
    }


async def test_take_downs_whose_events_race_their_answers_are_each_recorded_once(
    moderation: Client,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    set_petition_state: Any,
    publish_event: PublishEvent,
    eventually: Eventually,
    settings: Any,
) -> None:
    # The catalog's "hidden" event closes the petition's reports while the answer is on its
    # way: the event and the decision's own record touch the same rows, and neither may fail.
    async def announce(petition_id: str, status: str) -> None:
        await publish_event(status, petition_id, status=status)
        await asyncio.sleep(random.uniform(0, 0.02))  # answers arrive across the event's handling

    catalog.on_applied = announce
    marie = staff_token("moderator")
    petitions = [str(uuid.uuid4()) for _ in range(30)]
    for petition_id in petitions:
        catalog.statuses[petition_id] = "published"
        await set_petition_state(petition_id, "published")

    async def reported(petition_id: str) -> dict[str, Any]:
        async def sent() -> bool:
            answer = await moderation.post(
                "/api/moderation/reports",
                json={"petition_id": petition_id, "reason_code": "insulting"},
            )
            return answer.status == 202

        await eventually(sent)  # once the state has reached moderation's view
        queue = await moderation.get(
            f"/api/moderation/queue?kind=report&petition_id={petition_id}", headers=bearer(marie)
        )
        items: list[dict[str, Any]] = (await queue.json())["items"]
        assert len(items) == 1, items  # reports of one petition gather on one item
        await claimed(moderation, items[0], marie)
        return items[0]

    chosen = [await reported(petition_id) for petition_id in petitions]

    async def take_down(item: dict[str, Any]) -> tuple[int, str]:
        answer = await moderation.post(
            f"/api/moderation/items/{item['id']}/decision",
            json={"decision": "take-down", "reason_code": "insulting", "reason": "Injurieux."},
            headers=bearer(marie),
        )
        return answer.status, await answer.text()

    answers = await asyncio.gather(*(take_down(item) for item in chosen))
    assert [status for status, _ in answers] == [200] * len(chosen), answers
    rows = await audit_rows(settings)
    assert sorted(str(row["petition_id"]) for row in rows) == sorted(petitions)
    for petition_id in petitions:
        queue = await moderation.get(
            f"/api/moderation/queue?kind=report&petition_id={petition_id}", headers=bearer(marie)
        )
        assert (await queue.json())["items"] == []


async def test_the_secretariat_records_follow_up_steps(
    moderation: Client,
    publish_event: PublishEvent,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    eventually: Eventually,
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    catalog.thresholds[petition_id] = [100_000]
    await publish_event("threshold-reached", petition_id, threshold=100_000, signatures=100_000)
    paul = staff_token("committee-secretariat", subject="paul")

    async def open_follow_ups() -> list[dict[str, Any]]:
        answer = await moderation.get(
            f"/api/moderation/queue?kind=follow-up&petition_id={petition_id}", headers=bearer(paul)
        )
        items: list[dict[str, Any]] = (await answer.json())["items"]
        return items

    await eventually(open_follow_ups)
    decide = f"/api/moderation/petitions/{petition_id}/decisions"
    for step in ("rapporteur-appointed", "examined-in-committee", "classified"):
        answer = await moderation.post(
            decide, json={"decision": "follow-up", "step": step, "note": None}, headers=bearer(paul)
        )
        assert answer.status == 200, await answer.text()
        # The item stays until a final step: classified, or answer published.
        assert bool(await open_follow_ups()) == (step != "classified")
    assert catalog.follow_ups[petition_id] == [
        "rapporteur-appointed",
        "examined-in-committee",
        "classified",
    ]
    marie = staff_token("moderator")
    refused = await moderation.post(
        decide, json={"decision": "follow-up", "step": "classified"}, headers=bearer(marie)
    )
    assert refused.status == 403


async def test_follow_up_steps_wait_for_the_thresholds_and_stop_once_the_matter_ends(
    moderation: Client, staff_token: IssueStaffToken, catalog: FakeCatalog
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    paul = bearer(staff_token("committee-secretariat", subject="paul"))
    decide = f"/api/moderation/petitions/{petition_id}/decisions"

    async def step(name: str) -> Any:
        return await moderation.post(
            decide, json={"decision": "follow-up", "step": name}, headers=paul
        )

    async def refused(name: str, detail: str) -> None:
        answer = await step(name)
        assert answer.status == 409, await answer.text()
        assert answer.content_type == "application/problem+json"
        problem = await answer.json()
        assert problem["type"] == "urn:paraphe:problem:follow-up-not-allowed"
        assert problem["detail"] == detail

    # No threshold reached (the audit's case: a debate recorded on a petition of 0 signatures).
    before = (
        "Le suivi commence quand la pétition atteint 100\u202f000 signatures, le seuil qui la "
        "renvoie en commission : elle ne l'a pas atteint."
    )
    for name in ("debated-in-public-session", "rapporteur-appointed", "answer-published"):
        await refused(name, before)
    assert petition_id not in catalog.follow_ups  # the catalog refused them all
    # The committee's threshold: its steps, not yet a debate in public session.
    catalog.thresholds[petition_id] = [100_000]
    await refused(
        "debated-in-public-session",
        "Un débat en séance publique suppose 500\u202f000 signatures : la pétition n'a pas atteint "
        "ce seuil.",
    )
    assert (await step("examined-in-committee")).status == 200
    assert (await step("rapporteur-appointed")).status == 200  # the order is the committee's
    catalog.thresholds[petition_id] = [100_000, 500_000]
    assert (await step("debated-in-public-session")).status == 200
    assert (await step("answer-published")).status == 200
    # The answer ends the matter: nothing is added after it.
    await refused(
        "classified",
        "Le suivi de cette pétition est terminé (« Réponse publiée ») : aucune étape ne s'y "
        "ajoute.",
    )
    assert catalog.follow_ups[petition_id] == [
        "examined-in-committee",
        "rapporteur-appointed",
        "debated-in-public-session",
        "answer-published",
    ]


# What the catalog answers when a step its rule forbids reaches it: another agent's
# « Classée » recorded meanwhile, after the page offering the step was shown.
ENDED_MEANWHILE: dict[str, Any] = {
    "status": 409,
    "type": "urn:paraphe:problem:follow-up-not-allowed",
    "detail": "Le suivi de cette pétition est terminé (« Classée ») : aucune étape ne s'y ajoute.",
    "petition_status": "published",
}


async def test_a_step_the_catalog_refuses_under_its_lock_is_refused_with_its_reason(
    moderation: Client, staff_token: IssueStaffToken, catalog: FakeCatalog, settings: Any
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    catalog.thresholds[petition_id] = [100_000]
    catalog.refusal = ENDED_MEANWHILE
    answer = await moderation.post(
        f"/api/moderation/petitions/{petition_id}/decisions",
        json={"decision": "follow-up", "step": "examined-in-committee"},
        headers=bearer(staff_token("committee-secretariat", subject="paul")),
    )
    assert answer.status == 409
    problem = await answer.json()
    assert problem["type"] == "urn:paraphe:problem:follow-up-not-allowed"
    assert problem["detail"] == ENDED_MEANWHILE["detail"]
    assert len(catalog.calls) == 1
    assert await audit_rows(settings) == []


@pytest.mark.parametrize(
    ("roles", "status"),
    [
        pytest.param((), 403, id="an agent with no role"),
        pytest.param(("committee-secretariat",), 403, id="a committee secretariat"),
        pytest.param(("moderator",), 403, id="a moderator"),
        pytest.param(("admin",), 200, id="an admin"),
    ],
)
async def test_only_admins_read_the_audit_log(
    moderation: Client, staff_token: IssueStaffToken, roles: tuple[str, ...], status: int
) -> None:
    answer = await moderation.get("/api/moderation/audit", headers=bearer(staff_token(*roles)))
    assert answer.status == status


async def test_the_audit_log_lists_decisions_for_admins(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie", name="Marie")
    await claimed(moderation, item, marie)
    await moderation.post(
        f"/api/moderation/items/{item['id']}/decision",
        json={"decision": "reject", "reason_code": "not-french", "reason": "Texte en anglais."},
        headers=bearer(marie),
    )
    answer = await moderation.get("/api/moderation/audit", headers=bearer(staff_token("admin")))
    [entry] = (await answer.json())["entries"]
    assert entry["actor"] == "marie"
    assert entry["actor_name"] == "Marie"
    assert (entry["decision"], entry["reason_code"], entry["reason"]) == (
        "reject",
        "not-french",
        "Texte en anglais.",
    )


async def test_a_change_of_mind_after_a_lost_answer_still_audits_what_was_applied(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    publish_event: PublishEvent,
    eventually: Eventually,
    settings: Any,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie")
    await claimed(moderation, item, marie)
    decide = f"/api/moderation/items/{item['id']}/decision"
    catalog.failures, catalog.applies_then_fails = 1, True
    publish = {"decision": "publish", "committee": "finances"}
    assert (await moderation.post(decide, json=publish, headers=bearer(marie))).status == 503
    # Marie now rejects it instead; the catalog published it already and refuses.
    reject = {"decision": "reject", "reason_code": "duplicate"}
    assert (await moderation.post(decide, json=reject, headers=bearer(marie))).status == 409
    await publish_event("published", item["petition_id"], status="published", committee="finances")
    [row] = await eventually(lambda: audit_rows(settings))
    assert row["action"] == "publish"
    assert str(row["decision_id"]) == catalog.calls[0]["decision_id"]


async def test_a_catalog_that_hangs_is_given_up_after_the_timeout(
    start_moderation: StartModeration,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
) -> None:
    moderation = await start_moderation(catalog_timeout=0.5)
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie")
    await claimed(moderation, item, marie)
    catalog.delay = 5.0
    started = asyncio.get_running_loop().time()
    answer = await moderation.post(
        f"/api/moderation/items/{item['id']}/decision",
        json={"decision": "publish", "committee": "lois"},
        headers=bearer(marie),
    )
    assert answer.status == 503
    assert asyncio.get_running_loop().time() - started < 3


async def test_a_decision_id_cannot_be_reused_for_another_decision(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    first, second = await submit_petition(), await submit_petition()
    marie = staff_token("moderator")
    decision_id = str(uuid.uuid4())
    for item in (first, second):
        await claimed(moderation, item, marie)
    body = {"decision_id": decision_id, "decision": "publish", "committee": "lois"}
    done = await moderation.post(
        f"/api/moderation/items/{first['id']}/decision", json=body, headers=bearer(marie)
    )
    assert done.status == 200
    reused = await moderation.post(
        f"/api/moderation/items/{second['id']}/decision", json=body, headers=bearer(marie)
    )
    assert reused.status == 409
    assert (await reused.json())["type"] == "urn:paraphe:problem:decision-id-reused"


async def test_a_decision_that_does_not_fit_the_item_is_a_conflict(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator")
    await claimed(moderation, item, marie)
    answer = await moderation.post(
        f"/api/moderation/items/{item['id']}/decision",
        json={"decision": "take-down", "reason_code": "defamatory"},
        headers=bearer(marie),
    )
    assert answer.status == 409
    problem = await answer.json()
    assert problem["type"] == "urn:paraphe:problem:decision-not-for-this-item"
    assert problem["allowed"] == ["publish", "reject"]


async def _reported_item(
    moderation: Client,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    set_petition_state: Any,
    eventually: Eventually,
) -> tuple[str, dict[str, Any], str]:
    """A published petition reported once, its report item claimed by a moderator."""
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    await set_petition_state(petition_id, "published")

    async def reported() -> bool:
        answer = await moderation.post(
            "/api/moderation/reports", json={"petition_id": petition_id, "reason_code": "other"}
        )
        return answer.status == 202

    await eventually(reported)  # once the state has reached moderation's view
    marie = staff_token("moderator")
    queue = f"/api/moderation/queue?kind=report&petition_id={petition_id}"
    [item] = (await (await moderation.get(queue, headers=bearer(marie))).json())["items"]
    await claimed(moderation, item, marie)
    return petition_id, item, marie


TAKE_DOWN = {"decision": "take-down", "reason_code": "insulting", "reason": "Injurieux."}


async def _unanswered_take_down(
    moderation: Client, catalog: FakeCatalog, item: dict[str, Any], agent: str, *, applied: bool
) -> str:
    """A take-down of the item sent to the catalog, whose answer never comes (503), applied
    or not; the address to decide the item."""
    decide = f"/api/moderation/items/{item['id']}/decision"
    catalog.failures, catalog.applies_then_fails = 1, applied
    lost = await moderation.post(decide, json=TAKE_DOWN, headers=bearer(agent))
    assert lost.status == 503
    assert catalog.statuses[item["petition_id"]] == ("hidden" if applied else "published")
    return decide


async def test_a_report_arriving_during_the_review_is_not_dismissed_unread(
    moderation: Client,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    set_petition_state: Any,
    eventually: Eventually,
) -> None:
    petition_id, item, marie = await _reported_item(
        moderation, staff_token, catalog, set_petition_state, eventually
    )
    # The page's dismissal says how many reports it showed.
    page = await moderation.get(
        f"/moderation/items/{item['id']}",
        headers={"Cookie": f"paraphe_staff={marie}", "Accept": "text/html"},
    )
    assert '<input type="hidden" name="reports_seen" value="1">' in await page.text()
    # Another citizen reports while the moderator reads the first one.
    late = await moderation.post(
        "/api/moderation/reports",
        json={"petition_id": petition_id, "reason_code": "insulting", "message": "Injurieux."},
    )
    assert late.status == 202
    decide = f"/api/moderation/items/{item['id']}/decision"
    refused = await moderation.post(
        decide, json={"decision": "dismiss", "reports_seen": 1}, headers=bearer(marie)
    )
    assert refused.status == 409
    problem = await refused.json()
    assert problem["type"] == "urn:paraphe:problem:new-reports"
    assert problem["reports"] == 2
    # Read, then dismissed: both.
    dismissed = await moderation.post(
        decide, json={"decision": "dismiss", "reports_seen": 2}, headers=bearer(marie)
    )
    assert dismissed.status == 200, await dismissed.text()


async def test_a_take_down_left_unanswered_cannot_be_dismissed_unaudited(
    moderation: Client,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    set_petition_state: Any,
    eventually: Eventually,
    settings: Any,
) -> None:
    _, item, marie = await _reported_item(
        moderation, staff_token, catalog, set_petition_state, eventually
    )
    decide = await _unanswered_take_down(moderation, catalog, item, marie, applied=True)
    refused = await moderation.post(decide, json={"decision": "dismiss"}, headers=bearer(marie))
    assert refused.status == 409
    assert (await refused.json())["type"] == "urn:paraphe:problem:decision-pending"
    # Sent again, the take-down is recognised and audited.
    again = await moderation.post(decide, json=TAKE_DOWN, headers=bearer(marie))
    assert again.status == 200, await again.text()
    assert [row["action"] for row in await audit_rows(settings)] == ["take-down"]


async def test_a_step_whose_answer_was_lost_then_changed_is_audited_as_each_was_applied(
    moderation: Client,
    publish_event: PublishEvent,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    eventually: Eventually,
    settings: Any,
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    catalog.thresholds[petition_id] = [100_000]
    paul = staff_token("committee-secretariat", subject="paul", name="Paul")
    decide = f"/api/moderation/petitions/{petition_id}/decisions"
    form_id = str(uuid.uuid4())  # the page's hidden decision id, kept when it is shown again
    catalog.failures, catalog.applies_then_fails = 1, True  # applied, its answer lost
    first = {"decision": "follow-up", "step": "rapporteur-appointed", "decision_id": form_id}
    assert (await moderation.post(decide, json=first, headers=bearer(paul))).status == 503
    # Shown again with the same id, Paul picks the next step instead.
    changed = first | {"step": "examined-in-committee"}
    answer = await moderation.post(decide, json=changed, headers=bearer(paul))
    assert answer.status == 200, await answer.text()
    assert catalog.follow_ups[petition_id] == ["rapporteur-appointed", "examined-in-committee"]
    sent_ids = [call["decision_id"] for call in catalog.calls]
    assert sent_ids[0] == form_id
    assert sent_ids[1] != form_id  # the change is a decision of its own
    # The first step's event, as the catalog publishes it, audits it.
    await publish_event(
        "followed-up", petition_id, status="published", step="rapporteur-appointed", note=None
    )

    async def both_audited() -> list[asyncpg.Record]:
        rows = await audit_rows(settings)
        return rows if len(rows) == 2 else []

    rows = await eventually(both_audited)
    audited = {str(row["decision_id"]): json.loads(row["details"])["step"] for row in rows}
    assert audited == {form_id: "rapporteur-appointed", sent_ids[1]: "examined-in-committee"}
    assert {row["actor"] for row in rows} == {"paul"}


async def test_a_take_down_from_the_petition_page_whose_answer_was_lost_is_audited(
    moderation: Client,
    publish_event: PublishEvent,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    eventually: Eventually,
    settings: Any,
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    marie = staff_token("moderator", subject="marie", name="Marie")
    catalog.failures, catalog.applies_then_fails = 1, True  # applied, its answer lost
    take_down = {"decision": "take-down", "reason_code": "insulting", "reason": "Injurieux."}
    lost = await moderation.post(
        f"/api/moderation/petitions/{petition_id}/decisions", json=take_down, headers=bearer(marie)
    )
    assert lost.status == 503
    await publish_event(
        "hidden", petition_id, status="hidden", reason_code="insulting", reason="Injurieux."
    )
    [row] = await eventually(lambda: audit_rows(settings))
    assert (row["action"], row["actor"], row["reason"]) == ("take-down", "marie", "Injurieux.")
    assert str(row["decision_id"]) == catalog.calls[0]["decision_id"]
    details = json.loads(row["details"])
    assert details["actor_name"] == "Marie"
    assert details["confirmed_by"].startswith("event ")


async def test_a_take_down_the_catalog_never_applied_no_longer_blocks_the_dismissal(
    moderation: Client,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    set_petition_state: Any,
    eventually: Eventually,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, item, marie = await _reported_item(
        moderation, staff_token, catalog, set_petition_state, eventually
    )
    decide = await _unanswered_take_down(moderation, catalog, item, marie, applied=False)
    # Once the catalog is surely done with it (here at once), the petition, still published,
    # tells the take-down was never applied: Marie, having changed her mind, may dismiss.
    monkeypatch.setattr(moderation_decisions, "UNANSWERED_AFTER", 0.0)
    dismissed = await moderation.post(decide, json={"decision": "dismiss"}, headers=bearer(marie))
    assert dismissed.status == 200, await dismissed.text()
    assert [row["action"] for row in await audit_rows(settings)] == ["dismiss"]


async def test_a_take_down_applied_unanswered_settles_the_item_instead_of_a_dismissal(
    moderation: Client,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    set_petition_state: Any,
    eventually: Eventually,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, item, marie = await _reported_item(
        moderation, staff_token, catalog, set_petition_state, eventually
    )
    decide = await _unanswered_take_down(moderation, catalog, item, marie, applied=True)
    monkeypatch.setattr(moderation_decisions, "UNANSWERED_AFTER", 0.0)
    refused = await moderation.post(decide, json={"decision": "dismiss"}, headers=bearer(marie))
    assert refused.status == 409
    assert (await refused.json())["type"] == "urn:paraphe:problem:already-resolved"
    assert [row["action"] for row in await audit_rows(settings)] == ["take-down"]


async def test_a_take_down_event_audits_the_decision_it_names_not_a_stale_one(
    moderation: Client,
    staff_token: IssueStaffToken,
    catalog: FakeCatalog,
    set_petition_state: Any,
    publish_event: PublishEvent,
    eventually: Eventually,
    settings: Any,
) -> None:
    petition_id, item, marie = await _reported_item(
        moderation, staff_token, catalog, set_petition_state, eventually
    )
    # Paul's take-down from the petition's page: not applied, not answered; kept as sent.
    paul = staff_token("moderator", subject="paul")
    catalog.failures = 1
    stale = await moderation.post(
        f"/api/moderation/petitions/{petition_id}/decisions",
        json={"decision": "take-down", "reason_code": "insulting"},
        headers=bearer(paul),
    )
    assert stale.status == 503
    # Marie takes it down from the report, for another reason; the catalog's event names hers.
    applied = await moderation.post(
        f"/api/moderation/items/{item['id']}/decision",
        json={"decision": "take-down", "reason_code": "advertising"},
        headers=bearer(marie),
    )
    assert applied.status == 200, await applied.text()
    await publish_event(
        "hidden", petition_id, status="hidden", reason_code="advertising",
        decision_id=catalog.calls[-1]["decision_id"],
    )  # fmt: skip

    async def stale_let_go() -> bool:
        connection = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            left = await connection.fetchval(
                "SELECT count(*) FROM moderation.pending_petition_decisions"
            )
        finally:
            await connection.close()
        return bool(left == 0)

    await eventually(stale_let_go)
    [row] = await audit_rows(settings)  # Marie's alone: Paul's was never applied
    assert row["action"] == "take-down"
    assert row["actor"] != "paul"
    assert json.loads(row["details"])["reason_code"] == "advertising"
