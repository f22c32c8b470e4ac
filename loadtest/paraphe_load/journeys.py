"""What people do on the site, one function per action, through the public origin (the proxy).

Each action is one request, named in Locust's statistics by what it is rather than by its URL
(ids, states and codes would otherwise make a line per person), and fails when the answer is not
the one a working site gives. A repeated signature answers 200 "already signed": a success.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from locust.contrib.fasthttp import FastHttpSession

SIGNER_COOKIE = "paraphe_signer"
AUTHOR_COOKIE = "paraphe_author"
STAFF_COOKIE = "paraphe_staff"


class JourneyFailed(Exception):
    """An answer that breaks the journey: the failure is already in Locust's statistics."""


@dataclass
class Watch:
    """What a watching page remembers between two polls of the count."""

    etag: str | None = None
    signatures: int | None = None


def _location(response: Any) -> str:
    return str(response.headers.get("Location") or response.headers.get("location") or "")


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _origin(client: FastHttpSession) -> dict[str, str]:
    """The Origin a browser sends with a change made from the site's pages (CSRF check)."""
    parts = urlsplit(client.base_url or "")
    return {"Origin": f"{parts.scheme}://{parts.netloc}"}


def list_petitions(client: FastHttpSession) -> list[dict[str, Any]]:
    with client.get("/api/petitions", name="api: petitions", catch_response=True) as response:
        if response.status_code != 200:
            response.failure(f"{response.status_code} instead of 200")
            raise JourneyFailed
        items: list[dict[str, Any]] = response.json().get("items", [])
        return items


def open_petition_page(client: FastHttpSession, petition: str) -> None:
    """The HTML page a visitor lands on."""
    with client.get(
        f"/petitions/{petition}",
        name="page: petition",
        headers={"Accept": "text/html"},
        catch_response=True,
    ) as response:
        if response.status_code != 200:
            response.failure(f"{response.status_code} instead of 200")


def read_petition(client: FastHttpSession, petition: str) -> None:
    with client.get(
        f"/api/petitions/{petition}", name="api: petition", catch_response=True
    ) as response:
        if response.status_code != 200:
            response.failure(f"{response.status_code} instead of 200")


def poll_count(client: FastHttpSession, petition: str, watch: Watch) -> None:
    """One poll of the live count, as the page does: 304 while it has not moved."""
    headers = {"If-None-Match": watch.etag} if watch.etag else {}
    with client.get(
        f"/api/petitions/{petition}/count",
        name="api: count (poll)",
        headers=headers,
        catch_response=True,
    ) as response:
        if response.status_code == 304:
            return
        if response.status_code != 200:
            response.failure(f"{response.status_code} instead of 200 or 304")
            return
        watch.etag = response.headers.get("ETag")
        watch.signatures = int(response.json()["signatures"])


def read_count(client: FastHttpSession, petition: str) -> int:
    """The count without a cache validator (the campaign's final check)."""
    with client.get(
        f"/api/petitions/{petition}/count", name="api: count (check)", catch_response=True
    ) as response:
        if response.status_code != 200:
            response.failure(f"{response.status_code} instead of 200")
            raise JourneyFailed
        return int(response.json()["signatures"])


def watch_count_stream(client: FastHttpSession, petition: str, on_event: Any) -> None:
    """Follow the server-sent events of the count until the connection ends.

    Only the opening is timed (up to the first byte); each count event then calls
    ``on_event(signatures)``.
    """
    response = client.get(
        f"/api/petitions/{petition}/count/stream", name="api: count (stream)", stream=True
    )
    if response.status_code != 200 or response._response is None:
        raise JourneyFailed
    # Read line by line as the events arrive: a sized read would wait for that many bytes.
    stream = response._response
    while line := stream.readline(b"\n"):
        if line.startswith(b"data:"):
            on_event(line[5:].strip())


def begin_sign_in(
    client: FastHttpSession, *, flow: str, login_hint: str, petition: str | None = None
) -> str:
    """The FranceConnect button: auth-gateway redirects to the provider's authorize URL."""
    query = {"flow": flow, "login_hint": login_hint}
    if petition:
        query["petition"] = petition
    with client.get(
        f"/auth/login?{urlencode(query)}",
        name=f"auth: login ({flow})",
        allow_redirects=False,
        catch_response=True,
    ) as response:
        location = _location(response)
        if response.status_code != 302 or not location:
            response.failure(f"{response.status_code} instead of a redirect to FranceConnect")
            raise JourneyFailed
        return location


def authenticate_at_provider(client: FastHttpSession, authorize_url: str) -> str:
    """At FranceConnect (the sandbox, non-interactive with login_hint): back with a code."""
    with client.get(
        authorize_url,
        name="franceconnect: authorize",
        allow_redirects=False,
        catch_response=True,
    ) as response:
        location = _location(response)
        if response.status_code != 302 or "code=" not in location:
            response.failure(f"{response.status_code} without a code ({location[:80]!r})")
            raise JourneyFailed
        return location


def return_from_provider(client: FastHttpSession, callback_url: str, cookie: str) -> str:
    """auth-gateway's callback: code exchanged, tokens checked, our cookie set, redirect back."""
    with client.get(
        _path(callback_url),
        name="auth: callback",
        allow_redirects=False,
        catch_response=True,
    ) as response:
        location = _location(response)
        if response.status_code != 302 or not any(c.name == cookie for c in client.cookiejar):
            response.failure(f"{response.status_code} without the {cookie} cookie")
            raise JourneyFailed
        return location


# What a signature may answer: 202 for a person's first; 200 ("already signed") for a person
# who comes back; either for each of the two clicks of a double-click, which race: whichever
# JetStream takes first is answered 202, the other 200 (the caller checks the pair).
FIRST: Final = frozenset({202})
REPEAT: Final = frozenset({200})
RACING: Final = frozenset({200, 202})


def sign(client: FastHttpSession, petition: str, *, name: str, accepted: frozenset[int]) -> int:
    """POST the signature; any answer outside ``accepted`` fails the request and the journey."""
    with client.post(
        f"/api/petitions/{petition}/signatures",
        name=name,
        headers=_origin(client),
        catch_response=True,
    ) as response:
        if response.status_code not in accepted:
            expected = " or ".join(str(code) for code in sorted(accepted))
            response.failure(f"{response.status_code} instead of {expected}")
            raise JourneyFailed
        return int(response.status_code)


def deposit_petition(client: FastHttpSession, title: str, body: str) -> str:
    """An author's new draft (201), whose id is returned."""
    with client.post(
        "/api/author/petitions",
        name="api: author deposits a draft",
        json={"title": title, "body": body},
        headers=_origin(client),
        catch_response=True,
    ) as response:
        if response.status_code != 201:
            response.failure(f"{response.status_code} instead of 201")
            raise JourneyFailed
        return str(response.json()["id"])


def submit_petition(client: FastHttpSession, petition: str) -> None:
    with client.post(
        f"/api/author/petitions/{petition}/submit",
        name="api: author submits",
        headers=_origin(client),
        catch_response=True,
    ) as response:
        if response.status_code != 200:
            response.failure(f"{response.status_code} instead of 200")
            raise JourneyFailed


def list_my_petitions(client: FastHttpSession) -> None:
    with client.get(
        "/api/author/petitions", name="api: author's petitions", catch_response=True
    ) as response:
        if response.status_code != 200:
            response.failure(f"{response.status_code} instead of 200")


def browse_queue(client: FastHttpSession) -> None:
    with client.get(
        "/api/moderation/queue", name="api: moderation queue", catch_response=True
    ) as response:
        if response.status_code != 200:
            response.failure(f"{response.status_code} instead of 200")


def open_queue_page(client: FastHttpSession) -> None:
    with client.get(
        "/moderation/",
        name="page: moderation queue",
        headers={"Accept": "text/html"},
        catch_response=True,
    ) as response:
        if response.status_code != 200:
            response.failure(f"{response.status_code} instead of 200")


def forget_person(client: FastHttpSession) -> None:
    """A new person at the same keyboard: no cookie of the previous one."""
    client.cookiejar.clear()


def timed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
