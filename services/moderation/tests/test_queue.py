"""The queue: fed by petition events, claimed by one agent at a time, its age shown."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from paraphe_devstack.servers import NatsServer

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


async def queue_of(client: Client, token: str, query: str = "") -> list[dict[str, Any]]:
    answer = await client.get(f"/api/moderation/queue?{query}", headers=bearer(token))
    assert answer.status == 200, await answer.text()
    items: list[dict[str, Any]] = (await answer.json())["items"]
    return items


async def test_a_submitted_petition_becomes_a_review_item_with_a_suggested_committee(
    submit_petition: SubmitPetition,
) -> None:
    item = await submit_petition(
        title="Rouvrir les petites lignes de train",
        body="Le train est le transport le moins émetteur de carbone : relançons-le.",
        suggested_committee="affaires-economiques",
    )
    assert item["kind"] == "review"
    assert item["title"] == "Rouvrir les petites lignes de train"
    assert item["suggested_committee"] == "developpement-durable"
    assert item["author_committee"] == "affaires-economiques"
    assert item["committee_scores"][0]["committee"] == "developpement-durable"
    assert item["age_seconds"] >= 0
    assert item["claimed_by"] is None
    assert item["decisions"] == ["publish", "reject"]


async def test_an_event_delivered_twice_makes_one_item(
    moderation: Client,
    jetstream: Any,
    staff_token: IssueStaffToken,
    eventually: Eventually,
) -> None:
    petition_id = str(uuid.uuid4())
    body = json.dumps(
        {"id": str(uuid.uuid4()), "kind": "submitted", "petition_id": petition_id,
         "at": "2026-11-23T10:00:00+00:00", "status": "submitted", "title": "Une pétition",
         "body": "Un texte.", "suggested_committee": None,
         "submitted_at": "2026-11-23T10:00:00+00:00"}
    ).encode()  # fmt: skip
    # Without a message id, JetStream keeps both: the queue must recognise the event id.
    await jetstream.publish("petitions.events.submitted", body)
    await jetstream.publish("petitions.events.submitted", body)
    await jetstream.publish("petitions.events.submitted", b"not json")
    token = staff_token("moderator")
    await eventually(lambda: queue_of(moderation, token, f"petition_id={petition_id}"))
    await asyncio.sleep(0.5)  # time for the second copy to arrive
    items = await queue_of(moderation, token, f"petition_id={petition_id}")
    assert len(items) == 1
    # The item's age counts from the submission, not from its arrival in the queue.
    assert items[0]["created_at"].startswith("2026-11-23T10:00:00")


async def test_threshold_reached_makes_a_follow_up_item_for_the_secretariat(
    moderation: Client,
    publish_event: PublishEvent,
    staff_token: IssueStaffToken,
    eventually: Eventually,
) -> None:
    petition_id = str(uuid.uuid4())
    for _ in range(2):  # the counter may publish it again: one item
        await publish_event(
            "threshold-reached", petition_id, threshold=100_000, signatures=100_003,
            reached_at="2026-11-20T08:00:00+00:00",
        )  # fmt: skip
    secretariat = staff_token("committee-secretariat")
    items = await eventually(
        lambda: queue_of(moderation, secretariat, f"kind=follow-up&petition_id={petition_id}")
    )
    await asyncio.sleep(0.3)
    items = await queue_of(moderation, secretariat, f"kind=follow-up&petition_id={petition_id}")
    assert [(i["kind"], i["threshold"], i["signatures"]) for i in items] == [
        ("follow-up", 100_000, 100_003)
    ]
    assert items[0]["age_seconds"] > 3 * 24 * 3600  # reached three days ago


async def test_a_published_petition_closes_its_review_item(
    moderation: Client,
    submit_petition: SubmitPetition,
    publish_event: PublishEvent,
    staff_token: IssueStaffToken,
    eventually: Eventually,
) -> None:
    item = await submit_petition()
    await publish_event("published", item["petition_id"], status="published")
    token = staff_token("moderator")

    async def resolved() -> list[dict[str, Any]]:
        return await queue_of(
            moderation, token, f"status=resolved&petition_id={item['petition_id']}"
        )

    [closed] = await eventually(resolved)
    assert closed["resolution"] == "published"
    assert await queue_of(moderation, token, f"petition_id={item['petition_id']}") == []


async def test_two_moderators_claiming_at_once_one_wins(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie", name="Marie")
    ines = staff_token("admin", subject="ines", name="Inès")
    answers = await asyncio.gather(
        *(
            moderation.post(f"/api/moderation/items/{item['id']}/claim", headers=bearer(t))
            for t in (marie, ines) * 5
        )
    )
    winners = {(await a.json())["claimed_by"] for a in answers if a.status == 200}
    assert len(winners) == 1
    refused = [a for a in answers if a.status != 200]
    assert refused
    assert {a.status for a in refused} == {409}
    problem = await refused[0].json()
    assert problem["type"] == "urn:paraphe:problem:already-claimed"
    assert problem["claimed_by_name"] in {"Marie", "Inès"}


async def test_claim_next_hands_each_item_to_one_moderator(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    items = [await submit_petition(title=f"Pétition numéro {n}") for n in range(3)]
    tokens = [staff_token("moderator", subject=f"m{n}") for n in range(5)]
    answers = await asyncio.gather(
        *(
            moderation.post("/api/moderation/queue/claim-next?kind=review", headers=bearer(t))
            for t in tokens
        )
    )
    claimed = [(await a.json())["item"] for a in answers]
    taken = [c["id"] for c in claimed if c is not None]
    assert sorted(taken) == sorted(i["id"] for i in items)  # each once, none twice
    assert claimed.count(None) == 2


async def test_a_double_click_on_take_the_oldest_claims_one_item(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    for n in range(3):
        await submit_petition(title=f"Pétition numéro {n}")
    marie = staff_token("moderator", subject="marie")
    url = "/api/moderation/queue/claim-next?kind=review"
    answers = await asyncio.gather(*(moderation.post(url, headers=bearer(marie)) for _ in range(2)))
    assert {(await a.json())["item"]["id"] for a in answers} == {
        (await answers[0].json())["item"]["id"]
    }
    mine = await queue_of(moderation, marie, "kind=review")
    assert [item["claimed_by"] for item in mine].count("marie") == 1


async def test_a_claim_expires_and_another_moderator_may_take_the_item(
    start_moderation: StartModeration,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    settings: Any,
) -> None:
    item = await submit_petition()
    pool = await asyncpg.connect(settings.database_url.get_secret_value())
    moderation = await start_moderation(claim_lease_seconds=10)
    marie, paul = staff_token("moderator", subject="marie"), staff_token("moderator", subject="p")
    url = f"/api/moderation/items/{item['id']}/claim"
    taken = await (await moderation.post(url, headers=bearer(marie))).json()
    assert taken["claimed_by"] == "marie"
    assert (await moderation.post(url, headers=bearer(paul))).status == 409
    # Ten seconds later (the lease), as if Marie had walked away.
    await pool.execute(
        "UPDATE moderation.queue_items SET claim_expires_at = now() - interval '1 second'"
        " WHERE id = $1",
        uuid.UUID(item["id"]),
    )
    await pool.close()
    listed = await queue_of(moderation, paul, f"petition_id={item['petition_id']}")
    assert listed[0]["claimed_by"] is None
    answer = await moderation.post(url, headers=bearer(paul))
    assert answer.status == 200
    assert (await answer.json())["claimed_by"] == "p"


async def test_a_moderator_releases_only_their_own_claim(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    item = await submit_petition()
    marie, paul = staff_token("moderator", subject="marie"), staff_token("moderator", subject="p")
    await moderation.post(f"/api/moderation/items/{item['id']}/claim", headers=bearer(marie))
    release = f"/api/moderation/items/{item['id']}/release"
    assert (await moderation.post(release, headers=bearer(paul))).status == 409
    assert (await moderation.post(release, headers=bearer(marie))).status == 204
    claim = await moderation.post(f"/api/moderation/items/{item['id']}/claim", headers=bearer(paul))
    assert claim.status == 200


async def test_the_queue_metrics_show_depth_and_age(
    moderation: Client, submit_petition: SubmitPetition, eventually: Eventually
) -> None:
    await submit_petition()

    async def metrics() -> str | None:
        text = await (await moderation.get("/metrics")).text()
        return text if 'moderation_queue_items{kind="review"} 1.0' in text else None

    text = await eventually(metrics)
    assert 'moderation_queue_items{kind="report"} 0.0' in text
    assert 'moderation_queue_oldest_age_seconds{kind="review"}' in text
    assert 'moderation_decisions_total{decision="publish"} 0.0' in text


async def test_the_queue_is_fed_again_after_nats_restarts(
    moderation: Client,
    nats_server: NatsServer,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
) -> None:
    await submit_petition(title="Avant le redémarrage")
    nats_server.stop()
    nats_server.start()  # same port, same store: the stream and the durable consumer remain
    # The test's own publisher reconnects as well; the consumer fetches again.
    item = await submit_petition(title="Après le redémarrage")
    assert item["title"] == "Après le redémarrage"
    readiness = await moderation.get("/readyz")
    assert readiness.status == 200


async def test_an_item_without_a_title_takes_the_catalogs_when_it_is_shown(
    moderation: Client,
    publish_event: PublishEvent,
    staff_token: IssueStaffToken,
    eventually: Eventually,
    catalog: Any,
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    await publish_event("threshold-reached", petition_id, threshold=100_000, signatures=100_000)
    paul = staff_token("committee-secretariat")
    [item] = await eventually(lambda: queue_of(moderation, paul, f"petition_id={petition_id}"))
    assert item["title"] == ""
    page = await moderation.get(
        f"/moderation/items/{item['id']}",
        headers={"Cookie": f"paraphe_staff={paul}", "Accept": "text/html"},
    )
    assert page.status == 200
    [item] = await queue_of(moderation, paul, f"petition_id={petition_id}")
    assert item["title"] == "Une pétition du catalogue"


async def test_a_submission_delivered_after_its_publication_is_not_left_open(
    moderation: Client,
    publish_event: PublishEvent,
    set_petition_state: Any,
    staff_token: IssueStaffToken,
    eventually: Eventually,
) -> None:
    petition_id = str(uuid.uuid4())
    await set_petition_state(petition_id, "published")
    token = staff_token("moderator")

    async def settled_elsewhere() -> bool:
        # Once moderation's view of the states knows it (a report is then accepted).
        answer = await moderation.post(
            "/api/moderation/reports", json={"petition_id": petition_id, "reason_code": "?"}
        )
        return bool(answer.status == 422)

    await eventually(settled_elsewhere)
    await publish_event("submitted", petition_id, status="submitted", title="Tardive", body="x")
    query = f"status=resolved&petition_id={petition_id}"
    [item] = await eventually(lambda: queue_of(moderation, token, query))
    assert item["resolution"] == "published"
    assert await queue_of(moderation, token, f"petition_id={petition_id}") == []


async def test_a_take_down_ends_the_follow_up_of_its_petition(
    moderation: Client,
    publish_event: PublishEvent,
    staff_token: IssueStaffToken,
    eventually: Eventually,
) -> None:
    petition_id = str(uuid.uuid4())
    await publish_event("threshold-reached", petition_id, threshold=100_000, signatures=100_000)
    secretariat = staff_token("committee-secretariat")
    query = f"kind=follow-up&petition_id={petition_id}"
    await eventually(lambda: queue_of(moderation, secretariat, query))
    # The catalogue records no follow-up step for a petition taken down: nothing is left to do.
    await publish_event("hidden", petition_id, status="hidden", reason_code="publicite")
    [item] = await eventually(lambda: queue_of(moderation, secretariat, f"status=resolved&{query}"))
    assert item["resolution"] == "hidden"
    assert await queue_of(moderation, secretariat, query) == []


async def test_a_threshold_reached_after_the_take_down_leaves_nothing_to_follow(
    moderation: Client,
    publish_event: PublishEvent,
    set_petition_state: Any,
    staff_token: IssueStaffToken,
    eventually: Eventually,
) -> None:
    petition_id = str(uuid.uuid4())
    await set_petition_state(petition_id, "hidden")

    async def known_hidden() -> bool:
        # Once moderation's view of the states knows it (a report is then refused as such).
        answer = await moderation.post(
            "/api/moderation/reports", json={"petition_id": petition_id, "reason_code": "?"}
        )
        return bool(answer.status == 409)

    await eventually(known_hidden)
    # Signatures taken before the take-down, counted after it.
    await publish_event("threshold-reached", petition_id, threshold=100_000, signatures=100_000)
    secretariat = staff_token("committee-secretariat")
    query = f"kind=follow-up&petition_id={petition_id}"
    [item] = await eventually(lambda: queue_of(moderation, secretariat, f"status=resolved&{query}"))
    assert item["resolution"] == "hidden"
    assert await queue_of(moderation, secretariat, query) == []
