from paraphe_common.rate_limits import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_a_wait_then_the_refill() -> None:
    clock = Clock()
    buckets = TokenBuckets(3, 3600.0, clock=clock)
    assert [buckets.retry_after("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.retry_after("a") == 1200  # one attempt comes back every 20 minutes
    assert buckets.retry_after("b") == 0  # others are not held back
    clock.now += 1200
    assert buckets.retry_after("a") == 0
    assert buckets.retry_after("a") > 0


def test_the_least_recent_keys_are_forgotten_beyond_the_bound() -> None:
    buckets = TokenBuckets(1, 60.0, max_keys=2, clock=Clock())
    for key in ("a", "b", "c"):
        assert buckets.retry_after(key) == 0
    assert buckets.retry_after("a") == 0  # forgotten, so it starts afresh
    assert buckets.retry_after("c") > 0


def test_a_key_untouched_for_a_period_is_forgotten_and_starts_afresh() -> None:
    clock = Clock()
    buckets = TokenBuckets(2, 3600.0, clock=clock)
    assert [buckets.retry_after("a hashed address") for _ in range(3)] == [0, 0, 1800]
    clock.now += 1800
    assert buckets.retry_after("another") == 0
    assert len(buckets) == 2  # within the hour, both kept
    clock.now += 1800
    buckets.retry_after("another")
    # An hour after its last attempt, nothing of the first is left in memory...
    assert len(buckets) == 1
    # ...and it gets what a full bucket gives, as it would have.
    assert [buckets.retry_after("a hashed address") for _ in range(3)] == [0, 0, 1800]
