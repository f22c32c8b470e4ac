import json

import pytest

from paraphe_common.committees import ASSEMBLEE_NATIONALE, Committee
from paraphe_moderation.suggestions import (
    DEFAULT_TERMS,
    CommitteeScorer,
    InvalidCommitteeTerms,
    parse_committee_terms,
)

SCORER = CommitteeScorer(ASSEMBLEE_NATIONALE, DEFAULT_TERMS)

# Petitions written the way citizens write them, and where the Assemblée would send them.
SAMPLES = [
    pytest.param(
        "Pour le maintien des petites classes dans les écoles rurales",
        "Chaque année des classes ferment dans nos villages. Nous demandons un moratoire sur "
        "les fermetures d'écoles en zone rurale et des moyens pour les enseignants.",
        "affaires-culturelles",
        id="rural schools",
    ),
    pytest.param(
        "Revaloriser les retraites agricoles",
        "Les pensions de retraite des anciens exploitants restent sous le seuil de pauvreté. "
        "Nous demandons que la retraite minimale soit portée à 85 % du SMIC.",
        "affaires-sociales",
        id="farm pensions",
    ),
    pytest.param(
        "Encadrer les loyers dans toutes les grandes villes",
        "Le logement absorbe la moitié du budget des locataires. L'encadrement des loyers doit "
        "être étendu à toutes les agglomérations de plus de 100 000 habitants.",
        "affaires-economiques",
        id="rents",
    ),
    pytest.param(
        "Supprimer la TVA sur les produits de première nécessité",
        "Les pâtes, le riz, les couches : l'impôt le plus injuste frappe tous les contribuables "
        "de la même façon. Une taxe à 0 % sur ces produits rendrait du pouvoir d'achat.",
        "finances",
        id="VAT",
    ),
    pytest.param(
        "Interdire la reconnaissance faciale dans l'espace public",
        "La police expérimente la reconnaissance faciale sans cadre légal. Nous demandons une loi "
        "qui protège les libertés publiques et interdise cette surveillance.",
        "lois",
        id="facial recognition",
    ),
    pytest.param(
        "Rouvrir les petites lignes de train",
        "Les lignes ferroviaires de desserte fine du territoire disparaissent. Le train est le "
        "transport le moins émetteur de carbone : relançons-le pour le climat.",
        "developpement-durable",
        id="railway lines",
    ),
    pytest.param(
        "Reconnaissance pour les soldats blessés en opération extérieure",
        "Les militaires blessés en OPEX attendent des mois leur pension. L'armée doit les "
        "accompagner, comme les anciens combattants.",
        "defense",
        id="wounded soldiers",
    ),
    pytest.param(
        "Augmenter l'aide au développement",
        "La France doit tenir son engagement aux Nations unies et consacrer 0,7 % de son revenu "
        "à l'aide au développement, par sa diplomatie et ses ambassades.",
        "affaires-etrangeres",
        id="development aid",
    ),
]


@pytest.mark.parametrize(("title", "body", "expected"), SAMPLES)
def test_the_suggested_committee_follows_the_text(title: str, body: str, expected: str) -> None:
    suggestion = SCORER.suggest(title, body)
    assert suggestion.committee is not None
    assert suggestion.committee.id == expected, [
        (s.committee.id, s.score) for s in suggestion.scores
    ]


def test_the_scores_show_the_terms_behind_them() -> None:
    suggestion = SCORER.suggest("Les écoles", "Des écoles et des élèves")
    best = suggestion.scores[0]
    # Weight 2, found once in the body and once in the title, which counts twice.
    assert best.terms["ecole*"] == 2 * (2 + 1)
    assert best.terms["eleve*"] == 2 * 1
    assert best.score == sum(best.terms.values())


def test_words_match_without_accents_or_case_and_stars_match_word_starts() -> None:
    scorer = CommitteeScorer([Committee("x", "X")], {"x": {"ecole*": 1, "eau": 1}})
    assert scorer.suggest("", "ÉCOLE, Écoles, l'eau").scores[0].terms == {"ecole*": 2, "eau": 1}
    assert scorer.suggest("", "beaucoup d'eaux").scores == ()


def test_a_text_with_no_known_term_keeps_the_authors_choice() -> None:
    suggestion = SCORER.suggest("Une demande", "Rien de précis.", author_choice="lois")
    assert suggestion.committee is not None
    assert suggestion.committee.id == "lois"
    assert SCORER.suggest("Une demande", "Rien de précis.").committee is None


def test_on_a_tie_the_authors_choice_wins() -> None:
    committees = [Committee("a", "A"), Committee("b", "B")]
    scorer = CommitteeScorer(committees, {"a": {"vote": 1}, "b": {"impot": 1}})
    assert scorer.suggest("", "vote impot").committee == committees[0]
    assert scorer.suggest("", "vote impot", author_choice="b").committee == committees[1]
    # An unknown choice is ignored.
    assert scorer.suggest("", "vote impot", author_choice="zzz").committee == committees[0]


def test_terms_are_configurable_and_checked() -> None:
    assert parse_committee_terms(json.dumps({"lois": {"justice": 2}})) == {"lois": {"justice": 2.0}}
    assert parse_committee_terms(None) is DEFAULT_TERMS
    for wrong in ("[]", '{"lois": []}', '{"lois": {"justice": 0}}', '{"lois": {"!!": 1}}', "{"):
        with pytest.raises(InvalidCommitteeTerms):
            parse_committee_terms(wrong)
