"""An OpenID Connect provider under the test's control, to forge what a real one never sends.

It answers like a provider configured as FranceConnect is (discovery, JWKS, an authorize step
that returns at once, token, signed userinfo) and lets each test bend one thing: the ID token's
claims, its signing key or algorithm, the userinfo. The relying party must refuse every bend.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web
from jose import jwt

from paraphe_devstack.browser import Browser
from paraphe_devstack.keys import SigningKey, new_signing_key

Claims = dict[str, Any]
# How one of its endpoints fails: "down" (nothing listens where its discovery document says it
# is), "slow" (it answers, after Bends.slowness seconds), "error" (a 500 page), "html" (a web
# page where its answer should be), "empty" (a JSON object without what it must hold).
Failure = Literal["down", "slow", "error", "html", "empty"]
# Where nothing listens: connections are refused.
NOWHERE = "http://127.0.0.1:1"


@dataclass(frozen=True)
class NotJson:
    """An answer that is no JSON document at all: a web page, as a failing front end sends."""

    text: str = "<!doctype html><title>Maintenance</title><p>Service en maintenance.</p>"


@dataclass
class Bends:
    """What the provider does wrong, if anything. Each test sets one."""

    id_token_claims: Callable[[Claims], Claims] = lambda claims: claims
    userinfo_claims: Callable[[Claims], Claims] = lambda claims: claims
    id_token: Callable[[Claims, SigningKey], str] | None = None
    userinfo_token: Callable[[str], str] = lambda token: token
    birthdate: str = "1985-03-14"
    # The discovery document and the JWKS as published, bent into any JSON value, or NotJson.
    discovery: Callable[[Claims], object] = lambda document: document
    jwks: Callable[[Claims], object] = lambda document: document
    jwks_unavailable: bool = False
    jwks_delay: float = 0.0  # seconds its JWKS takes to answer
    token_failure: Failure | None = None
    userinfo_failure: Failure | None = None
    slowness: float = 1.0  # seconds a "slow" endpoint takes to answer


@dataclass
class RogueProvider:
    issuer: str
    client_id: str
    client_secret: str
    key: SigningKey = field(default_factory=lambda: new_signing_key("rogue-1"))
    # The keys its JWKS publishes, when not its signing key: one withdrawn there is still the
    # key of whoever holds it (after a leak), signing on here.
    published: list[SigningKey] | None = None
    bends: Bends = field(default_factory=Bends)
    jwks_fetches: int = 0
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)

    def sign(self, claims: Claims, key: SigningKey | None = None) -> str:
        key = key or self.key
        return str(jwt.encode(claims, key.private_pem, algorithm="ES256", headers={"kid": key.kid}))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/userinfo", self.userinfo)
        app.router.add_get("/session/end", self.end_session)
        return app

    def _at(self, failure: Failure | None) -> str:
        """Where an endpoint is, as its discovery document says."""
        return NOWHERE if failure == "down" else self.issuer

    async def _fail(self, failure: Failure | None) -> web.Response | None:
        """The failing answer of an endpoint, or None for it to answer (a slow one, late)."""
        if failure == "slow":
            await asyncio.sleep(self.bends.slowness)
        elif failure == "error":
            return web.Response(
                status=500, text="<h1>Erreur interne</h1>", content_type="text/html"
            )
        elif failure == "html":
            return _answer(NotJson())
        elif failure == "empty":
            return web.json_response({})
        return None

    async def discovery(self, request: web.Request) -> web.Response:
        return _answer(
            self.bends.discovery(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self._at(self.bends.token_failure)}/token",
                    "userinfo_endpoint": f"{self._at(self.bends.userinfo_failure)}/userinfo",
                    "jwks_uri": f"{self.issuer}/jwks",
                    "end_session_endpoint": f"{self.issuer}/session/end",
                    "id_token_signing_alg_values_supported": ["ES256"],
                }
            )
        )

    async def jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        await asyncio.sleep(self.bends.jwks_delay)
        if self.bends.jwks_unavailable:
            return web.Response(status=503)
        published = self.published or [self.key]
        return _answer(
            self.bends.jwks(
                {"keys": [e for key in published for e in json.loads(key.public_jwks)["keys"]]}
            )
        )

    async def authorize(self, request: web.Request) -> web.Response:
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": request.query["nonce"],
            "acr": request.query.get("acr_values", ""),
        }
        query = urlencode({"code": code, "state": request.query["state"]})
        raise web.HTTPFound(f"{request.query['redirect_uri']}?{query}")

    async def token(self, request: web.Request) -> web.Response:
        failed = await self._fail(self.bends.token_failure)
        if failed is not None:
            return failed
        form = await request.post()
        if form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims = self.bends.id_token_claims(
            {
                "iss": self.issuer,
                "aud": self.client_id,
                "sub": "f" * 64,
                "iat": now,
                "exp": now + 60,
                "nonce": grant["nonce"],
                "acr": grant["acr"],
            }
        )
        make = self.bends.id_token
        id_token = make(claims, self.key) if make else self.sign(claims)
        access_token = secrets.token_urlsafe(16)
        self.access_tokens.add(access_token)
        return web.json_response(
            {"access_token": access_token, "token_type": "Bearer", "id_token": id_token}
        )

    async def end_session(self, request: web.Request) -> web.Response:
        """The person's session here ends at once; back to the relying party with its state."""
        query = urlencode({"state": request.query["state"]})
        raise web.HTTPFound(f"{request.query['post_logout_redirect_uri']}?{query}")

    async def userinfo(self, request: web.Request) -> web.Response:
        failed = await self._fail(self.bends.userinfo_failure)
        if failed is not None:
            return failed
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.access_tokens:
            return web.Response(status=401)
        now = int(time.time())
        claims = self.bends.userinfo_claims(
            {
                "iss": self.issuer,
                "aud": self.client_id,
                "sub": "f" * 64,
                "iat": now,
                "exp": now + 60,
                "birthdate": self.bends.birthdate,
            }
        )
        return web.Response(
            text=self.bends.userinfo_token(self.sign(claims)), content_type="application/jwt"
        )


def _answer(value: object) -> web.Response:
    if isinstance(value, NotJson):
        return web.Response(text=value.text, content_type="text/html")
    return web.json_response(value)


@dataclass
class RogueSetup:
    """A relying party under test, the rogue provider it trusts, and a browser."""

    provider: RogueProvider
    browser: Browser
    gateway_url: str

    async def sign_ins_counted(self, flow: str, outcome: str) -> float:
        """auth_gateway_sign_ins_total for this flow and outcome, as /metrics reads now."""
        async with self.browser.session.get(f"{self.gateway_url}/metrics") as response:
            metrics = await response.text()
        sample = f'auth_gateway_sign_ins_total{{flow="{flow}",outcome="{outcome}"}} '
        counted = [
            line.removeprefix(sample) for line in metrics.splitlines() if line.startswith(sample)
        ]
        return float(counted[0]) if counted else 0.0
