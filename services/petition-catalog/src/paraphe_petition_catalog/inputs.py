"""What requests carry, read and checked: bodies with pydantic, ids, query parameters.

Anything wrong becomes a problem that says which field and why, in French: 422 for a body,
400 for a query parameter, 404 for an id that cannot name a petition.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Final, Literal, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from paraphe_common.problems import Problem
from paraphe_petition_catalog.petitions import (
    FOLLOW_UP,
    FOLLOW_UP_STEPS,
    PUBLISH,
    REJECT,
    TAKE_DOWN,
)

# C0 control characters other than tab and line breaks, and lone surrogates (JSON can escape
# them, UTF-8 cannot hold them): PostgreSQL refuses NUL, and none belongs in a petition.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("contains control characters")
    return value.replace("\r\n", "\n")


_LINE_BREAKS: Final = re.compile(r"[\t\n\r]")


def _one_line(value: str) -> str:
    if _LINE_BREAKS.search(value):
        raise ValueError("must fit on one line")
    return value


Text = Annotated[str, AfterValidator(_printable)]
Title = Annotated[Text, AfterValidator(_one_line), Field(min_length=10, max_length=200)]
Body = Annotated[Text, Field(min_length=20, max_length=20_000)]
CommitteeId = Annotated[str, Field(min_length=1, max_length=48)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class DraftInput(_Input):
    title: Title
    body: Body
    suggested_committee: CommitteeId | None = None


class DraftChanges(_Input):
    title: Title | None = None
    body: Body | None = None
    suggested_committee: CommitteeId | None = None

    @model_validator(mode="after")
    def _something_changes(self) -> DraftChanges:
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        for required in ("title", "body"):
            if required in self.model_fields_set and getattr(self, required) is None:
                raise ValueError(f"{required} cannot be removed")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(include=self.model_fields_set)


class DecisionInput(_Input):
    decision_id: uuid.UUID
    decision: Literal["publish", "reject", "take-down", "follow-up"]
    committee: CommitteeId | None = None
    reason_code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")] | None = None
    reason: Annotated[Text, Field(min_length=1, max_length=2000)] | None = None
    step: Literal[FOLLOW_UP_STEPS] | None = None  # type: ignore[valid-type]
    note: Annotated[Text, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _what_the_decision_needs(self) -> DecisionInput:
        needed = {
            PUBLISH: ("committee",),
            REJECT: ("reason_code", "reason"),
            TAKE_DOWN: ("reason_code", "reason"),
            FOLLOW_UP: ("step",),
        }[self.decision]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.decision} needs {', '.join(missing)}")
        return self


# French reasons for the errors people can make; anything else keeps pydantic's words.
_REASONS: Final = {
    "missing": "champ obligatoire",
    "extra_forbidden": "champ inconnu",
    "string_too_short": "texte trop court (au moins {min_length} caractères)",
    "string_too_long": "texte trop long (au plus {max_length} caractères)",
    # The same limits on an annotated text (Title, Body) are reported under these types.
    "too_short": "texte trop court (au moins {min_length} caractères)",
    "too_long": "texte trop long (au plus {max_length} caractères)",
    "string_type": "texte attendu",
    "json_invalid": "JSON invalide",
    "model_type": "objet JSON attendu",
    "model_attributes_type": "objet JSON attendu",
    "uuid_parsing": "identifiant (UUID) attendu",
    "uuid_type": "identifiant (UUID) attendu",
    "literal_error": "valeur non reconnue",
    "string_pattern_mismatch": "format non reconnu",
}


def _reason(error: Any) -> str:
    template = _REASONS.get(error["type"])
    if template is None:
        return str(error["msg"]).removeprefix("Value error, ")
    return template.format(**error.get("ctx", {}))


def invalid_body(exc: ValidationError, detail: str) -> Problem:
    return Problem(
        422,
        detail,
        kind="invalid-body",
        invalid_params=[
            {"name": ".".join(str(p) for p in error["loc"]) or "body", "reason": _reason(error)}
            for error in exc.errors(include_input=False, include_url=False)
        ],
    )


M = TypeVar("M", bound=BaseModel)


async def read_json(request: web.Request, model: type[M], detail: str) -> M:
    """The body as ``model``, or a 422 problem naming each field that is wrong."""
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        raise invalid_body(exc, detail) from None


def invalid_field(name: str, reason: str, detail: str) -> Problem:
    return Problem(
        422, detail, kind="invalid-body", invalid_params=[{"name": name, "reason": reason}]
    )


def petition_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["petition_id"])
    except ValueError:
        raise petition_not_found() from None


def petition_not_found() -> Problem:
    return Problem(404, "Cette pétition n'existe pas.", kind="petition-not-found")


def invalid_parameter(name: str, reason: str) -> Problem:
    return Problem(
        400,
        f"Le paramètre « {name} » n'est pas valide : {reason}.",
        kind="invalid-parameter",
        invalid_params=[{"name": name, "reason": reason}],
    )


def int_parameter(request: web.Request, name: str, default: int | None, maximum: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise invalid_parameter(name, f"entier entre 1 et {maximum} attendu")
    return int(raw)


def choice_parameter(request: web.Request, name: str, choices: frozenset[str]) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise invalid_parameter(name, "valeurs possibles : " + ", ".join(sorted(choices)))
    return raw


def text_parameter(request: web.Request, name: str, max_length: int) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if len(text) > max_length:
        raise invalid_parameter(name, f"au plus {max_length} caractères")
    if _CONTROL.search(text) or "\ufffd" in text:
        raise invalid_parameter(name, "caractères non valides")
    return text or None
