"""The committee's follow-up rule, which moderation and the catalogue both apply."""

from __future__ import annotations

import pytest

from paraphe_common import follow_up

THRESHOLDS = (100_000, 500_000)
BEFORE = (
    "Le suivi commence quand la pétition atteint 100\u202f000 signatures, le seuil qui la "
    "renvoie en commission : elle ne l'a pas atteint."
)
NO_DEBATE = (
    "Un débat en séance publique suppose 500\u202f000 signatures : la pétition n'a pas atteint "
    "ce seuil."
)


@pytest.mark.parametrize(
    ("step", "reached", "recorded", "refusal"),
    [
        pytest.param(None, (), (), BEFORE, id="no threshold, no step at all"),
        pytest.param("rapporteur-appointed", (), (), BEFORE, id="no threshold"),
        pytest.param("rapporteur-appointed", (100_000,), (), None, id="the committee's"),
        pytest.param("debated-in-public-session", (100_000,), (), NO_DEBATE, id="no debate yet"),
        pytest.param("debated-in-public-session", (100_000, 500_000), (), None, id="debate"),
        pytest.param("debated-in-public-session", (500_000,), (), None, id="the last alone"),
        pytest.param(
            "rapporteur-appointed", (100_000,), ("examined-in-committee",), None, id="any order"
        ),
        pytest.param(
            "answer-published",
            (100_000,),
            ("classified",),
            "Le suivi de cette pétition est terminé (« Classée ») : aucune étape ne s'y ajoute.",
            id="after the end",
        ),
    ],
)
def test_a_step_is_allowed_after_the_thresholds_and_before_the_end(
    step: str | None, reached: tuple[int, ...], recorded: tuple[str, ...], refusal: str | None
) -> None:
    assert (
        follow_up.refusal(step, reached=reached, recorded=recorded, thresholds=THRESHOLDS)
        == refusal
    )


def test_the_steps_that_end_the_matter_are_steps() -> None:
    assert set(follow_up.STEPS) >= follow_up.FINAL_STEPS
    assert follow_up.PUBLIC_SESSION_STEP in follow_up.STEPS
