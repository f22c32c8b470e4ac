import json

import pytest

from paraphe_common.committees import ASSEMBLEE_NATIONALE
from paraphe_common.settings import ConfigurationError, load_settings
from paraphe_moderation.reasons import DEFAULT_REASON_CODES, InvalidReasonCodes, parse_reason_codes
from paraphe_moderation.settings import ModerationSettings

REQUIRED = {
    "PARAPHE_DATABASE_URL": "postgresql://localhost/x",
    "PARAPHE_NATS_URL": "nats://localhost:4222",
    "PARAPHE_TOKEN_VERIFICATION_KEYS": '{"keys": []}',
    "PARAPHE_CATALOG_URL": "http://petition-catalog:8080",
    "PARAPHE_PUBLIC_URL": "https://petitions.example.fr",
}


def test_defaults_are_the_assemblees_committees_and_reason_codes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(ModerationSettings)
    assert settings.committees == ASSEMBLEE_NATIONALE
    assert settings.reason_codes == DEFAULT_REASON_CODES
    assert {"not-french", "discriminatory", "defamatory", "outside-remit", "duplicate"} <= {
        r.code for r in settings.reason_codes
    }
    assert settings.catalog_base == "http://petition-catalog:8080"


def test_reason_codes_and_committees_come_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(
        "PARAPHE_REASON_CODES", json.dumps([{"code": "hors-sujet", "label": "Hors sujet."}])
    )
    monkeypatch.setenv(
        "PARAPHE_COMMITTEES", json.dumps([{"id": "lois", "name": "Commission des lois"}])
    )
    settings = load_settings(ModerationSettings)
    assert [r.code for r in settings.reason_codes] == ["hors-sujet"]
    assert [c.id for c in settings.committees] == ["lois"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PARAPHE_REASON_CODES", "[{"),
        ("PARAPHE_REASON_CODES", '[{"code": "X!", "label": "x"}]'),
        ("PARAPHE_COMMITTEES", "[]"),
        ("PARAPHE_COMMITTEE_TERMS", '{"lois": {"justice": -1}}'),
        ("PARAPHE_CLAIM_LEASE_SECONDS", "3"),
        ("PARAPHE_CATALOG_URL", "not a url"),
    ],
)
def test_a_wrong_setting_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    for name, default in REQUIRED.items():
        monkeypatch.setenv(name, default)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable) as refused:
        load_settings(ModerationSettings)
    assert value not in str(refused.value)


def test_reason_codes_are_checked() -> None:
    for wrong in ("{}", "[]", '[{"code": "a-b", "label": ""}]', '[{"code": "ab"}]'):
        with pytest.raises(InvalidReasonCodes):
            parse_reason_codes(wrong)
    duplicated = json.dumps([{"code": "ab", "label": "x"}, {"code": "ab", "label": "y"}])
    with pytest.raises(InvalidReasonCodes):
        parse_reason_codes(duplicated)
