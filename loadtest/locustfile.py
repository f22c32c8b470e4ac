"""paraphe's load campaigns: people watching, signing in through FranceConnect and signing.

Run it with ``make loadtest`` (loadtest/run.py), which sets the reports up; or with Locust itself:
``locust -f loadtest/locustfile.py --host http://localhost:8080``. Parameters come from
``PARAPHE_LOADTEST_*`` variables (paraphe_load/config.py) and Locust's own options.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import random
import signal
import time
from collections import deque
from typing import Any

import gevent
import gevent.event
from locust import LoadTestShape, between, constant, constant_pacing, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from paraphe_load import checks, journeys
from paraphe_load.config import Config
from paraphe_load.freshness import Freshness
from paraphe_load.journeys import JourneyFailed, Watch
from paraphe_load.shapes import Stage, campaign, steady, steps, surge

log = logging.getLogger("paraphe.loadtest")

CONFIG = Config.from_env()

# The custom entries of Locust's statistics: a whole journey, timed from the FranceConnect button
# to the answer to the signature, and each count pushed to a streaming page.
JOURNEY = "JOURNEY"
NEW_SIGNER = "sign-in and sign (new person)"
RETURNING_SIGNER = "sign-in and sign again (came back)"
STREAM_EVENT = "SSE"
COUNT_EVENT = "count event received"
# Seconds the end of a run waits for users to finish their journey (run.py's --stop-timeout).
DRAIN = 40.0
# When signatures were accepted and counts shown, in this process (paraphe_load/freshness.py).
FRESHNESS = Freshness()
# Set by SIGTERM: the shape drains its users and the run ends with its verdict.
STOP_ASKED = gevent.event.Event()


class Campaign:
    """What one Locust process knows of the run: the petition and whom to sign next."""

    def __init__(self) -> None:
        self.petition = CONFIG.petition
        self._numbers: itertools.count[int] | None = None

    def next_person(self, environment: Environment) -> str | None:
        """A login hint naming a person nobody has used, or None when the campaign is done.

        Numbers are split between processes without talking: process i of n takes i, i+n, ...
        """
        if self._numbers is None:
            runner = environment.runner
            index = max(getattr(runner, "worker_index", 0), 0)
            processes = getattr(environment.parsed_options, "processes", None) or 1
            count = processes if isinstance(runner, WorkerRunner) else 1
            self._numbers = itertools.count(index, count)
        number = next(self._numbers)
        if CONFIG.shape == "campaign" and number >= CONFIG.signers:
            return None
        return f"generated:{CONFIG.run_id}-{number}"


CAMPAIGN = Campaign()
# Authors and their petitions are numbered per process; the run id and the process id (read when
# used: Locust's workers are forked after this import) keep them apart from everyone else's.
AUTHORS = itertools.count()


def author_number() -> str:
    return f"{os.getpid()}-{next(AUTHORS)}"


def _report(environment: Environment, kind: str, name: str, started: float, error: Any) -> None:
    environment.events.request.fire(
        request_type=kind,
        name=name,
        response_time=journeys.timed_ms(started),
        response_length=0,
        exception=error,
        context={},
    )


class Watcher(FastHttpUser):
    """A visitor who opened the petition and watches the count move (polling, as most do)."""

    weight = CONFIG.watcher_weight
    wait_time = constant_pacing(CONFIG.poll_seconds)

    def on_start(self) -> None:
        self.watch = Watch()
        journeys.open_petition_page(self.client, CAMPAIGN.petition)
        journeys.read_petition(self.client, CAMPAIGN.petition)

    @task
    def poll_the_count(self) -> None:
        journeys.poll_count(self.client, CAMPAIGN.petition, self.watch)


class StreamWatcher(FastHttpUser):
    """A visitor whose page follows the count by server-sent events."""

    weight = CONFIG.stream_watcher_weight
    wait_time = constant(1)

    def on_start(self) -> None:
        journeys.open_petition_page(self.client, CAMPAIGN.petition)

    def stop(self, force: bool = False) -> bool:
        # A stream never ends by itself, and leaving it changes nothing: no need to wait.
        return bool(super().stop(force=True))

    @task
    def follow_the_count(self) -> None:
        def received(data: bytes) -> None:
            _report(self.environment, STREAM_EVENT, COUNT_EVENT, time.perf_counter(), None)
            with contextlib.suppress(ValueError, KeyError, TypeError):
                FRESHNESS.count_seen(int(json.loads(data)["signatures"]))

        # A failed opening is already in the statistics; the page reconnects after a second.
        with contextlib.suppress(JourneyFailed):
            journeys.watch_count_stream(self.client, CAMPAIGN.petition, received)


class Signer(FastHttpUser):
    """One person after another: opens the petition, signs in with FranceConnect, signs.

    Some double-click the button; some come back later and sign again (already signed).
    """

    weight = CONFIG.signer_weight
    wait_time = (
        constant_pacing(CONFIG.signer_pace_seconds) if CONFIG.signer_pace_seconds else constant(0)
    )
    # Two clicks at once need two connections.
    concurrency = 2

    def on_start(self) -> None:
        self.signed: deque[str] = deque(maxlen=20)

    @task
    def one_person(self) -> None:
        if self.signed and random.random() < CONFIG.come_back_share:  # noqa: S311 - not a secret
            self.come_back(self.signed.popleft())
            return
        person = CAMPAIGN.next_person(self.environment)
        if person is None:
            raise StopUser  # the campaign has its N people
        self.sign_for_the_first_time(person)

    def sign_in(self, person: str) -> None:
        journeys.forget_person(self.client)
        authorize = journeys.begin_sign_in(
            self.client, flow="sign", login_hint=person, petition=CAMPAIGN.petition
        )
        callback = journeys.authenticate_at_provider(self.client, authorize)
        journeys.return_from_provider(self.client, callback, journeys.SIGNER_COOKIE)
        if CONFIG.signer_pages:
            # The browser follows the callback's redirect back to the petition's page.
            journeys.open_petition_page(self.client, CAMPAIGN.petition)

    def sign_for_the_first_time(self, person: str) -> None:
        if CONFIG.signer_pages:
            journeys.open_petition_page(self.client, CAMPAIGN.petition)
        started = time.perf_counter()
        error: Exception | None = None
        try:
            self.sign_in(person)
            if random.random() < CONFIG.double_click_share:  # noqa: S311 - not a secret
                self.double_click()
            else:
                journeys.sign(
                    self.client, CAMPAIGN.petition, name="api: sign", accepted=journeys.FIRST
                )
            FRESHNESS.signature_accepted()
        except JourneyFailed as failed:
            error = failed
        _report(self.environment, JOURNEY, NEW_SIGNER, started, error)
        if error is None:
            self.signed.append(person)

    def double_click(self) -> None:
        """Two POSTs at once: one is the signature, the other answers "already signed"."""
        first = gevent.spawn(
            journeys.sign, self.client, CAMPAIGN.petition, name="api: sign",
            accepted=journeys.RACING,
        )  # fmt: skip
        second = gevent.spawn(
            journeys.sign, self.client, CAMPAIGN.petition, name="api: sign (double-click)",
            accepted=journeys.RACING,
        )  # fmt: skip
        gevent.joinall([first, second])
        statuses = [first.value, second.value]
        if None in statuses:
            raise JourneyFailed
        if sorted(statuses) != [200, 202]:
            # One signature, answered 202 once; the other click is a repeat, answered 200.
            raise JourneyFailed(f"a double-click answered {statuses[0]} and {statuses[1]}")

    def come_back(self, person: str) -> None:
        started = time.perf_counter()
        error: Exception | None = None
        try:
            self.sign_in(person)
            # Long after the first signature: anything but "already signed" is a fault.
            journeys.sign(
                self.client,
                CAMPAIGN.petition,
                name="api: sign (came back)",
                accepted=journeys.REPEAT,
            )
        except JourneyFailed as failed:
            error = failed
        _report(self.environment, JOURNEY, RETURNING_SIGNER, started, error)


class Author(FastHttpUser):
    """A citizen who signs in as an author (FranceConnect), deposits petitions, submits them."""

    weight = CONFIG.author_weight
    wait_time = between(5, 15)

    def on_start(self) -> None:
        person = f"generated:{CONFIG.run_id}-author-{author_number()}"
        authorize = journeys.begin_sign_in(self.client, flow="author", login_hint=person)
        callback = journeys.authenticate_at_provider(self.client, authorize)
        journeys.return_from_provider(self.client, callback, journeys.AUTHOR_COOKIE)
        self.deposit_and_submit()  # one signs in as an author to deposit: at once

    @task(3)
    def deposit_and_submit(self) -> None:
        number = author_number()
        with contextlib.suppress(JourneyFailed):  # already a failure in the statistics
            petition = journeys.deposit_petition(
                self.client,
                f"Pétition de charge {CONFIG.run_id} n° {number}",
                "Déposée par une campagne de charge : elle ne demande rien, elle mesure.",
            )
            journeys.submit_petition(self.client, petition)

    @task(1)
    def follow_my_petitions(self) -> None:
        journeys.list_my_petitions(self.client)


class Moderator(FastHttpUser):
    """A moderator (staff sign-in) who browses the queue, as the page and through the API."""

    weight = CONFIG.moderator_weight
    wait_time = between(2, 5)

    def on_start(self) -> None:
        authorize = journeys.begin_sign_in(
            self.client, flow="staff", login_hint=CONFIG.moderator_login_hint
        )
        callback = journeys.authenticate_at_provider(self.client, authorize)
        journeys.return_from_provider(self.client, callback, journeys.STAFF_COOKIE)
        self.browse_the_queue()  # a moderator signs in to look at the queue: at once

    @task(3)
    def browse_the_queue(self) -> None:
        journeys.browse_queue(self.client)

    @task(1)
    def open_the_queue_page(self) -> None:
        journeys.open_queue_page(self.client)


# Locust takes the first shape class it finds; "none" leaves -u/-r/-t in charge.
if CONFIG.shape != "none":

    class PetitionShape(LoadTestShape):
        """The configured shape, then a drain: every user stopped before the run ends.

        Ending a headless run tells Locust's workers to quit, which kills their users at once:
        a signer killed between its POST and the answer would be counted by the site and not
        by Locust. Asking for zero users first stops them gracefully (``--stop-timeout``).
        """

        draining_since: float | None = None

        def tick(self) -> tuple[int, float] | None:
            elapsed = self.get_run_time()
            if checks.BEFORE.shape_started_at is None:
                checks.BEFORE.shape_started_at = time.time() - elapsed
            runner = self.runner
            stage: Stage | None
            if self.draining_since is not None or STOP_ASKED.is_set():
                stage = None
            elif CONFIG.shape == "surge":
                stage = surge(CONFIG, elapsed)
            elif CONFIG.shape == "steady":
                stage = steady(CONFIG, elapsed)
            elif CONFIG.shape == "steps":
                stage = steps(CONFIG, elapsed)
            else:
                done = runner.stats.get(NEW_SIGNER, JOURNEY).num_requests if runner else 0
                stage = campaign(CONFIG, elapsed, finished=done >= CONFIG.signers)
            if stage is not None:
                return (stage.users, stage.spawn_rate)
            if self.draining_since is None:
                self.draining_since = elapsed
            if runner is not None and runner.user_count and elapsed - self.draining_since < DRAIN:
                return (0, 10_000.0)
            return None


@events.init.add_listener
def end_gracefully_on_sigterm(environment: Environment, **_kwargs: Any) -> None:
    """SIGTERM (run.py's Ctrl-C, a CI timeout) drains the users, then judges the run as usual.

    Locust sets its own SIGTERM handler only once a shape has ended: until then the signal
    would end the master at once, without its reports and with its workers left behind.
    """
    if CONFIG.shape != "none" and not isinstance(environment.runner, WorkerRunner):
        gevent.signal_handler(signal.SIGTERM, STOP_ASKED.set)


@events.init.add_listener
def find_the_petition(environment: Environment, **_kwargs: Any) -> None:
    if not CAMPAIGN.petition:
        CAMPAIGN.petition = checks.first_open_petition(environment.host or "")
    if not isinstance(environment.runner, WorkerRunner):
        log.info("campaign %s on petition %s (%s)", CONFIG.run_id, CAMPAIGN.petition, CONFIG.shape)


@events.test_start.add_listener
def note_the_count_before(environment: Environment, **_kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    checks.BEFORE.record(environment, CONFIG, CAMPAIGN.petition)


@events.quitting.add_listener
def judge(environment: Environment, **_kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    verdict = checks.judge(
        environment,
        CONFIG,
        CAMPAIGN.petition,
        new_signers=environment.stats.get(NEW_SIGNER, JOURNEY),
        distributed=isinstance(environment.runner, MasterRunner),
        freshness=FRESHNESS,
    )
    if not verdict.passed:
        environment.process_exit_code = 1
