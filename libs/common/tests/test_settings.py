import pytest

from paraphe_common.settings import (
    ConfigurationError,
    PostgresSettings,
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
