"""The standing committees a petition can be allocated to.

The default is the Assemblée nationale's eight standing committees. A parliament with others
sets ``PARAPHE_COMMITTEES`` to a JSON list of ``{"id": ..., "name": ...}``; catalog and
moderation must be given the same list.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

_ID = re.compile(r"^[a-z][a-z0-9-]{1,47}$")


@dataclass(frozen=True)
class Committee:
    id: str  # stable, lowercase, used in URLs, events and the database
    name: str  # as published, in French


ASSEMBLEE_NATIONALE: Final = (
    Committee("affaires-culturelles", "Commission des affaires culturelles et de l'éducation"),
    Committee("affaires-economiques", "Commission des affaires économiques"),
    Committee("affaires-etrangeres", "Commission des affaires étrangères"),
    Committee("affaires-sociales", "Commission des affaires sociales"),
    Committee("defense", "Commission de la défense nationale et des forces armées"),
    Committee(
        "developpement-durable",
        "Commission du développement durable et de l'aménagement du territoire",
    ),
    Committee(
        "finances",
        "Commission des finances, de l'économie générale et du contrôle budgétaire",
    ),
    Committee(
        "lois",
        "Commission des lois constitutionnelles, de la législation et de l'administration "
        "générale de la République",
    ),
)


class InvalidCommittees(ValueError):
    pass


def parse_committees(document: str | None) -> tuple[Committee, ...]:
    """The committees from their JSON setting; the Assemblée's eight when unset."""
    if document is None or not document.strip():
        return ASSEMBLEE_NATIONALE
    try:
        items = json.loads(document)
    except json.JSONDecodeError as exc:
        raise InvalidCommittees(f"not JSON: {exc.msg}") from None
    if not isinstance(items, list) or not items:
        raise InvalidCommittees("expected a non-empty JSON list of {id, name}")
    committees: list[Committee] = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"id", "name"}:
            raise InvalidCommittees("each committee is an object with exactly id and name")
        identifier, name = item["id"], item["name"]
        if not isinstance(identifier, str) or not _ID.match(identifier):
            raise InvalidCommittees(f"invalid committee id {identifier!r}")
        if not isinstance(name, str) or not name.strip():
            raise InvalidCommittees(f"committee {identifier} has no name")
        committees.append(Committee(identifier, name.strip()))
    if len({c.id for c in committees}) != len(committees):
        raise InvalidCommittees("committee ids must be unique")
    return tuple(committees)
