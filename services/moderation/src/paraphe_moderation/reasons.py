"""Why a petition is refused or taken down: reason codes, each with the French label people read.

The default list follows the admissibility rules of the Assemblée nationale and the Sénat. A
parliament with other rules sets ``PARAPHE_REASON_CODES`` to a JSON list of
``{"code": ..., "label": ...}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

_CODE = re.compile(r"^[a-z][a-z0-9-]{1,47}$")


@dataclass(frozen=True)
class ReasonCode:
    code: str  # stable, lowercase: stored in the audit log and sent to the catalog
    label: str  # French, shown to moderators, authors and the public


DEFAULT_REASON_CODES: Final = (
    ReasonCode("not-french", "La pétition n'est pas rédigée en français."),
    ReasonCode("discriminatory", "La pétition comporte des propos discriminatoires."),
    ReasonCode("defamatory", "La pétition comporte des propos diffamatoires."),
    ReasonCode("insulting", "La pétition comporte des propos injurieux ou violents."),
    ReasonCode(
        "outside-remit",
        "La demande ne relève pas de la compétence du Parlement (décision de justice, "
        "affaire individuelle, compétence d'une collectivité…).",
    ),
    ReasonCode("duplicate", "Une pétition au contenu identique est déjà en ligne."),
    ReasonCode("advertising", "La pétition a un caractère publicitaire ou commercial."),
    ReasonCode("incomprehensible", "Le texte de la pétition est incompréhensible."),
    ReasonCode(
        "personal-data",
        "La pétition contient des données personnelles relatives à des tiers.",
    ),
)


class InvalidReasonCodes(ValueError):
    pass


def parse_reason_codes(document: str | None) -> tuple[ReasonCode, ...]:
    """The reason codes from their JSON setting; the default list when unset."""
    if document is None or not document.strip():
        return DEFAULT_REASON_CODES
    try:
        items = json.loads(document)
    except json.JSONDecodeError as exc:
        raise InvalidReasonCodes(f"not JSON: {exc.msg}") from None
    if not isinstance(items, list) or not items:
        raise InvalidReasonCodes("expected a non-empty JSON list of {code, label}")
    codes: list[ReasonCode] = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"code", "label"}:
            raise InvalidReasonCodes("each reason is an object with exactly code and label")
        code, label = item["code"], item["label"]
        if not isinstance(code, str) or not _CODE.match(code):
            raise InvalidReasonCodes(f"invalid reason code {code!r}")
        if not isinstance(label, str) or not label.strip():
            raise InvalidReasonCodes(f"reason {code} has no label")
        codes.append(ReasonCode(code, label.strip()))
    if len({c.code for c in codes}) != len(codes):
        raise InvalidReasonCodes("reason codes must be unique")
    return tuple(codes)


# What a citizen may report about a published petition: a short, fixed list.
REPORT_REASONS: Final = (
    ReasonCode("discriminatory", "Propos discriminatoires ou haineux"),
    ReasonCode("defamatory", "Propos diffamatoires"),
    ReasonCode("insulting", "Propos injurieux ou violents"),
    ReasonCode("personal-data", "Données personnelles d'un tiers"),
    ReasonCode("advertising", "Publicité ou contenu commercial"),
    ReasonCode("other", "Autre motif"),
)
