"""Web security every service shares: who the client is, headers, CSRF and per-client limits.

- The client's address: the peer of the connection, unless that peer is one of our proxies
  (``PARAPHE_TRUSTED_PROXIES``); then X-Forwarded-For is read right to left, past our own
  proxies, and the first address not theirs is the client. Whatever a client writes in the
  header itself sits left of it and is never believed.
- Security headers on every answer (set by the service middleware; a handler that streams
  calls ``secure_stream`` before its headers leave): a Content-Security-Policy without
  ``unsafe-inline`` and ``frame-ancestors 'none'``, HSTS when the site is https or the
  browser came over https, ``nosniff``, ``X-Frame-Options``; on pages also a Referrer-Policy,
  a Cross-Origin-Opener-Policy and a Permissions-Policy; and
  ``Cache-Control: private, no-store`` on a signed-in person's pages and JSON that say nothing
  of caching, so that no shared cache keeps them.
- CSRF: a state change (POST, PUT, PATCH, DELETE) that a browser authenticates with one of our
  cookies, and not with a bearer token, must come from the site's own origin (its Origin, or
  without one its Referer). SameSite=Lax cookies are the first lock, this is the second. Only
  an ``Authorization: Bearer <token>`` spares it, the one header services take a token from
  instead of the cookie.
- Per-client rate limits (sign-in, signing, deposits): a fixed window per client and limit in
  Redis, shared by every replica, answering 429 with Retry-After as a problem. A client is an
  IPv4 address or an IPv6 /64 (what one subscriber holds), stored only as a keyed hash under a
  salt that Redis forgets every day, in keys that expire with their window. Without Redis (or
  while it does not answer) each replica counts in its own memory instead. A client on the
  machine itself (loopback: an operator, a test, a load campaign) is never limited.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from paraphe_common.auth import COOKIES, bearer_token
from paraphe_common.problems import Problem
from paraphe_common.rate_limits import TokenBuckets
from paraphe_common.resources import REDIS

log = logging.getLogger(__name__)

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# --- The client's address -------------------------------------------------------------------


@dataclass(frozen=True)
class ClientNetwork:
    """Where the proxies are, and where the site is (for CSRF and HSTS)."""

    trusted_proxies: tuple[Network, ...]
    # The site's origin (scheme://host[:port]) when the service knows it (PARAPHE_PUBLIC_URL);
    # else the Host the request was sent to stands for it.
    public_origin: str | None = None

    # Whether a connection's peer (aiohttp's request.remote) is one of the proxies: the same
    # few peers come back request after request, and the answer costs microseconds to work out.
    _peers: dict[str | None, bool] = field(default_factory=dict, compare=False, repr=False)
    _ranges: tuple[tuple[int, int, int], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        ranges = tuple(
            (net.version, int(net.network_address), int(net.netmask))
            for net in self.trusted_proxies
        )
        object.__setattr__(self, "_ranges", ranges)  # frozen: set once, here

    @property
    def public_https(self) -> bool:
        """The site is served over https: every answer may carry HSTS (browsers ignore it
        over plain http, RFC 6797 §8.1)."""
        return self.public_origin is not None and self.public_origin.startswith("https:")

    def is_proxy(self, address: Address | None) -> bool:
        # Asked of every forwarded hop, and a surge brings more distinct clients than any
        # cache holds: each range as (version, first address, mask) integers, compared.
        if address is None:
            return False
        version, value = address.version, int(address)
        return any(v == version and value & mask == first for v, first, mask in self._ranges)

    def peer_is_proxy(self, remote: str | None) -> bool:
        known = self._peers.get(remote)
        if known is None:
            if len(self._peers) > 4096:
                self._peers.clear()
            known = self._peers[remote] = self.is_proxy(_parse_address(remote))
        return known


CLIENT_NETWORK: Final = web.AppKey("client_network", ClientNetwork)
# The address, once read (None when nothing readable was known).
_CLIENT_ADDRESS: Final = web.RequestKey[Address | None]("client_address")


@functools.lru_cache(maxsize=4096)
def _parse_address(value: str | None) -> Address | None:
    """An address from a peer or a forwarded hop; memoised, since the same few proxies (and
    the same clients) come back request after request, and parsing costs microseconds."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(request: web.Request) -> Address | None:
    """The client's address as our proxies saw it; None when nothing readable is known."""
    return address_through(request, request.config_dict.get(CLIENT_NETWORK))


def address_through(request: web.BaseRequest, network: ClientNetwork | None) -> Address | None:
    """``client_address`` for a request not routed yet (it has no application)."""
    if _CLIENT_ADDRESS in request:
        cached: Address | None = request[_CLIENT_ADDRESS]
        return cached
    address = _parse_address(request.remote)
    if network is not None and network.is_proxy(address):
        hops = request.headers.getall("X-Forwarded-For", [])
        for entry in reversed(",".join(hops).split(",")):
            hop = _parse_address(entry)
            if hop is None:
                break  # garbage where an address should be: believe nothing further left
            address = hop
            if not network.is_proxy(hop):
                break
    request[_CLIENT_ADDRESS] = address
    return address


def forwarded_for(request: web.Request) -> dict[str, str]:
    """Headers for a call made on a client's behalf (a form forwarded to another service)."""
    address = client_address(request)
    return {"X-Forwarded-For": str(address)} if address is not None else {}


@functools.lru_cache(maxsize=4096)
def client_network_of(address: Address, *, v4_prefix: int = 32, v6_prefix: int = 64) -> Network:
    prefix = v4_prefix if isinstance(address, IPv4Address) else v6_prefix
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


def scheme_through(request: web.BaseRequest, network: ClientNetwork | None) -> str:
    """http or https as the browser used it: a trusted proxy's X-Forwarded-Proto, else ours."""
    if network is not None and network.peer_is_proxy(request.remote):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        if proto in {"http", "https"}:
            return proto
    return request.scheme


# --- Security headers -----------------------------------------------------------------------

_COOKIE_NAMES: Final = frozenset(COOKIES.values())

# Pages: everything from the site itself; no inline script or style, no plug-in, no framing.
# DSFR's stylesheet embeds a few icons as data: URIs.
PAGE_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    )
)
# Anything else (JSON, problems, files): nothing may run or be framed.
API_POLICY: Final = "default-src 'none'; frame-ancestors 'none'"
HSTS: Final = "max-age=63072000; includeSubDomains"

# On every answer: not to be sniffed into something runnable, not to be framed.
_EVERY_ANSWER: Final = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
# On pages only: these govern what a rendered document does (OWASP's REST guidance leaves them
# off JSON), and an answer's headers cost the service time to write, on every count read.
_PAGE_ONLY: Final = {
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
# The whole set for a page and for anything else, each added in one call.
_PAGE_HEADERS: Final = CIMultiDict(
    {**_EVERY_ANSWER, **_PAGE_ONLY, "Content-Security-Policy": PAGE_POLICY}
)
_OTHER_HEADERS: Final = CIMultiDict({**_EVERY_ANSWER, "Content-Security-Policy": API_POLICY})
_OWN_NAMES: Final = tuple(_PAGE_HEADERS)
# Documents a shared cache must never keep when they answer a signed-in person.
_PERSONAL_TYPES: Final = ("text/html", "application/json", "application/problem+json")


def secure_response(
    request: web.BaseRequest, response: web.StreamResponse, network: ClientNetwork
) -> None:
    """Add the security headers to an answer about to leave, keeping any a handler set.

    The service middleware calls it on every answer a handler returns, and a handler that
    streams before returning calls ``secure_stream``. (aiohttp's answers to requests it cannot
    parse reach neither; they carry no document.)
    """
    headers = response.headers
    content_type = headers.get("Content-Type", "")
    ours = _PAGE_HEADERS if content_type.startswith("text/html") else _OTHER_HEADERS
    for name in _OWN_NAMES:
        if name in headers:  # a handler chose some (a sandbox page): the others around them
            for name, value in ours.items():
                headers.setdefault(name, value)
            break
    else:
        headers.extend(ours)
    if network.public_https or (
        "X-Forwarded-Proto" in request.headers and scheme_through(request, network) == "https"
    ):
        headers.setdefault("Strict-Transport-Security", HSTS)
    if (
        "Cache-Control" not in headers
        and content_type.startswith(_PERSONAL_TYPES)
        and (
            "Authorization" in request.headers
            or ("Cookie" in request.headers and not _COOKIE_NAMES.isdisjoint(request.cookies))
        )
    ):
        headers["Cache-Control"] = "private, no-store"


def secure_stream(request: web.Request, response: web.StreamResponse) -> None:
    """For a handler that streams: its headers leave before the middleware sees the answer."""
    secure_response(request, response, request.config_dict[CLIENT_NETWORK])


# --- CSRF -----------------------------------------------------------------------------------

_STATE_CHANGES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, as a browser writes it in an Origin header."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    shown = f":{port}" if port and port != default else ""
    return f"{parts.scheme}://{parts.hostname}{shown}"


def expected_origin(request: web.BaseRequest, network: ClientNetwork | None) -> str | None:
    if network is not None and network.public_origin is not None:
        return network.public_origin
    return origin_of(f"{scheme_through(request, network)}://{request.host}")


def sent_origin(request: web.BaseRequest) -> str | None:
    offered = request.headers.get("Origin")
    if offered is None or offered == "null":
        referer = request.headers.get("Referer")
        return origin_of(referer) if referer else None
    return origin_of(offered)


def cookie_authenticated(request: web.BaseRequest) -> bool:
    """One of our cookies is what authenticates the request: it carries one, and no bearer
    token, which ``presented_token`` would take instead. Any other Authorization (Basic, a
    bearer without a token) leaves the cookie in charge: a page cannot buy an exemption."""
    if "Authorization" in request.headers and bearer_token(request) is not None:
        return False  # the bearer token authenticates it
    return not _COOKIE_NAMES.isdisjoint(request.cookies)


def cross_site_refusal() -> Problem:
    return Problem(
        403,
        "Ce formulaire doit être envoyé depuis une page du site : rechargez la page et réessayez.",
        kind="cross-site-form",
    )


def refuse_cross_site(request: web.Request) -> None:
    """A cookie-authenticated state change from another origin never reaches a handler.

    Called by the service middleware before every handler (not a middleware of its own: one
    frame fewer on every request); a 403 problem when refused.
    """
    if is_cross_site(request, request.config_dict.get(CLIENT_NETWORK)):
        raise cross_site_refusal()


def is_cross_site(request: web.BaseRequest, network: ClientNetwork | None) -> bool:
    """Whether ``refuse_cross_site`` refuses the request (also before routing)."""
    return (
        request.method in _STATE_CHANGES
        and cookie_authenticated(request)
        and sent_origin(request) != expected_origin(request, network)
    )


# --- Per-client rate limits -----------------------------------------------------------------


@dataclass(frozen=True)
class ClientLimit:
    """``requests`` per ``period`` seconds for one client; ``name`` keys Redis and metrics."""

    name: str
    requests: int
    period: int
    message: str
    # False: counted in each replica's memory, never in Redis. For the signing path, where a
    # Redis round trip per signature would cost about as much as the signature itself; the
    # Ingress's per-address limit is the first line there, and each replica's count the second.
    shared: bool = True


# A carrier-grade NAT puts many citizens behind one address: limits leave room for them and
# stop only what no group of people does (the velocity alert watches the rest).
SIGN_IN: Final = ClientLimit(
    "sign-in", 60, 60, "Trop de tentatives de connexion : merci de patienter un instant."
)
SIGNING: Final = ClientLimit(
    "signing",
    300,
    60,
    "Trop de signatures depuis votre réseau : merci de patienter un instant.",
    shared=False,
)
DEPOSIT: Final = ClientLimit(
    "deposit", 30, 3600, "Trop de dépôts depuis votre réseau : merci de réessayer plus tard."
)
# Public reports have moderation's own limit (PARAPHE_REPORTS_PER_HOUR, in each replica's
# memory: moderation has no Redis), counted in moderation_reports_rate_limited_total.
CLIENT_LIMITS: Final = {limit.name: limit for limit in (SIGN_IN, SIGNING, DEPOSIT)}

# One INCR per request; the window starts with the first request and ends with the key.
_WINDOW_SCRIPT: Final = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""
_SALT_KEY: Final = "limit:salt"
_SALT_LIFETIME: Final = 24 * 3600


class ClientLimiter:
    """Counts requests per client and limit; the metrics say how many were refused."""

    def __init__(
        self,
        overrides: Mapping[str, int],
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        unknown = set(overrides) - set(CLIENT_LIMITS)
        if unknown:
            raise ValueError(f"unknown client limits {sorted(unknown)}")
        self._overrides = dict(overrides)
        self._clock = clock
        self._salt: bytes | None = None
        self._salt_until = 0.0
        self._local: dict[str, TokenBuckets] = {}
        self._local_key = secrets.token_bytes(32)
        self.refused = Counter(
            "http_client_rate_limited",
            "Requests refused because their client exceeded a per-client limit, by limit.",
            ["limit"],
            registry=registry,
        )
        for name in CLIENT_LIMITS:
            self.refused.labels(name)  # exposed at 0 from the start, so rules can read it
        self.unavailable = Counter(
            "http_client_rate_limit_redis_unavailable",
            "Per-client limit checks made in the process because Redis did not answer.",
            registry=registry,
        )

    def budget(self, limit: ClientLimit) -> int:
        return self._overrides.get(limit.name, limit.requests)

    async def _salt_of(self, redis: aioredis.Redis) -> bytes:
        now = self._clock()
        if self._salt is not None and now < self._salt_until:
            return self._salt
        # Every replica uses the same salt; Redis forgets it daily, and with it any way to
        # match a key to an address.
        await redis.set(_SALT_KEY, secrets.token_hex(32), nx=True, ex=_SALT_LIFETIME)
        salt = await redis.get(_SALT_KEY)
        if salt is None:
            raise RedisError("the rate limit salt vanished")
        self._salt = salt.encode() if isinstance(salt, str) else bytes(salt)
        self._salt_until = now + 300
        return self._salt

    async def retry_after(
        self, limit: ClientLimit, client: str, redis: aioredis.Redis | None
    ) -> int:
        """0 when the request may go ahead (and is counted), else whole seconds to wait."""
        budget = self.budget(limit)
        if redis is not None and limit.shared:
            try:
                salt = await self._salt_of(redis)
                digest = hmac.new(salt, client.encode(), hashlib.blake2b).hexdigest()[:32]
                count, ttl_ms = await redis.eval(
                    _WINDOW_SCRIPT, 1, f"limit:{limit.name}:{digest}", limit.period * 1000
                )
                if int(count) <= budget:
                    return 0
                return max(1, -(-int(ttl_ms) // 1000))
            except (RedisError, OSError):
                self.unavailable.inc()
        buckets = self._local.get(limit.name)
        if buckets is None:
            buckets = self._local[limit.name] = TokenBuckets(budget, float(limit.period))
        # Keyed BLAKE2 is a MAC of its own (RFC 7693): a third of HMAC's cost, per signature.
        key = hashlib.blake2b(client.encode(), key=self._local_key, digest_size=16).hexdigest()
        return buckets.retry_after(key)


CLIENT_LIMITER: Final = web.AppKey("client_limiter", ClientLimiter)


def client_key(request: web.Request) -> str:
    """What one client is for the limits: its address, or its /64 in IPv6."""
    return _key_of(client_address(request))


def _key_of(address: Address | None) -> str:
    if address is None:
        return "unknown"
    if address.version == 4:
        return str(address)  # its own /32: no network to build (microseconds, per signature)
    return str(client_network_of(address).network_address)


async def check_client_limit(request: web.Request, limit: ClientLimit) -> None:
    """Raise a 429 problem with Retry-After when this client is over ``limit``."""
    config = request.config_dict
    await refuse_over_limit(
        config[CLIENT_LIMITER], limit, client_address(request), config.get(REDIS)
    )


async def refuse_over_limit(
    limiter: ClientLimiter,
    limit: ClientLimit,
    address: Address | None,
    redis: aioredis.Redis | None,
) -> None:
    """``check_client_limit`` for a client whose address is known (also before routing)."""
    if address is not None and address.is_loopback:
        return  # the machine itself: an operator, a test or a load campaign, never a visitor
    wait = await limiter.retry_after(limit, _key_of(address), redis)
    if wait:
        limiter.refused.labels(limit.name).inc()
        raise Problem(
            429,
            limit.message,
            kind="rate-limited",
            headers={"Retry-After": str(wait)},
            retry_after=wait,
        )


def limit_per_client(limit: ClientLimit) -> Callable[[Handler], Handler]:
    """A route's handler, refused with a 429 problem past ``limit`` per client."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def limited(request: web.Request) -> web.StreamResponse:
            await check_client_limit(request, limit)
            return await handler(request)

        return limited

    return decorate


def client_network(trusted_proxies: Sequence[Network], public_url: str | None) -> ClientNetwork:
    return ClientNetwork(tuple(trusted_proxies), origin_of(public_url) if public_url else None)


def install_security(
    app: web.Application,
    network: ClientNetwork,
    client_limits: Mapping[str, int],
    registry: CollectorRegistry,
) -> None:
    """What create_service_app installs on every service (its middleware sets the headers)."""
    app[CLIENT_NETWORK] = network
    app[CLIENT_LIMITER] = ClientLimiter(client_limits, registry)
