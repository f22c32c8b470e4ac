"""Thresholds and intervals come from the environment, checked before the counter starts."""

import pytest

from paraphe_common.settings import ConfigurationError, load_settings
from paraphe_counter.settings import CounterSettings

REQUIRED = {
    "PARAPHE_DATABASE_URL": "postgresql://counter@db/paraphe",
    "PARAPHE_REDIS_URL": "redis://cache:6379/0",
    "PARAPHE_NATS_URL": "nats://bus:4222",
}


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)


def test_the_parliament_thresholds_are_the_default() -> None:
    settings = load_settings(CounterSettings)
    assert settings.thresholds == (100_000, 500_000)
    assert (settings.batch_size, settings.count_shards) == (1000, 16)
    assert settings.fetch_timeout < 1
    assert settings.reconciliation_interval == 600
    assert settings.marks_kept_days == 30


@pytest.mark.parametrize("value", ["5,10", "5, 10", "[5, 10]"])
def test_thresholds_are_a_comma_list_or_a_json_list(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PARAPHE_THRESHOLDS", value)
    assert load_settings(CounterSettings).thresholds == (5, 10)


@pytest.mark.parametrize("value", ["10,5", "5,5", "0,10", "-5", "cent mille", "[5,"])
def test_thresholds_out_of_order_or_not_positive_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PARAPHE_THRESHOLDS", value)
    with pytest.raises(ConfigurationError, match="PARAPHE_THRESHOLDS") as refusal:
        load_settings(CounterSettings)
    assert value not in str(refusal.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PARAPHE_BATCH_SIZE", "0"),
        ("PARAPHE_COUNT_SHARDS", "0"),
        ("PARAPHE_FETCH_TIMEOUT", "5"),
        ("PARAPHE_BATCH_LINGER", "2"),
    ],
)
def test_settings_that_would_stop_the_counting_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(CounterSettings)


@pytest.mark.parametrize("value", ["0", "-1", "3651", "trente"])
def test_marks_kept_days_outside_one_day_to_ten_years_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PARAPHE_MARKS_KEPT_DAYS", value)
    with pytest.raises(ConfigurationError, match="PARAPHE_MARKS_KEPT_DAYS"):
        load_settings(CounterSettings)
