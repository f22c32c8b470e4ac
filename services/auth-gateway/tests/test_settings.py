"""What auth-gateway refuses to start with, and how it reads what it accepts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

if TYPE_CHECKING:
    from conftest import SettingsFactory


def test_staff_allowlist_emails_are_read_in_lower_case_and_subjects_as_they_are(
    settings_with: SettingsFactory,
) -> None:
    allowlist = {
        " Marie.Moderatrice@Assemblee.EXAMPLE": ["moderator"],
        "AbC-subject": ["admin"],
        "abc-subject": ["committee-secretariat"],
    }
    settings = settings_with(staff_roles=json.dumps(allowlist))
    assert settings.staff_roles == {
        "marie.moderatrice@assemblee.example": ["moderator"],
        "AbC-subject": ["admin"],
        "abc-subject": ["committee-secretariat"],
    }


@pytest.mark.parametrize(
    "staff_roles",
    [
        pytest.param(
            '{"marie@assemblee.example": ["moderator"], "Marie@Assemblee.example ": ["admin"]}',
            id="one email in two cases",
        ),
        pytest.param(
            '{"marie@assemblee.example": ["moderator"], "marie@assemblee.example": ["admin"]}',
            id="one key twice",
        ),
    ],
)
def test_two_staff_allowlist_keys_for_one_person_are_refused_without_naming_them(
    settings_with: SettingsFactory, staff_roles: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        settings_with(staff_roles=staff_roles)
    (error,) = refused.value.errors(include_input=False)
    assert error["loc"] == ("staff_roles",)
    assert "keys 1 and 2 are the same" in error["msg"]
    assert "marie" not in error["msg"].lower()
