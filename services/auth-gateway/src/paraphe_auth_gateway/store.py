"""Sign-in transactions in Redis: short-lived, and taken at most once (GETDEL)."""

from __future__ import annotations

import base64
import hashlib
import hmac
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


def binding_of(state: str) -> str:
    """What the browser that began a sign-in keeps (a cookie) to finish it: the state's digest.

    The callback takes a state only from the browser holding its binding: the callback link of
    someone's sign-in, opened in a victim's browser, is refused instead of signing the victim
    in under that someone's account (login CSRF). A digest rather than the state itself: the
    cookie alone finishes no sign-in.
    """
    digest = hashlib.sha256(state.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def began_here(state: str, binding: str | None) -> bool:
    """Whether the browser presenting ``binding`` is the one that began the sign-in."""
    return binding is not None and hmac.compare_digest(binding.encode(), binding_of(state).encode())


async def take_sign_in(client: aioredis.Redis, state: str) -> SignIn | None:
    """The transaction of ``state``, once: a replayed or unknown state finds nothing."""
    stored = await client.getdel(_SIGN_IN + state)
    return SignIn(**json.loads(stored)) if stored else None


async def peek_sign_in(client: aioredis.Redis, state: str) -> SignIn | None:
    """The transaction of ``state``, left in place for the browser that may still finish it."""
    stored = await client.get(_SIGN_IN + state)
    return SignIn(**json.loads(stored)) if stored else None


async def begin_sign_out(client: aioredis.Redis, return_to: str, ttl: int) -> str:
    state = new_secret()
    await client.set(_SIGN_OUT + state, return_to, ex=ttl)
    return state


async def take_sign_out(client: aioredis.Redis, state: str) -> str | None:
    stored = await client.getdel(_SIGN_OUT + state)
    return stored.decode() if isinstance(stored, bytes) else stored
