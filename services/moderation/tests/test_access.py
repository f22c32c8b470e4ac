"""Who may do what: every staff endpoint against a citizen, an author, each staff role."""

from __future__ import annotations

import html
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from paraphe_common.tokens import AUTHOR, SIGNER, TokenIssuer
from paraphe_devstack.keys import SigningKey, new_signer_key

Client = TestClient[web.Request, web.Application]
SubmitPetition = Callable[..., Awaitable[dict[str, Any]]]
IssueStaffToken = Callable[..., str]
PublishEvent = Callable[..., Awaitable[Any]]
Eventually = Callable[..., Awaitable[Any]]
SetState = Callable[[str, str], Awaitable[None]]

PEOPLE = ("anonymous", "citizen", "author", "no-role", "moderator", "secretariat", "admin")


@pytest.fixture
def token_of(signing_key: SigningKey, staff_token: IssueStaffToken) -> Callable[[str], str]:
    issuer = TokenIssuer(signing_key.private_pem, signing_key.kid)

    def token(person: str) -> str:
        makers: dict[str, Callable[[], str]] = {
            "anonymous": lambda: "",
            "citizen": lambda: new_signer_key().issuer().issue(SIGNER, "s" * 64, 600),
            "author": lambda: issuer.issue(AUTHOR, "author-1", 600),
            "no-role": lambda: staff_token(),
            "moderator": lambda: staff_token("moderator"),
            "secretariat": lambda: staff_token("committee-secretariat"),
            "admin": lambda: staff_token("admin"),
        }
        return makers[person]()

    return token


def expected(allowed: set[str], person: str) -> set[int]:
    if person in allowed:
        return {200, 204}
    return {401} if person in ("anonymous", "citizen", "author") else {403}


@pytest.mark.parametrize("person", PEOPLE)
async def test_each_endpoint_answers_only_the_roles_it_serves(
    moderation: Client,
    submit_petition: SubmitPetition,
    publish_event: PublishEvent,
    eventually: Eventually,
    token_of: Callable[[str], str],
    catalog: Any,
    person: str,
) -> None:
    review = await submit_petition()
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    catalog.thresholds[petition_id] = [100_000]
    await publish_event("threshold-reached", petition_id, threshold=100_000, signatures=1)
    admin = {"Authorization": f"Bearer {token_of('admin')}"}

    async def follow_up_item() -> Any:
        answer = await moderation.get(
            f"/api/moderation/queue?kind=follow-up&petition_id={petition_id}", headers=admin
        )
        return (await answer.json())["items"]

    [follow_up] = await eventually(follow_up_item)
    token = token_of(person)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    staff = {"moderator", "secretariat", "admin"}
    moderators = {"moderator", "admin"}
    secretariats = {"secretariat", "admin"}
    checks: list[tuple[str, str, Any, set[str]]] = [
        ("GET", "/api/moderation/queue", None, staff),
        ("GET", f"/api/moderation/items/{review['id']}", None, moderators),
        ("GET", f"/api/moderation/items/{follow_up['id']}", None, secretariats),
        ("POST", f"/api/moderation/items/{review['id']}/claim", None, moderators),
        ("POST", f"/api/moderation/items/{follow_up['id']}/claim", None, secretariats),
        ("POST", f"/api/moderation/items/{review['id']}/release", None, moderators),
        ("POST", "/api/moderation/queue/claim-next?kind=review", None, moderators),
        ("POST", "/api/moderation/queue/claim-next?kind=follow-up", None, secretariats),
        ("GET", "/api/moderation/audit", None, {"admin"}),
        (
            "POST",
            f"/api/moderation/petitions/{petition_id}/decisions",
            {
                "decision": "follow-up",
                "step": "rapporteur-appointed",
                "decision_id": str(uuid.uuid4()),
            },
            secretariats,
        ),
        (
            "POST",
            f"/api/moderation/petitions/{petition_id}/decisions",
            {"decision": "take-down", "reason_code": "defamatory"},
            moderators,
        ),
    ]
    for method, url, body, allowed in checks:
        answer = await moderation.request(method, url, json=body, headers=headers)
        assert answer.status in expected(allowed, person), (method, url, await answer.text())
        if answer.status >= 400:
            assert answer.content_type == "application/problem+json"


SEES: dict[str, set[str]] = {
    "moderator": {"review", "report"},
    "secretariat": {"follow-up"},
    "admin": {"review", "report", "follow-up"},
}


@pytest.mark.parametrize("person", sorted(SEES))
async def test_the_queue_shows_each_role_only_the_items_it_may_open(
    moderation: Client,
    submit_petition: SubmitPetition,
    publish_event: PublishEvent,
    set_petition_state: SetState,
    eventually: Eventually,
    token_of: Callable[[str], str],
    person: str,
) -> None:
    review = await submit_petition(title="Une pétition pas encore publiée")
    published = str(uuid.uuid4())
    await set_petition_state(published, "published")
    await publish_event("threshold-reached", published, threshold=100_000, signatures=1)

    async def reported() -> bool:
        answer = await moderation.post(
            "/api/moderation/reports", json={"petition_id": published, "reason_code": "other"}
        )
        return answer.status == 202

    await eventually(reported)
    admin = {"Authorization": f"Bearer {token_of('admin')}"}

    async def every_item() -> dict[str, dict[str, Any]] | None:
        answer = await moderation.get("/api/moderation/queue?per_page=100", headers=admin)
        mine = [
            i
            for i in (await answer.json())["items"]
            if i["petition_id"] in (review["petition_id"], published)
        ]
        return {i["kind"]: i for i in mine} if len(mine) == 3 else None

    items = await eventually(every_item)
    sees = SEES[person]
    token = token_of(person)
    api = {"Authorization": f"Bearer {token}"}
    # The whole queue: only the kinds the role works on, whatever the petition.
    for query in ("", "status=all", f"petition_id={review['petition_id']}"):
        answer = await moderation.get(f"/api/moderation/queue?per_page=100&{query}", headers=api)
        assert answer.status == 200
        assert {i["kind"] for i in (await answer.json())["items"]} <= sees, query
    # Each kind: listed when its items may be opened, a 403 problem otherwise.
    for kind, item in items.items():
        listed = await moderation.get(f"/api/moderation/queue?kind={kind}", headers=api)
        opened = await moderation.get(f"/api/moderation/items/{item['id']}", headers=api)
        if kind in sees:
            assert listed.status == opened.status == 200
            assert item["id"] in {i["id"] for i in (await listed.json())["items"]}
        else:
            assert listed.status == opened.status == 403
            assert listed.content_type == "application/problem+json"
            problem = await listed.json()
            assert problem["type"] == "urn:paraphe:problem:missing-role"
            assert problem["detail"] == "Votre compte n'a pas accès à cette file."
            assert problem["kinds"] == [k for k in ("review", "report", "follow-up") if k in sees]
    # The pages: a tab for each kind seen, and a French page for one that is not.
    page = {"Cookie": f"paraphe_staff={token}", "Accept": "text/html"}
    queue = await moderation.get("/moderation/", headers=page)
    assert queue.status == 200
    text = await queue.text()
    for kind in ("review", "report", "follow-up"):
        assert (f'href="/moderation/?kind={kind}"' in text) == (kind in sees), kind
        answer = await moderation.get(f"/moderation/?kind={kind}", headers=page)
        if kind in sees:
            assert answer.status == 200
        else:
            assert answer.status == 403
            assert "text/html" in answer.headers["Content-Type"]
            refused = html.unescape(await answer.text())
            assert "Votre compte n'a pas accès à cette file." in refused
            assert "Une pétition pas encore publiée" not in refused
    # A petition's page lists only the items its reader may open.
    sheet = html.unescape(
        await (
            await moderation.get(f"/moderation/petitions/{review['petition_id']}", headers=page)
        ).text()
    )
    assert (f"/moderation/items/{review['id']}" in sheet) == ("review" in sees)


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/api/moderation/queue?kind=everything", None),
        ("GET", "/api/moderation/queue?status=lost", None),
        ("GET", "/api/moderation/queue?page=0", None),
        ("GET", "/api/moderation/queue?page=abc", None),
        ("GET", "/api/moderation/queue?per_page=1000", None),
        ("GET", "/api/moderation/queue?petition_id=xyz", None),
        ("GET", "/api/moderation/queue?petition_id=", None),
        ("GET", "/api/moderation/queue?kind=", None),
        ("GET", "/api/moderation/audit?petition_id=", None),
        ("GET", "/api/moderation/items/not-a-uuid", None),
        ("GET", f"/api/moderation/items/{uuid.uuid4()}", None),
        ("POST", f"/api/moderation/items/{uuid.uuid4()}/claim", None),
        ("POST", f"/api/moderation/items/{uuid.uuid4()}/decision", {"decision": "dismiss"}),
        ("POST", f"/api/moderation/items/{uuid.uuid4()}/decision", {"decision": "explode"}),
        ("POST", f"/api/moderation/items/{uuid.uuid4()}/decision", []),
        (
            "POST",
            f"/api/moderation/items/{uuid.uuid4()}/decision",
            {"decision": "publish", "committee": {}},
        ),
        (
            "POST",
            f"/api/moderation/petitions/{uuid.uuid4()}/decisions",
            {"decision": "take-down", "reason_code": ["x"]},
        ),
        ("POST", "/api/moderation/reports", {"petition_id": str(uuid.uuid4()), "reason_code": {}}),
        ("POST", f"/api/moderation/items/{uuid.uuid4()}/decision", "\u0000"),
        ("POST", f"/api/moderation/petitions/{uuid.uuid4()}/decisions", {"decision": "publish"}),
        (
            "POST",
            f"/api/moderation/petitions/{uuid.uuid4()}/decisions",
            {"decision": "follow-up", "step": "classified", "note": "x" * 2001},
        ),
        (
            "POST",
            f"/api/moderation/petitions/{uuid.uuid4()}/decisions",
            {"decision": "follow-up", "step": "classified"},
        ),
        ("POST", "/api/moderation/queue/claim-next?kind=x", None),
        ("DELETE", "/api/moderation/queue", None),
        ("GET", "/api/moderation/nothing-here", None),
    ],
)
async def test_bad_requests_get_a_problem_never_a_500(
    moderation: Client, staff_token: IssueStaffToken, method: str, url: str, body: Any
) -> None:
    headers = {"Authorization": f"Bearer {staff_token('admin')}"}
    answer = await moderation.request(method, url, json=body, headers=headers)
    assert 400 <= answer.status < 500, await answer.text()
    assert answer.content_type == "application/problem+json"


async def test_a_change_made_with_the_session_cookie_must_come_from_the_site(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    item = await submit_petition()
    cookie = {"Cookie": f"paraphe_staff={staff_token('moderator')}"}
    claim = f"/api/moderation/items/{item['id']}/claim"
    evil = {"Origin": "https://evil.example"}
    # An Authorization header that carries no bearer token spares nothing: the cookie is used.
    for forged in (
        {},
        evil,
        evil | {"Authorization": "Bearer "},
        evil | {"Authorization": "Basic eDp5"},
    ):
        answer = await moderation.post(claim, headers=cookie | forged)
        assert answer.status == 403
        assert (await answer.json())["type"] == "urn:paraphe:problem:cross-site-form"
    answer = await moderation.post(claim, headers=cookie | {"Origin": "http://petitions.example"})
    assert answer.status == 200
    # Reading needs no Origin.
    assert (await moderation.get("/api/moderation/queue", headers=cookie)).status == 200
