"""Rotating the signer pepper without letting anyone sign a petition twice.

A person's dedupe key for a petition is ``HMAC(signer_key, petition)`` with
``signer_key = HMAC(pepper, FranceConnect sub)``: a new pepper gives everyone new keys, and
PostgreSQL's unique key would then take a second signature of a petition signed under the old
one. So each petition is signed under one pepper version for its whole life, chosen by its
deadline, which is fixed when it is published:

- ``PARAPHE_SIGNER_PEPPER_SCHEDULE`` (auth-gateway and intake alike) maps each version to the
  instant from which it takes over, for petitions closing at or after it:
  ``{"1": "1970-01-01T00:00:00Z", "2": "2027-06-01T00:00:00Z"}``. To rotate, add version 2
  to auth-gateway's peppers and to the schedule, taking over at *now + the signing period*
  (6 months) or later: every petition open today closes before, and stays on version 1.
- While more than one pepper is configured, auth-gateway puts the signer's key under every
  version in the token (claim ``keys``); intake signs a petition with the key of the
  petition's version (``signer_key_for``). One pepper (no schedule): the token's subject,
  exactly as before.
- Once every petition of version 1 is closed (its last deadline passed), version 1 leaves the
  schedule and the signer keys; its pepper stays only if author ids still derive from it
  (``PARAPHE_AUTHOR_PEPPER_VERSION``, auth-gateway): author ids never change, since the
  catalogue keys the author's petitions and identity by them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from aiohttp import web

from paraphe_common.petition_states import PetitionState
from paraphe_common.problems import Problem
from paraphe_common.tokens import Claims

log = logging.getLogger(__name__)

# The schedule, on the application of a service that signs (intake).
PEPPER_SCHEDULE: Final[web.AppKey[dict[str, datetime]]] = web.AppKey("pepper_schedule")
KEYS_CLAIM: Final = "keys"
VERSION_CLAIM: Final = "pv"


def pepper_version_for(closes_at: float | None, schedule: Mapping[str, datetime]) -> str:
    """The version a petition closing at ``closes_at`` is signed under.

    The version that took over last at or before the deadline; a petition without a deadline
    (never the case of a published one) takes the newest.
    """
    ordered = sorted(schedule.items(), key=lambda item: item[1])
    if closes_at is None:
        return ordered[-1][0]
    chosen = ordered[0][0]
    for version, takes_over in ordered:
        if takes_over.timestamp() <= closes_at:
            chosen = version
    return chosen


def signer_key_for(
    claims: Claims, petition: PetitionState | None, schedule: Mapping[str, datetime]
) -> str:
    """The signer key a petition is signed with, from a signer token's claims.

    A 401 problem when the token carries no key of the petition's version (issued before that
    version was configured): signing in again gives one. A 503 when the token carries keys of
    several versions and this service has no schedule: auth-gateway is rotating and intake was not
    told (deployed out of order); the token's subject, the new version's key, would let
    everyone sign today's petitions a second time.
    """
    keys = claims.extra.get(KEYS_CLAIM)
    if not schedule:
        if isinstance(keys, dict) and len(keys) > 1:
            _say_schedule_missing()
            raise Problem(
                503,
                "La signature est momentanément indisponible : merci de réessayer plus tard.",
                kind="signing-unavailable",
                headers={"Retry-After": "60"},
            )
        return claims.subject
    version = pepper_version_for(petition.closes_at if petition else None, schedule)
    if isinstance(keys, dict):
        key = keys.get(version)
        if isinstance(key, str) and key:
            return key
    elif str(claims.extra.get(VERSION_CLAIM, "")) == version:
        return claims.subject
    raise Problem(
        401,
        "Votre session date d'avant un changement de clés : identifiez-vous à nouveau.",
        kind="invalid-token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


@functools.cache
def _say_schedule_missing() -> None:
    """Once a process: the refusals themselves show as 503s in the HTTP metrics."""
    log.error(
        "a signer token carries keys of several pepper versions and this service has no "
        "PARAPHE_SIGNER_PEPPER_SCHEDULE: signing refused until it has auth-gateway's"
    )
