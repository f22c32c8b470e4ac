"""An OpenID Connect provider under the test's control, to forge what a real one never sends.

It answers like a provider configured as FranceConnect is (discovery, JWKS, an authorize step
that returns at once, token, signed userinfo) and lets each test bend one thing: the ID token's
claims, its signing key or algorithm, the userinfo. The relying party must refuse every bend.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from jose import jwt

from paraphe_devstack.browser import Browser
from paraphe_devstack.keys import SigningKey, new_signing_key

Claims = dict[str, Any]


@dataclass
class Bends:
    """What the provider does wrong, if anything. Each test sets one."""

    id_token_claims: Callable[[Claims], Claims] = lambda claims: claims
    userinfo_claims: Callable[[Claims], Claims] = lambda claims: claims
    id_token: Callable[[Claims, SigningKey], str] | None = None
    userinfo_token: Callable[[str], str] = lambda token: token
    birthdate: str = "1985-03-14"


@dataclass
class RogueProvider:
    issuer: str
    client_id: str
    client_secret: str
    key: SigningKey = field(default_factory=lambda: new_signing_key("rogue-1"))
    bends: Bends = field(default_factory=Bends)
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
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "id_token_signing_alg_values_supported": ["ES256"],
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.Response(text=self.key.public_jwks, content_type="application/json")

    async def authorize(self, request: web.Request) -> web.Response:
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": request.query["nonce"],
            "acr": request.query.get("acr_values", ""),
        }
        query = urlencode({"code": code, "state": request.query["state"]})
        raise web.HTTPFound(f"{request.query['redirect_uri']}?{query}")

    async def token(self, request: web.Request) -> web.Response:
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

    async def userinfo(self, request: web.Request) -> web.Response:
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


@dataclass
class RogueSetup:
    """A relying party under test, the rogue provider it trusts, and a browser."""

    provider: RogueProvider
    browser: Browser
    gateway_url: str
