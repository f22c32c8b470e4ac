"""What requests carry, read and checked: bodies with pydantic, ids, query parameters.

Anything wrong becomes a problem that says which field and why, in French: 422 for a body,
400 for a query parameter, 404 for an id that cannot name a petition.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, TypeVar

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from paraphe_common.problems import Problem
from paraphe_common.texts import has_control_characters, with_line_feeds
from paraphe_petition_catalog.petitions import (
    FOLLOW_UP,
    FOLLOW_UP_STEPS,
    PUBLISH,
    REJECT,
    TAKE_DOWN,
)


def _printable(value: str) -> str:
    if has_control_characters(value):
        raise ValueError("contient des caractères invisibles qui ne sont pas admis")
    return with_line_feeds(value)


# Every line break Unicode has that a control character rule does not already refuse.
_LINE_BREAKS: Final = re.compile(r"[\n\r\u2028\u2029]")


def _one_line(value: str) -> str:
    if _LINE_BREAKS.search(value):
        raise ValueError("doit tenir sur une seule ligne")
    # A tab, pasted from elsewhere, is a space in a title.
    return value.replace("\t", " ")


def _legible(value: str) -> str:
    # Zero-width spaces and the like pass the lengths, and show nothing.
    if not any(character.isalnum() for character in value):
        raise ValueError("ne contient ni lettre ni chiffre")
    return value


Text = Annotated[str, AfterValidator(_printable)]
Line = Annotated[Text, AfterValidator(_one_line)]
Title = Annotated[Line, AfterValidator(_legible), Field(min_length=10, max_length=200)]
Body = Annotated[Text, AfterValidator(_legible), Field(min_length=20, max_length=20_000)]
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

    @field_validator("title", "body")
    @classmethod
    def _kept(cls, value: str | None) -> str | None:
        # Run only for a field sent: null would remove what a petition cannot lack.
        if value is None:
            raise ValueError("ne peut pas être supprimé")
        return value

    @model_validator(mode="after")
    def _something_changes(self) -> DraftChanges:
        if not self.model_fields_set:
            raise ValueError(
                "aucune modification : envoyez au moins un des champs title, body, "
                "suggested_committee"
            )
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

    def missing(self) -> list[str]:
        """The fields its decision needs and it lacks, each to be named in the answer."""
        return [name for name in _NEEDED[self.decision] if getattr(self, name) is None]


# What each decision needs besides its id.
_NEEDED: Final = {
    PUBLISH: ("committee",),
    REJECT: ("reason_code", "reason"),
    TAKE_DOWN: ("reason_code", "reason"),
    FOLLOW_UP: ("step",),
}


# French reasons for the errors people can make; our own checks (value_error) say theirs in
# French; any other is said generically, never in pydantic's English.
_OTHER_REASON: Final = "valeur non valide"
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
    if error["type"] == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    template = _REASONS.get(error["type"], _OTHER_REASON)
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


async def read_decision(request: web.Request, detail: str) -> DecisionInput:
    """The decision the body describes, with every field it needs, or a 422 problem naming
    each field that is wrong or missing."""
    decision = await read_json(request, DecisionInput, detail)
    if missing := decision.missing():
        reason = f"champ obligatoire pour la décision {decision.decision}"
        raise Problem(
            422,
            detail,
            kind="invalid-body",
            invalid_params=[{"name": name, "reason": reason} for name in missing],
        )
    return decision


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
    if raw is None or raw == "":  # an empty field of a form: no filter
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise invalid_parameter(name, f"entier entre 1 et {maximum} attendu")
    return int(raw)


def choice_parameter(
    request: web.Request,
    name: str,
    choices: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
) -> str | None:
    """The choice ``name`` names, as ``choices`` maps it (the address's word to the store's).

    A wrong one is a 400 that lists the values a program may send or, given ``labels``, the
    choices as a person reads them in the form.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        if labels is None:
            raise invalid_parameter(name, "valeurs possibles : " + ", ".join(sorted(choices)))
        said = ", ".join(f"« {labels.get(choice, choice)} »" for choice in choices)
        raise invalid_parameter(name, "choisissez parmi " + said)
    return choices[raw]


def text_parameter(request: web.Request, name: str, max_length: int) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if len(text) > max_length:
        raise invalid_parameter(name, f"au plus {max_length} caractères")
    if has_control_characters(text) or "\ufffd" in text:
        raise invalid_parameter(name, "caractères non valides")
    return text or None
