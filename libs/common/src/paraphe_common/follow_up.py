"""The committee's follow-up of a petition: its steps, and which may be recorded when.

The follow-up comes after the thresholds (PARAPHE_THRESHOLDS, ``ThresholdSettings``): no step
before the first, which sends the petition to its committee (100,000 by default); a debate in
public session not before the last (500,000); nothing after a step that ends the matter
(« Classée », « Réponse publiée »). The steps between come in the order the committee works.

One rule, two readers: moderation offers an agent only the steps allowed; the catalogue
enforces it under the petition's row lock, in the transaction that records the step, the only
check two steps sent at once cannot both pass, and moderation relays its refusal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Final

# Each step, by the name the internal API and the events give it, as staff read it.
STEPS: Final = {
    "rapporteur-appointed": "Rapporteur nommé",
    "examined-in-committee": "Examinée en commission",
    "classified": "Classée",
    "debated-in-public-session": "Débattue en séance publique",
    "answer-published": "Réponse publiée",
}
# After these, nothing more is expected of the committee: no step is recorded after them.
FINAL_STEPS: Final = frozenset({"classified", "answer-published"})
# A debate in public session follows the last threshold; every other step, the first.
PUBLIC_SESSION_STEP: Final = "debated-in-public-session"
# The problem a step refused by this rule is answered with (409), by either service.
NOT_ALLOWED: Final = "follow-up-not-allowed"


def _signatures(value: int) -> str:
    # « 100 000 », as paraphe_common.site.number_fr writes it (this module needs no pages).
    return f"{value:,}".replace(",", "\u202f")


def refusal(
    step: str | None,
    *,
    reached: Iterable[int],
    recorded: Collection[str],
    thresholds: Sequence[int],
) -> str | None:
    """Why ``step`` (any step, when None) cannot be recorded on a petition, in French; None
    when it can.

    ``reached``: the thresholds the petition reached, as counter announced them; ``recorded``:
    the steps recorded on it already; ``thresholds``: PARAPHE_THRESHOLDS, ascending.
    """
    highest = max(reached, default=0)
    if highest < thresholds[0]:
        return (
            f"Le suivi commence quand la pétition atteint {_signatures(thresholds[0])} "
            "signatures, le seuil qui la renvoie en commission : elle ne l'a pas atteint."
        )
    if ended := sorted(FINAL_STEPS.intersection(recorded)):
        return (
            f"Le suivi de cette pétition est terminé (« {STEPS[ended[0]]} ») : "
            "aucune étape ne s'y ajoute."
        )
    if step == PUBLIC_SESSION_STEP and highest < thresholds[-1]:
        return (
            f"Un débat en séance publique suppose {_signatures(thresholds[-1])} signatures : "
            "la pétition n'a pas atteint ce seuil."
        )
    return None
