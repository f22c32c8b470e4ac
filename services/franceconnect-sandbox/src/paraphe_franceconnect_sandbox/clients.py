"""The relying parties the sandbox knows, and how they prove who they are."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from paraphe_franceconnect_sandbox.settings import SandboxClient

# Compared against when the client is unknown, so that both refusals take the same time.
_NO_SECRET = b"\x00" * 32


class ClientRegistry:
    def __init__(self, clients: Iterable[SandboxClient]) -> None:
        self._clients = {client.client_id: client for client in clients}

    def find(self, client_id: str) -> SandboxClient | None:
        return self._clients.get(client_id)

    def authenticate(self, client_id: str, client_secret: str) -> SandboxClient | None:
        """The client when the secret is its own (client_secret_post), else None."""
        client = self._clients.get(client_id)
        expected = client.client_secret.get_secret_value().encode() if client else _NO_SECRET
        matches = hmac.compare_digest(expected, client_secret.encode())
        return client if client is not None and matches else None
