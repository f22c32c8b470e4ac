import pytest

from paraphe_common.settings import (
    ConfigurationError,
    NatsSettings,
    PostgresSettings,
    RedisSettings,
    ServiceSettings,
    describe_endpoint,
    load_settings,
)


class ExampleSettings(ServiceSettings, PostgresSettings):
    pass


def test_missing_required_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARAPHE_DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="PARAPHE_DATABASE_URL is required but not set"):
        load_settings(ExampleSettings)


def test_invalid_value_is_named_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARAPHE_DATABASE_URL", "postgresql://u:secret@db/x")
    monkeypatch.setenv("PARAPHE_PORT", "not-a-port-secret")
    with pytest.raises(ConfigurationError) as raised:
        load_settings(ExampleSettings)
    assert "PARAPHE_PORT is invalid" in str(raised.value)
    assert "secret" not in str(raised.value)


def test_settings_are_read_from_the_environment_with_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARAPHE_DATABASE_URL", "postgresql://u:secret@db:5433/x")
    monkeypatch.setenv("PARAPHE_PORT", "9000")
    settings = load_settings(ExampleSettings)
    assert settings.port == 9000
    assert settings.shutdown_timeout == 20.0
    assert "secret" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("postgresql://user:secret@db.internal:5433/paraphe", "db.internal:5433"),
        ("redis://:secret@cache/0", "cache"),
        ("nats://127.0.0.1:4222", "127.0.0.1:4222"),
    ],
)
def test_endpoint_description_leaves_credentials_out(url: str, endpoint: str) -> None:
    assert describe_endpoint(url) == endpoint


class RedisExampleSettings(ServiceSettings, RedisSettings, NatsSettings):
    pass


def test_redis_is_reached_through_sentinels_when_they_are_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PARAPHE_REDIS_URL", raising=False)
    monkeypatch.setenv("PARAPHE_REDIS_SENTINELS", "redis-0.sentinel:26379, 10.0.0.2:26380")
    monkeypatch.setenv("PARAPHE_REDIS_SENTINEL_MASTER", "signatures")
    monkeypatch.setenv("PARAPHE_NATS_URL", "nats://nats-0:4222,nats://nats-1:4222")
    settings = load_settings(RedisExampleSettings)
    assert settings.redis_url is None
    assert settings.redis_sentinel_addresses == [("redis-0.sentinel", 26379), ("10.0.0.2", 26380)]
    assert settings.redis_sentinel_master == "signatures"
    assert settings.nats_servers == ["nats://nats-0:4222", "nats://nats-1:4222"]


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({}, "PARAPHE_REDIS_URL is required but not set"),
        (
            {"PARAPHE_REDIS_URL": "redis://cache/0", "PARAPHE_REDIS_SENTINELS": "s:26379"},
            "PARAPHE_REDIS_URL is invalid (Value error, set PARAPHE_REDIS_URL or "
            "PARAPHE_REDIS_SENTINELS, not both)",
        ),
        (
            {"PARAPHE_REDIS_SENTINELS": "sentinel-without-port"},
            "PARAPHE_REDIS_SENTINELS is invalid",
        ),
    ],
)
def test_redis_needs_exactly_one_way_to_be_reached(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], message: str
) -> None:
    for variable in ("PARAPHE_REDIS_URL", "PARAPHE_REDIS_SENTINELS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PARAPHE_NATS_URL", "nats://nats:4222")
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings(RedisExampleSettings)
    assert message in str(raised.value)


def test_a_cluster_of_urls_is_described_without_credentials() -> None:
    urls = "nats://user:secret@nats-0:4222, nats://user:secret@nats-1:4222"
    assert describe_endpoint(urls) == "nats-0:4222,nats-1:4222"
