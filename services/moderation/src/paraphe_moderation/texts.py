"""Free texts people type: what an agent is told when one is refused.

A decision's explanation or note is published by the catalogue, which refuses a text holding a
control character (``paraphe_common.texts``): moderation checks the same rule first, so that the
agent is told which field is wrong before anything is sent, and so that such a text never
reaches moderation's own tables.
"""

from __future__ import annotations

from typing import Final

CONTROL_CHARACTERS: Final = (
    "Ce texte contient un caractère invisible non autorisé (caractère de contrôle) : "
    "retirez-le, par exemple en le retapant."
)
