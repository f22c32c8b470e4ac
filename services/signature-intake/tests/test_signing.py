"""Signing through intake: one signature per person and petition, whatever happens."""

from __future__ import annotations

import asyncio
import inspect
import signal
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

import paraphe_common.app
from paraphe_common.app import FAST_ROUTE
from paraphe_common.marks import SIGNED_VALUE, mark_of
from paraphe_common.tokens import AUTHOR, TokenIssuer
from paraphe_common.velocity import SIGNING_VELOCITY
from paraphe_devstack.checks import assert_probes_answer
from paraphe_devstack.keys import SigningKey, new_signer_key
from paraphe_devstack.servers import NatsServer, RedisServer
from paraphe_signature_intake.signatures import PENDING, dedupe_key

if TYPE_CHECKING:
    from conftest import IntakeUnderTest, StartIntake


async def test_boots_and_answers_its_probes(intake: IntakeUnderTest, open_petition: str) -> None:
    await assert_probes_answer(intake.client, ["nats", "petition-states", "redis"])


async def test_a_first_signature_is_accepted_and_a_repeat_is_already_signed(
    intake: IntakeUnderTest, open_petition: str
) -> None:
    assert await intake.sign(open_petition, "signer-1") == (
        202,
        {"petition_id": open_petition, "status": "accepted"},
    )
    repeats = [await intake.sign(open_petition, "signer-1") for _ in range(3)]
    assert repeats == [(200, {"petition_id": open_petition, "status": "already-signed"})] * 3
    assert await intake.stored_signatures() == 1


async def test_the_signer_can_ask_whether_they_signed(
    intake: IntakeUnderTest, open_petition: str
) -> None:
    headers = {"Authorization": f"Bearer {intake.signer_token('signer-me')}"}
    url = f"/api/petitions/{open_petition}/signatures/me"
    assert (await (await intake.client.get(url, headers=headers)).json())["signed"] is False
    await intake.sign(open_petition, "signer-me")
    assert (await (await intake.client.get(url, headers=headers)).json())["signed"] is True


@pytest.mark.parametrize(
    ("petition", "signed", "not_signed"),
    [
        ("closed", True, False),  # closed 10 s ago: its marks are kept for 30 days
        ("past its deadline", True, False),
        ("closed long ago", True, None),  # its marks may be forgotten: no longer known
        ("hidden", True, None),  # taken down when? Its state does not say
        ("submitted", False, False),  # never signed: nothing to forget
    ],
)
async def test_an_ended_petition_is_said_not_signed_only_while_its_marks_are_kept(
    intake: IntakeUnderTest,
    redis_server: RedisServer,
    petitions: dict[str, str],
    petition: str,
    signed: bool,
    not_signed: bool | None,
) -> None:
    """The counter forgets an ended petition's marks PARAPHE_MARKS_KEPT_DAYS after it ended:
    a missing mark then says nothing, and intake answers null rather than a false "no"."""
    petition_id = petitions[petition]
    client = aioredis.from_url(redis_server.url)
    if signed:  # a mark intake left while the petition was open
        mark = mark_of(petition_id, dedupe_key("signed-it", petition_id))
        await client.hset(mark.bucket, mark.field, SIGNED_VALUE)
    await client.aclose()

    async def answer(signer: str) -> object:
        response = await intake.client.get(
            f"/api/petitions/{petition_id}/signatures/me",
            headers={"Authorization": f"Bearer {intake.signer_token(signer)}"},
        )
        assert response.status == 200
        return (await response.json())["signed"]

    assert await answer("signed-it") is signed
    assert await answer("someone-else") is not_signed


async def test_200_concurrent_attempts_by_one_signer_record_one_signature(
    intake: IntakeUnderTest, open_petition: str
) -> None:
    answers = await asyncio.gather(*(intake.sign(open_petition, "eager") for _ in range(200)))
    assert {status for status, _ in answers} <= {200, 202}
    assert any(status == 202 for status, _ in answers)
    assert await intake.stored_signatures() == 1


async def test_distinct_signers_are_each_recorded(
    intake: IntakeUnderTest, open_petition: str
) -> None:
    answers = await asyncio.gather(*(intake.sign(open_petition, f"signer-{n}") for n in range(100)))
    assert [status for status, _ in answers] == [202] * 100
    assert await intake.stored_signatures() == 100


@pytest.mark.parametrize(
    ("petition", "status", "kind"),
    [
        ("unknown", 404, "petition-not-found"),
        ("closed", 409, "petition-not-open"),
        ("hidden", 409, "petition-not-open"),
        ("past its deadline", 409, "petition-not-open"),
        ("submitted", 409, "petition-not-open"),
    ],
)
async def test_only_open_petitions_take_signatures(
    intake: IntakeUnderTest, petitions: dict[str, str], petition: str, status: int, kind: str
) -> None:
    answer_status, body = await intake.sign(petitions[petition], "signer-x")
    assert answer_status == status
    assert body["type"] == f"urn:paraphe:problem:{kind}"
    assert await intake.stored_signatures() == 0


async def test_signing_without_a_signer_token_is_401(
    intake: IntakeUnderTest, signing_key: SigningKey, open_petition: str
) -> None:
    url = f"/api/petitions/{open_petition}/signatures"
    author = TokenIssuer(signing_key.private_pem, signing_key.kid).issue(AUTHOR, "a" * 64, 60)
    forged = new_signer_key("test-signer").issuer()  # the right kid, another secret
    for headers in (
        {},
        {"Authorization": f"Bearer {author}"},
        {"Authorization": f"Bearer {forged.issue('paraphe:signer', 's', 60)}"},
    ):
        response = await intake.client.post(url, headers=headers)
        assert response.status == 401
        assert response.content_type == "application/problem+json"
    assert await intake.stored_signatures() == 0


async def test_the_signer_cookie_works_like_the_bearer_token(
    intake: IntakeUnderTest, open_petition: str
) -> None:
    # A browser's fetch from the site's pages: its Origin is the site's (CSRF check).
    server = intake.client.server
    response = await intake.client.post(
        f"/api/petitions/{open_petition}/signatures",
        cookies={"paraphe_signer": intake.signer_token("cookie-signer")},
        headers={"Origin": f"http://{server.host}:{server.port}"},
    )
    assert response.status == 202


async def test_a_signature_is_taken_before_routing_and_anything_else_goes_the_ordinary_way(
    intake: IntakeUnderTest,
    petitions: dict[str, str],
    open_petition: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = intake.client.app[FAST_ROUTE]
    url = f"/api/petitions/{open_petition}/signatures"
    bearer = {"Authorization": f"Bearer {intake.signer_token('decided')}"}
    taken = fast.answer(make_mocked_request("POST", url, headers=bearer))
    assert inspect.iscoroutine(taken)
    taken.close()  # decided, never sent: nothing was counted or published
    host = f"{intake.client.server.host}:{intake.client.server.port}"
    cookie = {"Cookie": f"paraphe_signer={intake.signer_token('decided')}", "Host": host}
    for method, path, headers in (
        ("GET", url, bearer),
        ("POST", url, {}),  # no token: its 401 problem
        ("POST", url, {"Authorization": "Bearer not-a-token"}),
        ("POST", f"/api/petitions/{petitions['unknown']}/signatures", bearer),
        ("POST", f"/api/petitions/{petitions['closed']}/signatures", bearer),
        ("POST", f"{url}/me", bearer),
        ("POST", url, {**cookie, "Origin": "https://elsewhere.example"}),  # its 403
    ):
        assert fast.answer(make_mocked_request(method, path, headers=headers)) is None, path
    same_site = fast.answer(
        make_mocked_request("POST", url, headers={**cookie, "Origin": f"http://{host}"})
    )
    assert inspect.iscoroutine(same_site)  # the browser's own fetch: taken
    same_site.close()

    # From here the ordinary way fails loudly (its middleware's first step): a signature does
    # not go through it, a probe does.
    def ordinary(request: web.Request) -> None:
        raise AssertionError("went the ordinary way")

    monkeypatch.setattr(paraphe_common.app, "refuse_cross_site", ordinary)
    answered = await intake.client.post(url, headers={**bearer, "X-Request-Id": "fast-sign"})
    assert answered.status == 202
    assert await answered.json() == {"petition_id": open_petition, "status": "accepted"}
    assert answered.headers["X-Request-Id"] == "fast-sign"
    assert answered.headers["Cache-Control"] == "private, no-store"
    assert answered.headers["X-Content-Type-Options"] == "nosniff"
    assert (await intake.client.post(url, headers=bearer)).status == 200
    assert (await intake.client.get("/healthz")).status == 500
    assert await intake.stored_signatures() == 1


async def test_signing_is_limited_per_client_behind_the_proxy_and_watched_for_velocity(
    start_intake: StartIntake, open_petition: str
) -> None:
    intake = await start_intake(trusted_proxies="127.0.0.1/32", client_limits={"signing": 2})
    crowd = [{"X-Forwarded-For": "203.0.113.7"}] * 3 + [{"X-Forwarded-For": "198.51.100.1"}]
    answers = []
    for n, forwarded in enumerate(crowd):
        headers = {**forwarded, "Authorization": f"Bearer {intake.signer_token(f'client-{n}')}"}
        answers.append(
            await intake.client.post(f"/api/petitions/{open_petition}/signatures", headers=headers)
        )
    assert [answer.status for answer in answers] == [202, 202, 429, 202]
    refused = answers[2]
    assert refused.content_type == "application/problem+json"
    assert (await refused.json())["type"] == "urn:paraphe:problem:rate-limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-Request-Id"]
    assert intake.client.app[SIGNING_VELOCITY].shares() == (3, [2 / 3, 1 / 3], [1.0])
    assert await intake.stored_signatures() == 3


async def test_too_many_attempts_by_one_signer_are_429_with_retry_after(
    intake: IntakeUnderTest, open_petition: str
) -> None:
    from paraphe_common.rate_limits import TokenBuckets
    from paraphe_signature_intake.context import INTAKE

    intake.client.app[INTAKE].limit = TokenBuckets(3, 60.0)
    statuses = [(await intake.sign(open_petition, "hasty"))[0] for _ in range(4)]
    assert statuses == [202, 200, 200, 429]
    response = await intake.client.post(
        f"/api/petitions/{open_petition}/signatures",
        headers={"Authorization": f"Bearer {intake.signer_token('hasty')}"},
    )
    assert int(response.headers["Retry-After"]) >= 1


async def test_without_jetstream_the_answer_is_503_and_a_retry_succeeds(
    intake: IntakeUnderTest, nats_server: NatsServer, open_petition: str
) -> None:
    nats_server.stop()
    status, body = await intake.sign(open_petition, "patient")
    assert status == 503
    assert body["type"] == "urn:paraphe:problem:signature-not-recorded"
    nats_server.start()
    for _ in range(100):
        status, _ = await intake.sign(open_petition, "patient")
        if status != 503:
            break
        await asyncio.sleep(0.1)
    # 202 when the retry's publish is the signature; 200 when an attempt answered 503 (its
    # ack lost as NATS came back) had recorded it after all: either way, once.
    assert status in {200, 202}
    assert await intake.stored_signatures() == 1


async def test_signing_goes_on_while_redis_is_down(
    intake: IntakeUnderTest, redis_server: RedisServer, open_petition: str
) -> None:
    redis_server.stop()
    assert (await intake.sign(open_petition, "during-outage"))[0] == 202
    metrics = await (await intake.client.get("/metrics")).text()
    assert "signature_intake_redis_unavailable_total 1.0" in metrics
    # Without Redis a repeat within JetStream's window is still recognised.
    assert (await intake.sign(open_petition, "during-outage"))[0] in {200, 202}
    assert await intake.stored_signatures() == 1


async def test_after_redis_is_flushed_a_repeat_is_still_already_signed(
    intake: IntakeUnderTest, redis_server: RedisServer, open_petition: str
) -> None:
    assert (await intake.sign(open_petition, "remembered"))[0] == 202
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    assert await intake.sign(open_petition, "remembered") == (
        200,
        {"petition_id": open_petition, "status": "already-signed"},
    )
    assert await intake.stored_signatures() == 1


async def test_marks_outlive_a_cut_connection_and_a_server_that_forgot_the_script(
    intake: IntakeUnderTest, redis_server: RedisServer, open_petition: str
) -> None:
    # The marks writer keeps one connection and calls its script by digest: what a Redis
    # restart or a failover does to both, done on purpose.
    assert (await intake.sign(open_petition, "before"))[0] == 202
    client = aioredis.from_url(redis_server.url)
    await client.script_flush()
    killed = await client.client_kill_filter(_type="normal", skipme=True)
    await client.aclose()
    assert killed >= 1
    assert (await intake.sign(open_petition, "after"))[0] == 202
    headers = {"Authorization": f"Bearer {intake.signer_token('after')}"}
    mine = await intake.client.get(f"/api/petitions/{open_petition}/signatures/me", headers=headers)
    assert (await mine.json())["signed"] is True  # read from Redis
    metrics = await (await intake.client.get("/metrics")).text()
    assert "signature_intake_redis_unavailable_total 0.0" in metrics


async def test_signing_goes_on_while_redis_hangs(
    intake: IntakeUnderTest, redis_server: RedisServer, open_petition: str
) -> None:
    # A Redis that stops answering without closing anything (a stopped process, a network
    # partition): each batch of marks gives up after the marks timeout (0.5 s), not redis-py's
    # 5 s, and signing goes on without Redis as when it refuses connections.
    assert (await intake.sign(open_petition, "before-the-hang"))[0] == 202
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        async with asyncio.timeout(4):  # well under redis-py's 5 s: the marks timeout decided
            answers = await asyncio.gather(
                *(intake.sign(open_petition, f"during-the-hang-{n}") for n in range(3))
            )
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert [status for status, _ in answers] == [202] * 3
    metrics = await (await intake.client.get("/metrics")).text()
    assert "signature_intake_redis_unavailable_total 3.0" in metrics
    assert await intake.stored_signatures() == 4


@pytest.mark.parametrize("published_before_the_crash", [True, False])
async def test_a_retry_after_a_crash_between_mark_and_ack_records_one_signature(
    intake: IntakeUnderTest,
    redis_server: RedisServer,
    published_before_the_crash: bool,
    open_petition: str,
) -> None:
    # What a killed intake leaves: the pending mark, with or without the message in JetStream.
    key = dedupe_key("crashed", open_petition)
    client = aioredis.from_url(redis_server.url)
    await client.set(mark_of(open_petition, key).pending, PENDING, ex=60)
    await client.aclose()
    if published_before_the_crash:
        await intake.jetstream.publish(
            f"signatures.{open_petition}", key.encode(), headers={"Nats-Msg-Id": key}
        )
    # Published before the crash, the signature is recorded: the retry is told so (200), as
    # every later repeat; not published, the retry is the signature (202).
    first = 200 if published_before_the_crash else 202
    assert (await intake.sign(open_petition, "crashed"))[0] == first
    assert (await intake.sign(open_petition, "crashed"))[0] == 200
    assert await intake.stored_signatures() == 1


async def test_a_repeat_right_after_the_answer_is_already_signed_on_any_replica(
    start_intake: StartIntake, open_petition: str
) -> None:
    """The first replica answered 202 and has not yet promoted its mark (promotions wait for
    company, a few milliseconds): the other finds it pending, and JetStream's dedupe says the
    signature is recorded. One 202 per signature, every repeat 200, with the same body."""
    first, second = await start_intake(), await start_intake()
    for n in range(20):
        signer = f"double-submit-{n}"
        assert (await first.sign(open_petition, signer))[0] == 202
        status, body = await second.sign(open_petition, signer)
        assert (status, body["status"]) == (200, "already-signed")
    assert await first.stored_signatures() == 20


def test_dedupe_keys_of_one_signer_differ_between_petitions(petitions: dict[str, str]) -> None:
    assert dedupe_key("signer", petitions["open"]) != dedupe_key("signer", petitions["closed"])
    assert len(dedupe_key("signer", petitions["open"])) == 64
