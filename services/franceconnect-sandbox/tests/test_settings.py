"""The client registry and issuer are read once, checked, and never leak their secrets."""

from __future__ import annotations

import json

import pytest

from paraphe_common.settings import ConfigurationError, load_settings
from paraphe_franceconnect_sandbox.settings import FranceconnectSandboxSettings

SECRET = "secret-qui-ne-doit-jamais-apparaitre"
CLIENT = {
    "client_id": "paraphe",
    "client_secret": SECRET,
    "redirect_uris": ["http://localhost:8080/auth/callback"],
    "post_logout_redirect_uris": ["http://localhost:8080/"],
}


def environment(monkeypatch: pytest.MonkeyPatch, issuer: str | None, clients: str | None) -> None:
    for name, value in (("PARAPHE_SANDBOX_ISSUER", issuer), ("PARAPHE_SANDBOX_CLIENTS", clients)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_clients_are_read_from_json_with_their_secret_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment(monkeypatch, "http://localhost:8106", json.dumps([CLIENT]))
    settings = load_settings(FranceconnectSandboxSettings)
    (client,) = settings.sandbox_clients
    assert client.client_id == "paraphe"
    assert client.client_secret.get_secret_value() == SECRET
    assert client.redirect_uris == ("http://localhost:8080/auth/callback",)
    assert SECRET not in repr(settings)


def test_issuer_is_kept_without_a_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    environment(monkeypatch, "http://localhost:8106/", json.dumps([CLIENT]))
    assert load_settings(FranceconnectSandboxSettings).sandbox_issuer == "http://localhost:8106"


@pytest.mark.parametrize(
    ("issuer", "clients", "named"),
    [
        (None, json.dumps([CLIENT]), "PARAPHE_SANDBOX_ISSUER is required"),
        ("http://localhost:8106", None, "PARAPHE_SANDBOX_CLIENTS is required"),
        ("localhost:8106", json.dumps([CLIENT]), "PARAPHE_SANDBOX_ISSUER is invalid"),
        ("http://localhost:8106", f'[{{"client_secret": "{SECRET}",', "PARAPHE_SANDBOX_CLIENTS"),
        ("http://localhost:8106", "[]", "PARAPHE_SANDBOX_CLIENTS is invalid"),
        ("http://localhost:8106", json.dumps([CLIENT, CLIENT]), "PARAPHE_SANDBOX_CLIENTS"),
        (
            "http://localhost:8106",
            json.dumps([CLIENT | {"redirect_uris": ["/auth/callback"]}]),
            "PARAPHE_SANDBOX_CLIENTS",
        ),
        (
            "http://localhost:8106",
            json.dumps([{k: v for k, v in CLIENT.items() if k != "client_secret"}]),
            "PARAPHE_SANDBOX_CLIENTS",
        ),
    ],
    ids=[
        "no-issuer", "no-clients", "relative-issuer", "broken-json", "no-client",
        "duplicate-client", "relative-redirect-uri", "no-secret",
    ],
)  # fmt: skip
def test_bad_settings_are_named_without_their_values(
    monkeypatch: pytest.MonkeyPatch, issuer: str | None, clients: str | None, named: str
) -> None:
    environment(monkeypatch, issuer, clients)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(FranceconnectSandboxSettings)
    assert named in str(refused.value)
    assert SECRET not in str(refused.value)
