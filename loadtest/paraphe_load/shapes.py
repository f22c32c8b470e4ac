"""Load shapes as plain functions of time: how many users, spawned how fast, at each second.

Locust asks the shape once a second (``LoadTestShape.tick``); answering ``None`` ends the run.
Keeping the arithmetic here, apart from Locust, lets it be tested without running anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from paraphe_load.config import Config


@dataclass(frozen=True)
class Stage:
    users: int
    spawn_rate: float


def surge(config: Config, elapsed: float) -> Stage | None:
    """A petition goes viral: to the peak in ``ramp_seconds``, held, then back down."""
    peak = config.peak_users
    up = peak / config.ramp_seconds if config.ramp_seconds else float(peak)
    down = peak / config.decay_seconds if config.decay_seconds else float(peak)
    if elapsed < config.ramp_seconds + config.hold_seconds:
        # Locust adds users at spawn_rate until it reaches the target: a straight ramp.
        return Stage(peak, up)
    if elapsed < config.ramp_seconds + config.hold_seconds + config.decay_seconds:
        return Stage(0, down)
    return None


def steady(config: Config, elapsed: float) -> Stage | None:
    if elapsed < config.duration_seconds:
        return Stage(config.users, config.spawn_rate)
    return None


def steps(config: Config, elapsed: float) -> Stage | None:
    """A staircase: ``step_users`` more every ``step_seconds``, each step held, to the maximum.

    The journeys per second of each step (summary.json) show where throughput stops rising
    while latency climbs: the knee, the capacity of the site under test.
    """
    count = max(1, math.ceil(config.max_users / config.step_users)) if config.step_users else 1
    step = int(elapsed // config.step_seconds) if config.step_seconds else count
    if step >= count:
        return None
    users = min(config.max_users, config.step_users * (step + 1))
    return Stage(users, float(max(config.step_users, 1)))


def step_windows(config: Config) -> list[tuple[int, float, float]]:
    """Each step's users and its (start, end) in seconds from the start of the run."""
    if config.shape != "steps" or not config.step_users or not config.step_seconds:
        return []
    windows = []
    count = max(1, math.ceil(config.max_users / config.step_users))
    for step in range(count):
        users = min(config.max_users, config.step_users * (step + 1))
        windows.append((users, step * config.step_seconds, (step + 1) * config.step_seconds))
    return windows


def campaign(config: Config, elapsed: float, *, finished: bool) -> Stage | None:
    """Sign ``signers`` distinct people, then stop: the count is checked afterwards."""
    if finished or elapsed >= config.campaign_timeout_seconds:
        return None
    return Stage(config.campaign_users, config.spawn_rate)


def planned_seconds(config: Config) -> float | None:
    """How long the shape lasts, when it does not depend on the run itself."""
    if config.shape == "surge":
        return config.ramp_seconds + config.hold_seconds + config.decay_seconds
    if config.shape == "steady":
        return config.duration_seconds
    if config.shape == "steps":
        windows = step_windows(config)
        return windows[-1][2] if windows else None
    return None
