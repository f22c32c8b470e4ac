"""paraphe_common.security on a real aiohttp server and a real Redis: client addresses behind
trusted proxies, security headers, CSRF on cookie-authenticated changes, per-client limits."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from paraphe_common import security
from paraphe_common.app import create_service_app
from paraphe_common.auth import presented_token
from paraphe_common.problems import PROBLEM_CONTENT_TYPE
from paraphe_common.resources import REDIS, redis
from paraphe_common.security import (
    API_POLICY,
    CLIENT_LIMITS,
    DEPOSIT,
    PAGE_POLICY,
    ClientLimit,
    ClientNetwork,
    client_address,
    forwarded_for,
    limit_per_client,
)
from paraphe_common.settings import RedisSettings, ServiceSettings
from paraphe_common.tokens import STAFF
from paraphe_common.velocity import range_of
from paraphe_devstack.servers import RedisServer

Client = TestClient[web.Request, web.Application]

TINY = ClientLimit("sign-in", 3, 60, "Trop de tentatives de connexion.")


class Settings(ServiceSettings, RedisSettings):
    pass


async def whoami(request: web.Request) -> web.Response:
    return web.json_response(
        {"client": str(client_address(request)), "forward": forwarded_for(request)}
    )


async def page(request: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><title>x</title>", content_type="text/html")


async def change(request: web.Request) -> web.Response:
    return web.json_response({"changed": True})


async def staff_change(request: web.Request) -> web.Response:
    """A change made with whichever token a service would take: the bearer's or the cookie's."""
    return web.json_response({"token": presented_token(request, STAFF)})


def make_app(settings: ServiceSettings, *, with_redis: bool) -> web.Application:
    app = create_service_app(
        "example", settings, [redis(settings)] if isinstance(settings, RedisSettings) else []
    )
    assert with_redis == isinstance(settings, RedisSettings)
    app.router.add_get("/api/whoami", whoami)
    app.router.add_get("/page", page)
    app.router.add_post("/api/change", change)
    app.router.add_post("/api/staff-change", staff_change)
    app.router.add_get("/auth/login", limit_per_client(TINY)(change))
    app.router.add_get("/auth/other", limit_per_client(DEPOSIT)(change))
    return app


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, redis_server: RedisServer) -> Client:
    # The test client connects from 127.0.0.1: a trusted proxy, like nginx in the stack.
    settings = Settings(redis_url=redis_server.url, client_limits={"sign-in": 3})
    return await aiohttp_client(make_app(settings, with_redis=True))


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def client_seen(client: Client, forwarded: str | None) -> str:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    answer = await client.get("/api/whoami", headers=headers)
    return str((await answer.json())["client"])


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "10.255.255.255", "11.0.0.1", "127.0.0.1", "192.168.0.1", "0.0.0.0",
     "fd00::1", "fd12:3456::", "fe80::1", "::1", "::ffff:10.1.2.3", "2001:db8::1"],
)  # fmt: skip
def test_proxy_ranges_and_signing_ranges_are_what_ipaddress_says(address: str) -> None:
    # Computed with integers and text (per signature, for more clients than a cache holds):
    # the same answers as the ipaddress module's networks.
    ranges = [ip_network(net) for net in ("10.0.0.0/8", "127.0.0.1/32", "fd00::/8", "::1/128")]
    network = ClientNetwork(tuple(ranges))
    parsed = ip_address(address)
    assert network.is_proxy(parsed) == any(parsed in net for net in ranges)
    prefix = 24 if parsed.version == 4 else 48
    assert range_of(parsed) == str(ip_network(f"{parsed}/{prefix}", strict=False))
    assert range_of(None) == "other"


async def test_the_client_is_the_last_address_no_trusted_proxy_wrote(client: Client) -> None:
    assert await client_seen(client, None) == "127.0.0.1"
    assert await client_seen(client, "203.0.113.7") == "203.0.113.7"
    # What the client wrote itself sits left of what our proxy appended: never believed.
    assert await client_seen(client, "198.51.100.1, 203.0.113.7") == "203.0.113.7"
    # A chain of our own proxies is walked past.
    assert await client_seen(client, "203.0.113.7, 127.0.0.5") == "203.0.113.7"
    assert await client_seen(client, "2001:db8::1") == "2001:db8::1"
    # Garbage stops the walk at the last address believed.
    assert await client_seen(client, "203.0.113.7, not-an-address") == "127.0.0.1"


async def test_forwarded_addresses_are_ignored_from_an_untrusted_peer(
    aiohttp_client: AiohttpClient,
) -> None:
    settings = ServiceSettings(trusted_proxies="10.0.0.0/8")
    assert settings.trusted_proxies == (ip_network("10.0.0.0/8"),)
    untrusting = await aiohttp_client(make_app(settings, with_redis=False))
    assert await client_seen(untrusting, "203.0.113.7") == "127.0.0.1"


async def test_pages_get_a_strict_policy_and_every_answer_the_common_headers(
    client: Client,
) -> None:
    for path, policy in (("/page", PAGE_POLICY), ("/api/whoami", API_POLICY)):
        answer = await client.get(path)
        assert answer.headers["Content-Security-Policy"] == policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in answer.headers  # local http
        # What governs a rendered document, on pages only.
        document_only = ("Referrer-Policy", "Cross-Origin-Opener-Policy", "Permissions-Policy")
        if policy == PAGE_POLICY:
            assert answer.headers["Referrer-Policy"] == "same-origin"
            assert answer.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert "camera=()" in answer.headers["Permissions-Policy"]
        else:
            assert not set(document_only) & set(answer.headers)
    assert "unsafe-inline" not in PAGE_POLICY
    assert "frame-ancestors 'none'" in PAGE_POLICY
    # Problems too: aiohttp's own 404 goes through the same door.
    missing = await client.get("/nowhere")
    assert missing.status == 404
    assert missing.headers["Content-Security-Policy"] == API_POLICY
    # Behind a trusted proxy that terminated TLS: HSTS.
    secure = await client.get("/page", headers={"X-Forwarded-Proto": "https"})
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=63072000")


async def test_hsts_is_not_taken_from_an_untrusted_peer(aiohttp_client: AiohttpClient) -> None:
    untrusting = await aiohttp_client(
        make_app(ServiceSettings(trusted_proxies="10.0.0.0/8"), with_redis=False)
    )
    answer = await untrusting.get("/page", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in answer.headers


async def test_cookie_authenticated_changes_must_come_from_the_site(client: Client) -> None:
    origin = f"http://{client.server.host}:{client.server.port}"
    cookie = {"Cookie": "paraphe_author=a-token"}
    refused = await client.post("/api/change", headers={**cookie, "Origin": "https://evil.example"})
    assert refused.status == 403
    assert refused.content_type == PROBLEM_CONTENT_TYPE
    assert (await refused.json())["type"] == "urn:paraphe:problem:cross-site-form"
    no_origin = await client.post("/api/change", headers=cookie)
    assert no_origin.status == 403
    same_site = await client.post("/api/change", headers={**cookie, "Origin": origin})
    assert same_site.status == 200
    by_referer = await client.post("/api/change", headers={**cookie, "Referer": origin + "/x"})
    assert by_referer.status == 200
    # A bearer token is not sent by a browser on its own: no CSRF to fear.
    bearer = {"Authorization": "Bearer t", "Origin": "https://evil.example"}
    assert (await client.post("/api/change", headers=bearer)).status == 200
    # Nor is a request without our cookies authenticated by anything a browser adds.
    anonymous = await client.post("/api/change", headers={"Origin": "https://evil.example"})
    assert anonymous.status == 200


@pytest.mark.parametrize(
    ("authorization", "bearer"),
    [
        ("Bearer a-bearer-token", "a-bearer-token"),
        ("bearer a-bearer-token", "a-bearer-token"),
        ("Basic eDp5", None),
        ("Negotiate abc", None),
        ("Bearer", None),
        ("Bearer   ", None),
    ],
)
async def test_only_a_bearer_token_that_is_used_exempts_a_change_from_the_origin_check(
    client: Client, authorization: str, bearer: str | None
) -> None:
    # Any other Authorization leaves the cookie authenticating the change: a hostile page
    # adding one (Basic x) to a staff member's cross-site post must not pass.
    headers = {
        "Cookie": "paraphe_staff=the-cookie",
        "Authorization": authorization,
        "Origin": "https://evil.example",
    }
    answer = await client.post("/api/staff-change", headers=headers)
    if bearer is None:
        assert answer.status == 403
        assert (await answer.json())["type"] == "urn:paraphe:problem:cross-site-form"
    else:
        assert answer.status == 200
        assert (await answer.json())["token"] == bearer


async def test_the_public_url_is_the_origin_when_the_service_knows_it(
    aiohttp_client: AiohttpClient,
) -> None:
    class SiteLike(ServiceSettings):
        public_url: str = "https://petitions.example.fr"

    site = await aiohttp_client(make_app(SiteLike(), with_redis=False))
    cookie = {"Cookie": "paraphe_staff=t"}
    ok = await site.post(
        "/api/change", headers={**cookie, "Origin": "https://petitions.example.fr"}
    )
    assert ok.status == 200
    host = f"http://{site.server.host}:{site.server.port}"
    assert (await site.post("/api/change", headers={**cookie, "Origin": host})).status == 403
    # A site served over https: HSTS on every answer (browsers ignore it over plain http).
    page = await site.get("/page")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=63072000")


async def test_a_client_past_its_limit_gets_429_with_retry_after(
    client: Client, redis_client: aioredis.Redis
) -> None:
    alice = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(3):
        assert (await client.get("/auth/login", headers=alice)).status == 200
    refused = await client.get("/auth/login", headers=alice)
    assert refused.status == 429
    assert refused.content_type == PROBLEM_CONTENT_TYPE
    body = await refused.json()
    assert body["type"] == "urn:paraphe:problem:rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert body["retry_after"] == int(refused.headers["Retry-After"])
    # Another client, and the same client's other limits, are not affected.
    assert (
        await client.get("/auth/login", headers={"X-Forwarded-For": "203.0.113.8"})
    ).status == 200
    assert (await client.get("/auth/other", headers=alice)).status == 200
    # One IPv6 subscriber (/64) is one client, whatever address of it it uses.
    for i in range(3):
        v6 = {"X-Forwarded-For": f"2001:db8:0:1::{i + 1}"}
        assert (await client.get("/auth/login", headers=v6)).status == 200
    v6_again = {"X-Forwarded-For": "2001:db8:0:1:ffff::9"}
    assert (await client.get("/auth/login", headers=v6_again)).status == 429
    # Redis holds keyed hashes of clients, never an address, and forgets them with the window.
    keys = [k.decode() if isinstance(k, bytes) else k for k in await redis_client.keys("limit:*")]
    assert keys
    values = [str(await redis_client.get(key)) for key in keys if key != "limit:salt"]
    everything = " ".join(keys + values)
    for address in ("203.0.113.7", "203.0.113.8", "2001:db8"):
        assert address not in everything
    for key in keys:
        if key != "limit:salt":
            assert 0 < await redis_client.pttl(key) <= 3600_000
    metrics = await (await client.get("/metrics")).text()
    assert 'http_client_rate_limited_total{limit="sign-in"} 2.0' in metrics


async def test_the_limit_window_is_shared_by_replicas(
    aiohttp_client: AiohttpClient, redis_server: RedisServer
) -> None:
    settings = Settings(redis_url=redis_server.url, client_limits={"sign-in": 3})
    first = await aiohttp_client(make_app(settings, with_redis=True))
    second = await aiohttp_client(make_app(settings, with_redis=True))
    bob = {"X-Forwarded-For": "198.51.100.20"}
    for replica in (first, second, first):
        assert (await replica.get("/auth/login", headers=bob)).status == 200
    assert (await second.get("/auth/login", headers=bob)).status == 429


async def test_without_redis_each_replica_still_limits_in_memory(
    client: Client, redis_server: RedisServer
) -> None:
    redis_server.stop()
    carol = {"X-Forwarded-For": "192.0.2.44"}
    statuses = [(await client.get("/auth/login", headers=carol)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    metrics = await (await client.get("/metrics")).text()
    assert "http_client_rate_limit_redis_unavailable_total 4.0" in metrics
    assert client.app[REDIS] is not None


async def test_the_machine_itself_is_never_limited(client: Client) -> None:
    statuses = [(await client.get("/auth/login")).status for _ in range(5)]
    assert statuses == [200] * 5


async def test_a_call_on_a_clients_behalf_names_the_client(client: Client) -> None:
    answer = await client.get(
        "/api/whoami", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    )
    # The next service (which trusts us) sees the client, not us nor what the client wrote.
    assert (await answer.json())["forward"] == {"X-Forwarded-For": "203.0.113.7"}


async def test_a_signed_in_answer_is_kept_by_no_shared_cache(client: Client) -> None:
    anonymous = await client.get("/api/whoami")
    assert "Cache-Control" not in anonymous.headers
    for credentials in ({"Authorization": "Bearer t"}, {"Cookie": "paraphe_author=t"}):
        personal = await client.get("/api/whoami", headers=credentials)
        assert personal.headers["Cache-Control"] == "private, no-store"
        assert personal.headers["X-Frame-Options"] == "DENY"


def test_every_client_limit_is_one_a_service_applies() -> None:
    """A limit no route applies would be exported at 0 forever, and an alert on it would never
    fire: each is applied somewhere (limit_per_client, or refuse_over_limit for signing's
    guard), and public reports, limited by moderation itself, are not one of them."""
    root = Path(__file__).resolve().parents[1]
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for path in [*root.glob("services/*/src/**/*.py"), *root.glob("libs/common/src/**/*.py")]
        if path.name != "security.py"
    )
    names = {
        value.name: name for name, value in vars(security).items() if isinstance(value, ClientLimit)
    }
    assert set(names) == set(CLIENT_LIMITS)
    for limit, name in names.items():
        applied = rf"limit_per_client\({name}\)|refuse_over_limit\([^)]*\b{name}\b"
        assert re.search(applied, sources), f"no route applies the {limit} limit"
    with pytest.raises(ValueError, match="report"):
        create_service_app("example", ServiceSettings(client_limits={"report": 5}))
