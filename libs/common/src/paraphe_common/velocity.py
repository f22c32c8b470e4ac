"""Signing velocity: does one network range, or one petition, suddenly dominate the signatures?

A bot farm behind one provider, or a campaign pushing one petition, shows as a share of the
last minutes' signatures far above what a crowd of citizens makes. Each replica keeps, in
memory only, counts per 10-second slot over a sliding window (5 minutes) by network range
(an IPv4 /24, an IPv6 /48: never an address) and by petition, and exports the shares of the
top few, by rank, with the window's volume:

- ``signing_velocity_window_signatures``: signatures this replica accepted in the window;
- ``signing_velocity_top_network_share{rank}``: share of the k-th busiest range (rank 1..k);
- ``signing_velocity_top_petition_share{rank}``: the same for petitions.

Labels are ranks, so the series are bounded and no range ever reaches Prometheus. The alert
(deploy/monitoring, ``SigningDominatedByOneNetwork``) fires on a share with enough volume; the
operator then reads the range in the log line written once per window when a range passes
``log_share`` (a range, not an address: what a proxy rule or a provider's abuse desk needs).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from paraphe_common.metrics import METRICS
from paraphe_common.resources import REDIS
from paraphe_common.security import (
    CLIENT_LIMITER,
    CLIENT_NETWORK,
    SIGNING,
    Address,
    address_through,
    client_network_of,
    refuse_over_limit,
)

log = logging.getLogger(__name__)

OTHER: Final = "other"  # ranges beyond what one slot may hold: counted, never ranked


class SigningVelocity(Collector):
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        window: float = 300.0,
        slot: float = 10.0,
        top: int = 5,
        max_keys: int = 20_000,
        log_share: float = 0.2,
        log_volume: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slot = slot
        self._slots = max(1, int(window / slot))
        self._top = top
        self._max_keys = max_keys
        self._log_share = log_share
        self._log_volume = log_volume
        self._clock = clock
        self._history: deque[tuple[int, Counter[str], Counter[str]]] = deque()
        self._networks: Counter[str] = Counter()
        self._petitions: Counter[str] = Counter()
        self._total = 0
        self._logged: dict[str, int] = {}
        if registry is not None:
            registry.register(self)

    def _current(self) -> tuple[Counter[str], Counter[str]]:
        index = int(self._clock() // self._slot)
        if not self._history or self._history[-1][0] != index:
            self._history.append((index, Counter(), Counter()))
        while self._history and self._history[0][0] <= index - self._slots:
            _, networks, petitions = self._history.popleft()
            self._networks.subtract(networks)
            self._petitions.subtract(petitions)
            self._total -= networks.total()
            self._networks = +self._networks  # drop the ranges that left the window
            self._petitions = +self._petitions
        _, networks, petitions = self._history[-1]
        return networks, petitions

    def record(self, network: str, petition: str) -> None:
        networks, petitions = self._current()
        if network not in networks and len(networks) >= self._max_keys:
            network = OTHER
        networks[network] += 1
        petitions[petition] += 1
        self._networks[network] += 1
        self._petitions[petition] += 1
        self._total += 1
        self._watch(network)

    def _watch(self, network: str) -> None:
        if network == OTHER or self._total < self._log_volume:
            return
        count = self._networks[network]
        if count < self._log_share * self._total:
            return
        window = self._history[-1][0] // self._slots
        if self._logged.get(network) == window:
            return  # said once per window is enough
        if len(self._logged) > 1000:
            self._logged.clear()
        self._logged[network] = window
        log.warning(
            "one network range dominates signing",
            extra={"network": network, "share": round(count / self._total, 3)},
        )

    def shares(self) -> tuple[int, list[float], list[float]]:
        """The window's volume, and the top ranges' and petitions' shares, largest first."""
        self._current()
        total = self._total
        if total <= 0:
            return 0, [], []
        ranked = (k for k in self._networks if k != OTHER)
        networks = heapq.nlargest(self._top, ranked, key=self._networks.__getitem__)
        petitions = heapq.nlargest(self._top, self._petitions, key=self._petitions.__getitem__)
        return (
            total,
            [self._networks[k] / total for k in networks],
            [self._petitions[k] / total for k in petitions],
        )

    def collect(self) -> Iterator[Metric]:
        total, networks, petitions = self.shares()
        yield GaugeMetricFamily(
            "signing_velocity_window_signatures",
            "Signatures accepted by this replica in the velocity window (5 minutes).",
            value=total,
        )
        for name, shares, what in (
            ("signing_velocity_top_network_share", networks, "network range (/24, /48)"),
            ("signing_velocity_top_petition_share", petitions, "petition"),
        ):
            family = GaugeMetricFamily(
                name,
                f"Share of the window's signatures from the k-th busiest {what}, by rank.",
                labels=["rank"],
            )
            for rank in range(1, self._top + 1):
                family.add_metric([str(rank)], shares[rank - 1] if rank <= len(shares) else 0.0)
            yield family


SIGNING_VELOCITY: Final = web.AppKey("signing_velocity", SigningVelocity)


def range_of(address: Address | None) -> str:
    """The range velocity is watched by: an IPv4 /24, an IPv6 /48."""
    if address is None:
        return OTHER
    if address.version == 4:  # its /24 from the address's text: no network to build
        return f"{str(address).rpartition('.')[0]}.0/24"
    return str(client_network_of(address, v4_prefix=24, v6_prefix=48))


class SigningGuard:
    """The signing route's guard: limited per client (SIGNING) and watched for velocity.

    Built once per application; the signing handler calls ``admit`` before anything else and
    ``accepted`` on each 202 (repeats and refusals say nothing of a crowd). Both take a
    request that may not be routed yet: intake also signs before routing (its fast route).
    """

    def __init__(self, app: web.Application) -> None:
        self.velocity = app[SIGNING_VELOCITY] = SigningVelocity(app[METRICS])
        self._app = app
        self._limiter = app[CLIENT_LIMITER]
        self._network = app[CLIENT_NETWORK]

    async def admit(self, request: web.BaseRequest) -> None:
        """Raise a 429 problem with Retry-After when this client is over the signing limit."""
        address = address_through(request, self._network)
        # Redis looked up here: it is opened at start, after the guard is built. (SIGNING is
        # counted in memory, so the limiter does not call it; any shared limit would.)
        await refuse_over_limit(self._limiter, SIGNING, address, self._app.get(REDIS))

    def accepted(self, request: web.BaseRequest, petition_id: str) -> None:
        self.velocity.record(range_of(address_through(request, self._network)), petition_id)


SIGNING_GUARD: Final = web.AppKey("signing_guard", SigningGuard)
