"""The three ways in: signing (anonymous citizens), authoring (identified citizens), staff."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from paraphe_common.tokens import AUTHOR, SIGNER, STAFF

FRANCECONNECT: Final = "franceconnect"
STAFF_PROVIDER: Final = "staff"


@dataclass(frozen=True)
class Flow:
    name: str
    provider: str
    scope: str
    audience: str
    default_return: str


SIGN = Flow("sign", FRANCECONNECT, "openid birthdate", SIGNER, "/")
AUTHOR_FLOW = Flow(
    "author", FRANCECONNECT, "openid given_name family_name birthdate email", AUTHOR, "/mon-espace"
)
STAFF_FLOW = Flow(
    "staff", STAFF_PROVIDER, "openid email given_name usual_name", STAFF, "/moderation/"
)

FLOWS: Final = {flow.name: flow for flow in (SIGN, AUTHOR_FLOW, STAFF_FLOW)}
