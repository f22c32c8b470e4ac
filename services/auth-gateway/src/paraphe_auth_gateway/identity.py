"""What is derived from a FranceConnect identity, and the one thing checked about a signer.

A signer leaves nothing but ``signer_key = HMAC(k_signer, sub)``; an author is known by
``author_id = HMAC(k_author, sub)``. Both subkeys come from the same versioned pepper under
different labels (domain separation), so a signer key and an author id of one person cannot be
matched, and neither can be reversed into the FranceConnect ``sub`` without the pepper.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
ADULT_AGE = 18

# Civil registers abroad sometimes lack the day or month of birth: FranceConnect then gives
# "00" for them. The latest date they may stand for is assumed, so nobody passes for older.
_PARTIAL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")

_SIGNER_LABEL = b"paraphe/signer-key/v1"
_AUTHOR_LABEL = b"paraphe/author-id/v1"


class NotAnAdult(Exception):
    pass


class InvalidBirthdate(Exception):
    """No birth date, or not one: the identity is incomplete, which says nothing of the age."""


def _subkey(pepper: str, label: bytes) -> bytes:
    return hmac.new(pepper.encode(), label, hashlib.sha256).digest()


def signer_key(pepper: str, subject: str) -> str:
    return hmac.new(_subkey(pepper, _SIGNER_LABEL), subject.encode(), hashlib.sha256).hexdigest()


def author_id(pepper: str, subject: str) -> str:
    return hmac.new(_subkey(pepper, _AUTHOR_LABEL), subject.encode(), hashlib.sha256).hexdigest()


def today_in_paris() -> date:
    return datetime.now(PARIS).date()


def age_on(birthdate: date, day: date) -> int:
    had_birthday = (day.month, day.day) >= (birthdate.month, birthdate.day)
    return day.year - birthdate.year - (0 if had_birthday else 1)


def check_adult(birthdate_claim: object, today: date | None = None) -> None:
    """Refuse anyone under 18 today in Europe/Paris, or whose birth date is not a date."""
    if not isinstance(birthdate_claim, str) or not (parts := _PARTIAL_DATE.match(birthdate_claim)):
        raise InvalidBirthdate
    year, month, day = (int(part) for part in parts.groups())
    month = month or 12
    if day == 0 and 1 <= month <= 12:
        day = calendar.monthrange(year, month)[1]
    try:
        birthdate = date(year, month, day)
    except ValueError:
        raise InvalidBirthdate from None
    if age_on(birthdate, today or today_in_paris()) < ADULT_AGE:
        raise NotAnAdult
