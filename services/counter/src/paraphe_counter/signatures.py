"""The message contract with signature-intake: what one accepted signature looks like.

Intake publishes on ``signatures.<petition_id>`` a body of 64 lowercase hexadecimal
characters, the dedupe key HMAC-SHA256(signer_key, petition_id); the same key is the
``Nats-Msg-Id``, which only JetStream reads. The time of signing is when JetStream stored the
message.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from nats.aio.msg import Msg

from paraphe_counter.metrics import MalformedPart

_SUBJECT_PREFIX: Final = "signatures."
_DEDUPE_KEY: Final = re.compile(rb"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True, order=True)
class Signature:
    petition_id: str  # canonical lowercase UUID
    dedupe_key: bytes  # 32 bytes
    signed_at: datetime


class MalformedMessage(ValueError):
    def __init__(self, part: MalformedPart) -> None:
        super().__init__(f"malformed {part}")
        self.part: MalformedPart = part


def _petition_of(subject: str) -> str:
    if not subject.startswith(_SUBJECT_PREFIX):
        raise MalformedMessage("subject")
    try:
        # Canonical form, as the petition states, the tables and the Redis keys spell it.
        return str(uuid.UUID(subject[len(_SUBJECT_PREFIX) :]))
    except ValueError:
        raise MalformedMessage("subject") from None


def read_signature(message: Msg) -> Signature:
    """The signature a message carries, or :class:`MalformedMessage`.

    Read leniently: another spelling of the same petition id or key (upper case) still means
    one citizen's signature, so it is counted; only what cannot be read at all is dropped.
    """
    petition_id = _petition_of(message.subject)
    if not _DEDUPE_KEY.fullmatch(message.data):
        raise MalformedMessage("body")
    return Signature(petition_id, bytes.fromhex(message.data.decode()), message.metadata.timestamp)
