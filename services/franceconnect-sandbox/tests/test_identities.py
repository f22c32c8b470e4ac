"""Demo people as relying parties receive them: minors stay minors, generated people differ."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

if TYPE_CHECKING:
    from conftest import RelyingParty

from paraphe_franceconnect_sandbox.identities import (
    ADULT_CITIZENS,
    AGE_OF_MAJORITY,
    LEA_PETIT,
    MAJEUR_AUJOURDHUI,
    MAJEUR_DEMAIN,
    MINOR_CITIZENS,
    demo_citizens,
)

ALL_CLAIMS = (
    "openid given_name family_name birthdate email gender birthplace birthcountry "
    "preferred_username"
)


def age(birthdate: str, on: date) -> int:
    born = date.fromisoformat(birthdate)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def paris_today() -> date:
    return datetime.now(ZoneInfo("Europe/Paris")).date()


async def birthdate_of(citizens: RelyingParty, login_hint: str) -> str:
    sign_in = await citizens.sign_in(login_hint, scope="openid birthdate")
    birthdate: str = (await citizens.verify_userinfo(sign_in))["birthdate"]
    return birthdate


@pytest.mark.parametrize("identity", sorted(MINOR_CITIZENS))
async def test_minors_are_under_18_today_in_paris(citizens: RelyingParty, identity: str) -> None:
    assert age(await birthdate_of(citizens, identity), paris_today()) < AGE_OF_MAJORITY


@pytest.mark.parametrize("identity", sorted(ADULT_CITIZENS))
async def test_adults_are_18_or_more_today_in_paris(citizens: RelyingParty, identity: str) -> None:
    assert age(await birthdate_of(citizens, identity), paris_today()) >= AGE_OF_MAJORITY


async def test_lea_petit_is_16(citizens: RelyingParty) -> None:
    assert age(await birthdate_of(citizens, LEA_PETIT), paris_today()) == 16


async def test_majeur_aujourdhui_turns_18_today(citizens: RelyingParty) -> None:
    today = paris_today()
    birthdate = await birthdate_of(citizens, MAJEUR_AUJOURDHUI)
    assert age(birthdate, today) == AGE_OF_MAJORITY
    assert age(birthdate, today - timedelta(days=1)) == AGE_OF_MAJORITY - 1


async def test_majeur_demain_turns_18_tomorrow(citizens: RelyingParty) -> None:
    today = paris_today()
    birthdate = await birthdate_of(citizens, MAJEUR_DEMAIN)
    assert age(birthdate, today) == AGE_OF_MAJORITY - 1
    assert age(birthdate, today + timedelta(days=1)) == AGE_OF_MAJORITY


@pytest.mark.parametrize(
    "today",
    [date(2028, 2, 28), date(2028, 2, 29), date(2027, 2, 28), date(2027, 3, 1), date(2026, 12, 31)],
)
def test_minors_and_majority_hold_around_leap_days_and_new_year(today: date) -> None:
    ages = {
        citizen.id: age(citizen.birthdate.isoformat(), today) for citizen in demo_citizens(today)
    }
    assert all(ages[identity] < AGE_OF_MAJORITY for identity in MINOR_CITIZENS)
    assert all(ages[identity] >= AGE_OF_MAJORITY for identity in ADULT_CITIZENS)
    assert ages[MAJEUR_AUJOURDHUI] == AGE_OF_MAJORITY
    assert ages[LEA_PETIT] == 16


async def test_generated_identities_are_distinct_per_hint_and_stable_for_one_hint(
    citizens: RelyingParty,
) -> None:
    people = []
    for hint in ("generated:charge-1", "generated:charge-2", "generated:charge-1"):
        sign_in = await citizens.sign_in(hint, scope=ALL_CLAIMS)
        people.append(await citizens.verify_userinfo(sign_in))
    first, second, first_again = people
    for claims in (first, first_again):
        claims.pop("iat"), claims.pop("exp")
    assert first == first_again
    assert first["sub"] != second["sub"]
    assert first["family_name"] != second["family_name"]
    assert first["email"] != second["email"]


async def test_a_generated_identity_is_an_adult_with_a_derived_name(citizens: RelyingParty) -> None:
    hint = "generated:utilisateur-42"
    claims = await citizens.verify_userinfo(await citizens.sign_in(hint, scope=ALL_CLAIMS))
    short = hashlib.sha256(hint.encode()).hexdigest()[:8]
    assert claims["given_name"] == "Citoyen"
    assert claims["family_name"] == f"Généré-{short}"
    assert claims["email"] == f"{short}@generated.example"
    assert date(1950, 1, 1) <= date.fromisoformat(claims["birthdate"]) <= date(2000, 12, 31)
    assert age(claims["birthdate"], paris_today()) >= AGE_OF_MAJORITY
