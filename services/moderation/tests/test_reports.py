"""Public reports: anonymous, only of published petitions, bounded, rate-limited per client."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
StartModeration = Callable[..., Awaitable[Client]]
SetState = Callable[[str, str], Awaitable[None]]
Eventually = Callable[..., Awaitable[Any]]
IssueStaffToken = Callable[..., str]


@pytest.fixture
async def published(
    moderation: Client, set_petition_state: SetState, eventually: Eventually
) -> str:
    """A published petition, once moderation's view of the states knows it."""
    petition_id = str(uuid.uuid4())
    await set_petition_state(petition_id, "published")

    async def known() -> bool:
        answer = await moderation.post(
            "/api/moderation/reports", json={"petition_id": petition_id, "reason_code": "x"}
        )
        return answer.status == 422  # not 404: the petition is known

    await eventually(known)
    return petition_id


async def report(client: Client, body: Any, address: str = "203.0.113.7") -> Any:
    return await client.post(
        "/api/moderation/reports", json=body, headers={"X-Forwarded-For": address}
    )


async def test_reports_of_a_petition_gather_on_one_item(
    moderation: Client, published: str, staff_token: IssueStaffToken
) -> None:
    for reason in ("insulting", "defamatory", "insulting"):
        answer = await report(
            moderation, {"petition_id": published, "reason_code": reason, "message": " Grave. "}
        )
        assert answer.status == 202, await answer.text()
    headers = {"Authorization": f"Bearer {staff_token('moderator')}"}
    listed = await moderation.get(
        f"/api/moderation/queue?kind=report&petition_id={published}", headers=headers
    )
    [item] = (await listed.json())["items"]
    assert item["reports"] == 3
    detail = await (
        await moderation.get(f"/api/moderation/items/{item['id']}", headers=headers)
    ).json()
    assert sorted(r["reason_code"] for r in detail["report_list"]) == [
        "defamatory", "insulting", "insulting"
    ]  # fmt: skip
    assert {r["message"] for r in detail["report_list"]} == {"Grave."}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"reason_code": "other"}, 404, id="no petition"),
        pytest.param({"petition_id": "nope", "reason_code": "other"}, 404, id="not a uuid"),
        pytest.param({"petition_id": str(uuid.uuid4()), "reason_code": "other"}, 404, id="unknown"),
        pytest.param("a string", 422, id="not an object"),
        pytest.param({"petition_id": "PUBLISHED", "reason_code": "spam"}, 422, id="unknown reason"),
        pytest.param(
            {"petition_id": "PUBLISHED", "reason_code": "other", "message": "x" * 1001},
            422,
            id="message too long",
        ),
        pytest.param(
            {"petition_id": "PUBLISHED", "reason_code": "other", "message": 12}, 422, id="number"
        ),
    ],
)
async def test_bad_reports_get_a_clear_problem(
    moderation: Client, published: str, body: Any, status: int
) -> None:
    if isinstance(body, dict) and body.get("petition_id") == "PUBLISHED":
        body = body | {"petition_id": published}
    answer = await report(moderation, body)
    assert answer.status == status
    assert answer.content_type == "application/problem+json"


@pytest.mark.parametrize("character", ["\x00", "\x0b", "\x7f", "\ud800"])
async def test_a_message_with_a_control_character_is_refused_naming_the_field(
    moderation: Client, published: str, character: str
) -> None:
    body = {"petition_id": published, "reason_code": "other", "message": f"Injures{character}."}
    answer = await report(moderation, body)
    assert answer.status == 422, await answer.text()
    problem = await answer.json()
    assert problem["field"] == "message"
    assert problem["detail"].startswith("Ce texte contient un caractère invisible non autorisé")


async def test_only_published_petitions_can_be_reported(
    moderation: Client, set_petition_state: SetState, eventually: Eventually
) -> None:
    petition_id = str(uuid.uuid4())
    await set_petition_state(petition_id, "closed")

    async def refused() -> Any:
        answer = await report(moderation, {"petition_id": petition_id, "reason_code": "other"})
        return answer if answer.status != 404 else None

    answer = await eventually(refused)
    assert answer.status == 409


async def test_malformed_bodies_are_refused_without_a_500(moderation: Client) -> None:
    url = "/api/moderation/reports"
    not_json = await moderation.post(url, data=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status == 400
    bad_utf8 = await moderation.post(
        url, data=b'{"message": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert bad_utf8.status == 400
    form = await moderation.post(url, data={"petition_id": "x"})
    assert form.status == 415
    huge = await moderation.post(
        url, data=b"[" + b"1," * 100_000 + b"1]", headers={"Content-Type": "application/json"}
    )
    assert huge.status == 413
    nested = await moderation.post(
        url, data=b"[" * 5_000 + b"]" * 5_000, headers={"Content-Type": "application/json"}
    )
    assert nested.status == 400
    unknown_charset = await moderation.post(
        url, data=b"{}", headers={"Content-Type": "application/json; charset=nope"}
    )
    assert unknown_charset.status == 400
    not_gzip = await moderation.post(
        url,
        data=b"{}",
        # A connection of its own: aiohttp closes one whose request body it could not decode.
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Connection": "close",
        },
    )
    assert not_gzip.status == 400
    assert not_gzip.content_type == "application/problem+json"


async def test_a_client_sending_too_many_reports_is_told_to_wait(
    start_moderation: StartModeration, set_petition_state: SetState, eventually: Eventually
) -> None:
    moderation = await start_moderation(reports_per_hour=3)
    petition_id = str(uuid.uuid4())
    await set_petition_state(petition_id, "published")
    body = {"petition_id": petition_id, "reason_code": "other"}

    async def accepted() -> bool:
        # From a client of its own: an attempt made before the state was known (404) counts
        # against its client's budget too, and would leave the one below short.
        answer = await report(moderation, body, "198.51.100.9")
        return bool(answer.status == 202)

    await eventually(accepted)  # the petition's state is known
    statuses = [(await report(moderation, body, "198.51.100.1")).status for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    limited = await report(moderation, body, "198.51.100.1")
    assert limited.status == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 3600
    assert (await limited.json())["type"] == "urn:paraphe:problem:too-many-reports"
    # Another client is not held back; the proxy's own hop is the one trusted.
    assert (await report(moderation, body, "198.51.100.2")).status == 202
    assert (await report(moderation, body, "198.51.100.1, 198.51.100.3")).status == 202
    metrics = await (await moderation.get("/metrics")).text()
    assert "moderation_reports_rate_limited_total 2.0" in metrics
