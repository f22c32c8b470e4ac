"""Who may do what on NATS: one user per service, each allowed its own subjects and no others.

The network policies let four services reach NATS; these users decide what each may do there,
so that a service taken over cannot touch what is not its own:

- signatures (``signatures.*``) are published by signature-intake alone, and consumed (taken
  off the work queue by their acks) by counter alone;
- petition states (the PETITIONS bucket) are written by petition-catalog alone, read by all;
- threshold events are published by counter alone, every other petition event by
  petition-catalog alone; moderation publishes nothing;
- each service subscribes only under its own inbox (``_INBOX.<service>.>``): nobody reads
  another's replies, acks or pulled messages;
- deleting or purging a stream, a consumer or a message is left to ``admin``, the operators'
  user (the NATS CLI of the runbooks), which may do everything.

A service may create the streams it uses and converge their configuration (replicas, window)
at start, as it always did (paraphe_common.streams): no start order between services.

The same ``authorization`` block, rendered by :func:`authorization`, is the local stack's
(passwords drawn per state directory) and the Kubernetes overlays'
(deploy/k8s/components/nats-users/authorization.conf, which their nats.conf includes;
tests/test_deploy_k8s.py checks it is this text): each password is a variable the server
reads from its environment, ``$PARAPHE_NATS_PASSWORD_<USER>``, set from the Secret
``paraphe-nats``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from paraphe_common.resources import inbox_prefix
from paraphe_common.streams import (
    CATALOG_CONSUMER,
    COUNTER_CONSUMER,
    MODERATION_CONSUMER,
    PETITION_EVENTS,
    PETITIONS_BUCKET,
    SIGNATURES,
    THRESHOLD_REACHED,
    petition_event_subject,
    signature_subject,
)

ADMIN: Final = "admin"
THRESHOLD_EVENTS: Final = petition_event_subject(THRESHOLD_REACHED)
_API: Final = "$JS.API"
_STATES_STREAM: Final = f"KV_{PETITIONS_BUCKET}"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    publish_denied: tuple[str, ...]
    subscribe: tuple[str, ...]


def _stream(name: str) -> list[str]:
    """Make sure a stream exists with the configuration a service expects, and read it."""
    return [f"{_API}.STREAM.{verb}.{name}" for verb in ("INFO", "CREATE", "UPDATE")]


def _durable_consumer(stream: str, consumer: str) -> list[str]:
    """Make sure a durable pull consumer exists, pull from it and acknowledge its messages."""
    return [
        f"{_API}.CONSUMER.INFO.{stream}.{consumer}",
        f"{_API}.CONSUMER.CREATE.{stream}.{consumer}",
        f"{_API}.CONSUMER.CREATE.{stream}.{consumer}.>",  # with its filter subject
        f"{_API}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
        f"{_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    ]


def _petition_states() -> list[str]:
    """Watch the PETITIONS bucket (an ordered consumer of its own), and create it if missing."""
    return [
        f"{_API}.STREAM.INFO.{_STATES_STREAM}",
        f"{_API}.STREAM.CREATE.{_STATES_STREAM}",
        f"{_API}.CONSUMER.CREATE.{_STATES_STREAM}",
        f"{_API}.CONSUMER.CREATE.{_STATES_STREAM}.>",
        f"{_API}.CONSUMER.INFO.{_STATES_STREAM}.>",
        f"{_API}.CONSUMER.DELETE.{_STATES_STREAM}.>",
        f"$JS.FC.{_STATES_STREAM}.>",  # the flow control an ordered consumer answers
    ]


def _service(name: str, *publish: Iterable[str], denied: tuple[str, ...] = ()) -> Permissions:
    allowed = [f"{_API}.INFO"]  # readiness: JetStream answers
    for subjects in publish:
        allowed += subjects
    return Permissions(tuple(allowed), denied, (f"{inbox_prefix(name)}.>",))


SERVICE_PERMISSIONS: Final[dict[str, Permissions]] = {
    "signature-intake": _service(
        "signature-intake", _stream(SIGNATURES), [signature_subject("*")], _petition_states()
    ),
    "counter": _service(
        "counter",
        _stream(SIGNATURES),
        _durable_consumer(SIGNATURES, COUNTER_CONSUMER),
        [f"{_API}.STREAM.MSG.GET.{SIGNATURES}"],  # the oldest uncounted one, for its age
        _stream(PETITION_EVENTS),
        [THRESHOLD_EVENTS],
        _petition_states(),
    ),
    "petition-catalog": _service(
        "petition-catalog",
        _stream(PETITION_EVENTS),
        [petition_event_subject("*")],
        _durable_consumer(PETITION_EVENTS, CATALOG_CONSUMER),
        _petition_states(),
        [f"$KV.{PETITIONS_BUCKET}.>"],  # writes the states
        denied=(THRESHOLD_EVENTS,),
    ),
    "moderation": _service(
        "moderation",
        _stream(PETITION_EVENTS),
        _durable_consumer(PETITION_EVENTS, MODERATION_CONSUMER),
        _petition_states(),
    ),
}
USERS: Final = (*SERVICE_PERMISSIONS, ADMIN)


def password_variable(user: str) -> str:
    """The environment variable the server reads a user's password from."""
    return "PARAPHE_NATS_PASSWORD_" + user.upper().replace("-", "_")


def _subjects(kind: str, subjects: Iterable[str], indent: str) -> list[str]:
    """A list of subjects, one a line (a quoted ``$JS...`` is a subject, not a variable)."""
    return [f"{indent}{kind}: [", *(f'{indent}  "{s}"' for s in subjects), f"{indent}]"]


def authorization() -> str:
    """The server's ``authorization`` block (nats.conf), passwords read from the environment."""
    lines = [
        "# Who may do what on NATS, one user per service: paraphe_devstack.nats_access",
        "# (python -m paraphe_devstack.nats_access writes it; tests check it is current).",
        "authorization {",
        "  users: [",
    ]
    for user, permissions in SERVICE_PERMISSIONS.items():
        lines += [
            "    {",
            f'      user: "{user}"',
            f"      password: ${password_variable(user)}",
            "      permissions: {",
            "        publish: {",
            *_subjects("allow", permissions.publish, " " * 10),
            *(
                _subjects("deny", permissions.publish_denied, " " * 10)
                if permissions.publish_denied
                else []
            ),
            "        }",
            "        subscribe: {",
            *_subjects("allow", permissions.subscribe, " " * 10),
            "        }",
            "      }",
            "    }",
        ]
    lines += [
        f'    {{user: "{ADMIN}", password: ${password_variable(ADMIN)}}}',
        "  ]",
        "}",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(authorization())  # deploy/k8s/components/nats-users/authorization.conf
