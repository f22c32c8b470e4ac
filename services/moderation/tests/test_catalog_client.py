"""Moderation's client of the catalog's internal API reads whole answers, however long."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from paraphe_moderation.catalog import Catalog


async def test_a_long_petition_is_read_whole(catalog: Any) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "submitted"
    # 20,000 characters outside ASCII, escaped by the catalog's JSON: over 120 kB on the wire,
    # more than one read of the socket brings.
    catalog.bodies[petition_id] = "Пётр" * 5_000
    async with aiohttp.ClientSession() as session:
        client = Catalog(session, catalog.url)
        for _ in range(5):
            petition = await client.petition(petition_id, "a staff token")
            assert petition["body"] == catalog.bodies[petition_id]
            assert petition["title"] == "Une pétition du catalogue"
