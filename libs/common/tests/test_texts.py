"""The one rule on free texts: which characters are refused, one by one, and line breaks.

The catalogue (paraphe_petition_catalog.inputs) and moderation (paraphe_moderation.decisions,
reports) both apply it, so a text moderation lets through is one the catalogue publishes.
"""

from __future__ import annotations

import itertools

from paraphe_common.texts import has_control_characters, with_line_feeds

# The C0 and C1 blocks, DEL, the surrogates and their neighbours, the specials.
CODE_POINTS = itertools.chain(
    range(0x0000, 0x0100), range(0xD7F0, 0xE010), range(0xFFF0, 0x10000), [0x10FFFF]
)
TAB, LINE_FEED, CARRIAGE_RETURN, DELETE = 0x09, 0x0A, 0x0D, 0x7F
REFUSED = (
    (set(range(0x00, 0x20)) - {TAB, LINE_FEED, CARRIAGE_RETURN})
    | {DELETE}
    | set(range(0x80, 0xA0))  # C1, NEL (U+0085) among them
    | set(range(0xD800, 0xE000))
)


def test_c0_and_c1_controls_but_tab_and_line_breaks_del_and_lone_surrogates_are_refused() -> None:
    wrong = [
        hex(code)
        for code in CODE_POINTS
        if has_control_characters(f"Propos{chr(code)}injurieux") != (code in REFUSED)
    ]
    assert not wrong, wrong
    assert has_control_characters("Propos\x0binjurieux")
    assert has_control_characters("Propos\x85injurieux")
    assert not has_control_characters("Propos injurieux, déjà signalés\u00a0!")
    assert not has_control_characters("Propos\tinjurieux,\r\nà la ligne.")


def test_line_breaks_are_kept_as_line_feeds() -> None:
    assert with_line_feeds("Propos\r\ninjurieux,\nà la ligne.") == "Propos\ninjurieux,\nà la ligne."
    assert with_line_feeds("Propos\rinjurieux") == "Propos\rinjurieux"
