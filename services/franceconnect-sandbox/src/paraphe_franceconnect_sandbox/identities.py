"""The sandbox's demo people: citizens (some of them minors) and public agents.

Tests elsewhere name them by id (``CAMILLE_DURAND``...). Minors' birth dates follow today's
date in Europe/Paris, so "16 years old" and "turns 18 tomorrow" stay true on any day.
``generated:<anything>`` names a distinct adult derived from the text, for load tests that need
hundreds of thousands of different people.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from paraphe_franceconnect_sandbox.dates import age_on, date_fr, years_before

CAMILLE_DURAND = "camille-durand"
JEAN_MARTIN = "jean-martin"
AMINA_BENALI = "amina-benali"
LEA_PETIT = "lea-petit"
MAJEUR_DEMAIN = "majeur-demain"
MAJEUR_AUJOURDHUI = "majeur-aujourdhui"

ADULT_CITIZENS = frozenset({CAMILLE_DURAND, JEAN_MARTIN, AMINA_BENALI, MAJEUR_AUJOURDHUI})
MINOR_CITIZENS = frozenset({LEA_PETIT, MAJEUR_DEMAIN})

MARIE_MODERATRICE = "marie-moderatrice"
PAUL_SECRETARIAT = "paul-secretariat"
INES_ADMIN = "ines-admin"
HUGO_SANS_ROLE = "hugo-sans-role"

AGENTS = (MARIE_MODERATRICE, PAUL_SECRETARIAT, INES_ADMIN, HUGO_SANS_ROLE)

GENERATED_PREFIX = "generated:"
AGE_OF_MAJORITY = 18

# INSEE codes, as FranceConnect gives them: a commune of birth (empty when born abroad) and a
# country of birth (99100 is France).
FRANCE = "99100"
MOROCCO = "99350"


class Identity(Protocol):
    """A person one of the providers can authenticate."""

    @property
    def id(self) -> str: ...

    def claims(self) -> dict[str, str]:
        """Every claim this person can release, by claim name."""
        ...

    def describe(self, today: date) -> str:
        """One French line for the identity picker."""
        ...

    def is_minor(self, today: date) -> bool: ...


@dataclass(frozen=True)
class Citizen:
    id: str
    given_name: str
    family_name: str
    birthdate: date
    email: str
    gender: str  # "female" or "male", as FranceConnect says it
    birthplace: str
    birthcountry: str = FRANCE
    preferred_username: str = ""

    def claims(self) -> dict[str, str]:
        return {
            "given_name": self.given_name,
            "family_name": self.family_name,
            "birthdate": self.birthdate.isoformat(),
            "email": self.email,
            "gender": self.gender,
            "birthplace": self.birthplace,
            "birthcountry": self.birthcountry,
            "preferred_username": self.preferred_username,
        }

    def age(self, today: date) -> int:
        return age_on(self.birthdate, today)

    def is_minor(self, today: date) -> bool:
        return self.age(today) < AGE_OF_MAJORITY

    def describe(self, today: date) -> str:
        born = "née" if self.gender == "female" else "né"
        return (
            f"{self.given_name} {self.family_name}, {born} le {date_fr(self.birthdate)} "
            f"({self.age(today)} ans)"
        )


@dataclass(frozen=True)
class Agent:
    id: str
    given_name: str
    usual_name: str
    email: str
    uid: str
    organizational_unit: str
    role_in_dev: str  # what the development configuration lets this agent do

    def claims(self) -> dict[str, str]:
        return {
            "given_name": self.given_name,
            "usual_name": self.usual_name,
            "email": self.email,
            "uid": self.uid,
            "organizational_unit": self.organizational_unit,
        }

    def is_minor(self, today: date) -> bool:
        return False

    def describe(self, today: date) -> str:
        return (
            f"{self.given_name} {self.usual_name}, {self.organizational_unit} ({self.role_in_dev})"
        )


def _turning_18_tomorrow(today: date) -> date:
    tomorrow = today + timedelta(days=1)
    try:
        return tomorrow.replace(year=tomorrow.year - AGE_OF_MAJORITY)
    except ValueError:
        # Tomorrow is 29 February, a day that did not exist 18 years ago: born on 1 March,
        # this person is still a minor today and tomorrow.
        return date(tomorrow.year - AGE_OF_MAJORITY, 3, 1)


def demo_citizens(today: date) -> tuple[Citizen, ...]:
    """The demo citizens as of ``today`` (Europe/Paris), adults first."""
    return (
        Citizen(
            CAMILLE_DURAND, "Camille", "Durand", date(1985, 3, 14),
            "camille.durand@example.org", "female", birthplace="75112",
        ),
        Citizen(
            JEAN_MARTIN, "Jean", "Martin", date(1958, 11, 2),
            "jean.martin@example.org", "male", birthplace="69123",
        ),
        Citizen(
            AMINA_BENALI, "Amina", "Benali", date(2001, 7, 21),
            "amina.benali@example.org", "female", birthplace="", birthcountry=MOROCCO,
        ),
        Citizen(
            MAJEUR_AUJOURDHUI, "Chloé", "Bernard", years_before(today, AGE_OF_MAJORITY),
            "chloe.bernard@example.org", "female", birthplace="59350",
        ),
        Citizen(
            LEA_PETIT, "Léa", "Petit", years_before(today, 16) - timedelta(days=100),
            "lea.petit@example.org", "female", birthplace="33063",
        ),
        Citizen(
            MAJEUR_DEMAIN, "Lucas", "Moreau", _turning_18_tomorrow(today),
            "lucas.moreau@example.org", "male", birthplace="13055",
        ),
    )  # fmt: skip


DEMO_AGENTS = (
    Agent(
        MARIE_MODERATRICE, "Marie", "Moderatrice", "marie.moderatrice@assemblee.example",
        "agent-0001", "Service de la séance",
        "modératrice dans la configuration de développement",
    ),
    Agent(
        PAUL_SECRETARIAT, "Paul", "Secretariat", "paul.secretariat@assemblee.example",
        "agent-0002", "Secrétariat de la commission des lois",
        "secrétariat de commission dans la configuration de développement",
    ),
    Agent(
        INES_ADMIN, "Inès", "Admin", "ines.admin@assemblee.example",
        "agent-0003", "Direction des systèmes d'information",
        "administratrice dans la configuration de développement",
    ),
    Agent(
        HUGO_SANS_ROLE, "Hugo", "Sans-Rôle", "hugo.sansrole@assemblee.example",
        "agent-0004", "Service des affaires générales",
        "aucun rôle : l'accès doit lui être refusé",
    ),
)  # fmt: skip

# Birth dates of generated people fall between these two days, both included.
_GENERATED_FIRST_BIRTHDATE = date(1950, 1, 1)
_GENERATED_LAST_BIRTHDATE = date(2000, 12, 31)


def is_generated(hint: str) -> bool:
    return hint.startswith(GENERATED_PREFIX)


def generated_citizen(hint: str) -> Citizen:
    """The adult ``generated:<anything>`` names: always the same one for the same text."""
    digest = hashlib.sha256(hint.encode()).hexdigest()
    short = digest[:8]
    span = (_GENERATED_LAST_BIRTHDATE - _GENERATED_FIRST_BIRTHDATE).days + 1
    return Citizen(
        id=hint,
        given_name="Citoyen",
        family_name=f"Généré-{short}",
        birthdate=_GENERATED_FIRST_BIRTHDATE + timedelta(days=int(digest[8:16], 16) % span),
        email=f"{short}@generated.example",
        gender="female" if int(digest[16], 16) % 2 else "male",
        birthplace="75056",
    )


class Directory(Protocol):
    """The people one provider knows."""

    def listed(self, today: date) -> tuple[Identity, ...]:
        """Whom the identity picker offers."""
        ...

    def find(self, identity_id: str, today: date) -> Identity | None: ...


class CitizenDirectory:
    def listed(self, today: date) -> tuple[Identity, ...]:
        return demo_citizens(today)

    def find(self, identity_id: str, today: date) -> Identity | None:
        if is_generated(identity_id):
            return generated_citizen(identity_id)
        return next((c for c in demo_citizens(today) if c.id == identity_id), None)


class AgentDirectory:
    def listed(self, today: date) -> tuple[Identity, ...]:
        return DEMO_AGENTS

    def find(self, identity_id: str, today: date) -> Identity | None:
        return next((agent for agent in DEMO_AGENTS if agent.id == identity_id), None)
