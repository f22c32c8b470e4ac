"""The committee suggested for a petition, from its text: weighted terms anyone can read.

Each committee has a list of terms with a weight. A term is one or more words; a word ending
in ``*`` matches every word it begins (``agricult*`` matches "agriculture", "agriculteurs").
Words are compared without case or accents. A petition's score for a committee is the sum,
over the terms found, of weight times occurrences, the title counting twice. The moderator sees
the scores and the terms behind them, and confirms or changes the suggestion: nothing here
decides on its own.

``PARAPHE_COMMITTEE_TERMS`` replaces the default terms (a JSON object
``{"<committee id>": {"<term>": weight}}``); terms of committees not configured are ignored.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from paraphe_common.committees import Committee

CommitteeTerms = Mapping[str, Mapping[str, float]]

TITLE_WEIGHT: Final = 2.0
_WORD = re.compile(r"[a-z0-9]+\*?")

# For the Assemblée nationale's eight standing committees, after their remits.
DEFAULT_TERMS: Final[dict[str, dict[str, float]]] = {
    "affaires-culturelles": {
        "ecole*": 2, "enseign*": 2, "education": 3, "eleve*": 2, "professeur*": 2,
        "universit*": 2, "etudiant*": 2, "scolaire*": 2, "lycee*": 2, "college*": 1,
        "culture*": 2, "culturel*": 2, "patrimoine": 2, "musee*": 2, "cinema*": 2,
        "livre*": 1, "presse": 2, "audiovisuel*": 2, "media*": 1, "sport*": 2,
        "jeunesse": 1, "recherche": 1, "bibliothe*": 2, "artiste*": 2, "spectacle*": 2,
    },
    "affaires-economiques": {
        "entreprise*": 2, "commerce*": 2, "commercant*": 2, "agricult*": 3, "agricole*": 3,
        "industri*": 2, "energie*": 1, "electricite": 2, "consommat*": 2, "logement*": 3,
        "loyer*": 3, "locataire*": 2, "numerique": 1, "telecom*": 2, "internet": 1,
        "artisan*": 2, "tourisme": 2, "prix": 1, "concurrence": 2, "eleveur*": 2,
        "elevage*": 2, "peche": 1, "carburant*": 1, "pouvoir d achat": 2,
    },
    "affaires-etrangeres": {
        "etranger*": 1, "diplomat*": 3, "international*": 2, "ambassade*": 3, "traite*": 1,
        "onu": 3, "nations unies": 3, "francophonie": 3, "consul*": 2, "guerre*": 1,
        "humanitaire*": 2, "reconnaissance de l etat": 3, "aide au developpement": 3,
        "sanction*": 1, "pays": 1, "francais de l etranger": 3,
    },
    "affaires-sociales": {
        "sante": 3, "hopita*": 3, "medecin*": 3, "soins": 2, "soignant*": 3, "maladie*": 2,
        "retraite*": 3, "travail": 2, "travailleur*": 2, "salari*": 2, "chomage": 3,
        "handicap*": 3, "securite sociale": 3, "allocation*": 2, "famille*": 1,
        "infirmi*": 3, "ehpad": 3, "dependance": 2, "medicament*": 3, "smic": 3,
        "emploi*": 1, "pension*": 2, "psychiatri*": 3, "urgence*": 1, "cancer*": 2,
    },
    "defense": {
        "armee*": 3, "militaire*": 3, "defense nationale": 3, "soldat*": 3,
        "anciens combattants": 3, "service national": 3, "otan": 3, "armement*": 3,
        "veteran*": 3, "marine nationale": 3, "reserviste*": 3, "dissuasion": 2,
        "operation* exterieure*": 3, "opex": 3,
    },
    "developpement-durable": {
        "environnement*": 3, "climat*": 3, "biodiversite": 3, "pollution*": 3,
        "transport*": 2, "train*": 2, "ferroviaire*": 3, "sncf": 3, "route*": 1,
        "autoroute*": 2, "velo*": 2, "dechet*": 3, "eau": 1, "eolien*": 3,
        "renouvelable*": 2, "amenagement": 2, "territoire*": 1, "littoral": 2,
        "chasse": 2, "pesticide*": 2, "plastique*": 2, "foret*": 2, "arbre*": 1,
        "nature": 1, "especes": 2, "ecologi*": 3, "carbone": 2, "rechauffement": 3,
    },
    "finances": {
        "impot*": 3, "fiscal*": 3, "taxe*": 3, "tva": 3, "budget*": 2, "budgetaire*": 2,
        "dette": 2, "finances publiques": 3, "banque*": 2, "bancaire*": 2, "douane*": 2,
        "contribuable*": 3, "niche* fiscale*": 3, "prelevement*": 2, "depense* publique*": 3,
        "successio*": 2, "heritage*": 2, "impose*": 2, "imposition": 3,
    },
    "lois": {
        "justice": 2, "tribuna*": 2, "juge*": 2, "judiciaire*": 2, "police*": 2,
        "policier*": 2, "constitution*": 3, "election*": 3, "electora*": 3, "vote": 2,
        "referendum": 3, "liberte*": 1, "prison*": 3, "penal*": 3, "delit*": 2,
        "crime*": 2, "laicite": 3, "immigration": 3, "nationalite": 3,
        "collectivites": 2, "fonction publique": 3, "etat civil": 3, "mariage": 2,
        "ric": 3, "droit de vote": 3, "securite publique": 2, "reconnaissance faciale": 3,
        "citoyen*": 1, "asile": 3,
    },
}  # fmt: skip


class InvalidCommitteeTerms(ValueError):
    pass


def normalise(text: str) -> str:
    """Lower case, no accents, apostrophes and hyphens as spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def parse_committee_terms(document: str | None) -> dict[str, dict[str, float]]:
    """The terms from their JSON setting; the default terms when unset."""
    if document is None or not document.strip():
        return DEFAULT_TERMS
    try:
        items = json.loads(document)
    except json.JSONDecodeError as exc:
        raise InvalidCommitteeTerms(f"not JSON: {exc.msg}") from None
    if not isinstance(items, dict):
        raise InvalidCommitteeTerms('expected {"<committee id>": {"<term>": weight}}')
    terms: dict[str, dict[str, float]] = {}
    for committee, weights in items.items():
        if not isinstance(weights, dict):
            raise InvalidCommitteeTerms(f"the terms of {committee} are not an object")
        terms[committee] = {}
        for term, weight in weights.items():
            if not words(term) or isinstance(weight, bool) or not isinstance(weight, int | float):
                raise InvalidCommitteeTerms(f"invalid term or weight for {committee}: {term!r}")
            if weight <= 0:
                raise InvalidCommitteeTerms(f"weights must be positive ({committee}: {term!r})")
            terms[committee][term] = float(weight)
    return terms


def _word_matches(pattern: str, word: str) -> bool:
    return word.startswith(pattern[:-1]) if pattern.endswith("*") else word == pattern


def _occurrences(pattern: list[str], text: list[str]) -> int:
    span = len(pattern)
    return sum(
        all(_word_matches(p, w) for p, w in zip(pattern, text[i : i + span], strict=True))
        for i in range(len(text) - span + 1)
    )


@dataclass(frozen=True)
class Score:
    committee: Committee
    score: float
    # The terms found and what each added, for the moderator to see why.
    terms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Suggestion:
    committee: Committee | None
    scores: tuple[Score, ...]  # every committee with a score above zero, best first


class CommitteeScorer:
    def __init__(self, committees: Iterable[Committee], terms: CommitteeTerms) -> None:
        self._committees = tuple(committees)
        self._patterns = {
            committee.id: [
                (term, words(term), weight) for term, weight in terms[committee.id].items()
            ]
            for committee in self._committees
            if committee.id in terms
        }

    def suggest(self, title: str, body: str, author_choice: str | None = None) -> Suggestion:
        """The best-scoring committee; on a tie or no score, the author's choice if it is one."""
        title_words, body_words = words(title), words(body)
        scores: list[Score] = []
        for committee in self._committees:
            found: dict[str, float] = {}
            for term, pattern, weight in self._patterns.get(committee.id, []):
                hits = TITLE_WEIGHT * _occurrences(pattern, title_words) + _occurrences(
                    pattern, body_words
                )
                if hits:
                    found[term] = weight * hits
            if found:
                scores.append(Score(committee, sum(found.values()), found))
        # Ties keep the configured order of the committees (sorted is stable).
        scores.sort(key=lambda s: s.score, reverse=True)
        known = {c.id: c for c in self._committees}
        chosen = known.get(author_choice or "")
        top: Committee | None = chosen
        if scores:
            tied = [s.committee for s in scores if s.score == scores[0].score]
            top = chosen if chosen in tied else tied[0]
        return Suggestion(top, tuple(scores))
