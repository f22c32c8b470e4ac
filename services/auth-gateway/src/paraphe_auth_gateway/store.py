"""Sign-in transactions in Redis: short-lived, and taken at most once (GETDEL)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis

_SIGN_IN = "auth:sign-in:"
_SIGN_OUT = "auth:sign-out:"


def new_secret() -> str:
    """43 URL-safe characters (256 bits): FranceConnect asks for at least 22."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SignIn:
    flow: str
    nonce: str
    return_to: str
    as_token: bool  # answer with a bearer token (API clients) instead of a cookie and redirect


async def begin_sign_in(client: aioredis.Redis, sign_in: SignIn, ttl: int) -> str:
    state = new_secret()
    # Its fields are flat: vars() is enough, where dataclasses.asdict would deep-copy them.
    await client.set(_SIGN_IN + state, json.dumps(vars(sign_in)), ex=ttl)
    return state


async def take_sign_in(client: aioredis.Redis, state: str) -> SignIn | None:
    """The transaction of ``state``, once: a replayed or unknown state finds nothing."""
    stored = await client.getdel(_SIGN_IN + state)
    return SignIn(**json.loads(stored)) if stored else None


async def begin_sign_out(client: aioredis.Redis, return_to: str, ttl: int) -> str:
    state = new_secret()
    await client.set(_SIGN_OUT + state, return_to, ex=ttl)
    return state


async def take_sign_out(client: aioredis.Redis, state: str) -> str | None:
    stored = await client.getdel(_SIGN_OUT + state)
    return stored.decode() if isinstance(stored, bytes) else stored
