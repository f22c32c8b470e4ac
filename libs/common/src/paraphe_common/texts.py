"""Free texts people type: which characters are refused, and how line breaks are kept.

One rule for every service that takes a text to publish (the catalogue's petitions and
decisions, moderation's explanations, notes and reports): each says it in its own French words.
"""

from __future__ import annotations

import re
from typing import Final

# C0 control characters other than tab and line breaks, DEL, the C1 controls (NEL among
# them: a line break some programs honour and others do not), and lone surrogates (JSON can
# escape them, UTF-8 cannot hold them): PostgreSQL refuses NUL, and none belongs in a petition.
CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def has_control_characters(text: str) -> bool:
    return CONTROL_CHARACTERS.search(text) is not None


def with_line_feeds(text: str) -> str:
    """Line breaks as they are kept: LF (a browser's form sends CR LF)."""
    return text.replace("\r\n", "\n")
