"""Everything a sign-in needs, built once at start from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from paraphe_auth_gateway.catalog import Catalog
from paraphe_auth_gateway.flows import AUTHOR_FLOW, FRANCECONNECT, SIGN, STAFF_PROVIDER, Flow
from paraphe_auth_gateway.identity import signer_key
from paraphe_auth_gateway.oidc import Client, Provider
from paraphe_auth_gateway.settings import AuthGatewaySettings, allowlist_key
from paraphe_common.peppers import KEYS_CLAIM
from paraphe_common.resources import CleanupContext
from paraphe_common.tokens import TokenIssuer


@dataclass
class Gateway:
    settings: AuthGatewaySettings
    providers: dict[str, Provider]
    issuer: TokenIssuer
    signer_issuer: TokenIssuer
    catalog: Catalog
    sign_ins: Counter

    @property
    def redirect_uri(self) -> str:
        return str(self.settings.public_url).rstrip("/") + "/auth/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return str(self.settings.public_url).rstrip("/") + "/auth/logged-out"

    @property
    def sign_in_timeout(self) -> int:
        return self.settings.sign_in_timeout

    @property
    def current_pepper(self) -> str:
        peppers = self.settings.signer_peppers
        return peppers[self.settings.signer_pepper_version].get_secret_value()

    @property
    def author_pepper(self) -> str:
        peppers = self.settings.signer_peppers
        return peppers[self.settings.author_pepper_version].get_secret_value()

    def issue_signer_token(self, subject: str) -> str:
        """A token carrying the signer key only: no name, no birth date, no ``sub``.

        During a pepper rotation, the signer's key under each version being signed with, so
        that every petition is signed under its own version (paraphe_common.peppers).
        """
        peppers, schedule = self.settings.signer_peppers, self.settings.signer_pepper_schedule
        rotating: dict[str, Any] = {}
        if schedule:
            rotating[KEYS_CLAIM] = {
                v: signer_key(peppers[v].get_secret_value(), subject) for v in schedule
            }
        return self.signer_issuer.issue(
            SIGN.audience,
            signer_key(self.current_pepper, subject),
            self.settings.signer_token_lifetime,
            pv=self.settings.signer_pepper_version,
            **rotating,
        )

    def staff_roles(self, subject: str, email: Any) -> frozenset[str]:
        allowlist = self.settings.staff_roles
        roles = set(allowlist.get(subject, []))
        if isinstance(email, str):
            roles.update(allowlist.get(allowlist_key(email), []))
        return frozenset(roles)

    def lifetime(self, flow: Flow) -> int:
        if flow is SIGN:
            return self.settings.signer_token_lifetime
        if flow is AUTHOR_FLOW:
            return self.settings.author_token_lifetime
        return self.settings.staff_token_lifetime

    def count(self, flow: Flow | None, outcome: str) -> None:
        self.sign_ins.labels(flow.name if flow else "unknown", outcome).inc()

    @property
    def secure_cookies(self) -> bool:
        """The site is https: its cookies are Secure (locally, over http, they would be lost)."""
        return self.settings.public_url.scheme == "https"

    @property
    def sign_in_cookie(self) -> str:
        """The cookie binding a sign-in under way to the browser that began it.

        ``__Host-``: a browser takes it only Secure, for the whole site and from this host
        alone, so no neighbouring subdomain can plant one of its own. Plain http (locally)
        holds no Secure cookie, hence the bare name there.
        """
        return "__Host-paraphe_sign_in" if self.secure_cookies else "paraphe_sign_in"

    def set_cookie(
        self, response: web.StreamResponse, name: str, value: str, *, max_age: int, path: str = "/"
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=path,
            httponly=True,
            samesite="Lax",  # sent on the top-level return from FranceConnect, not cross-site posts
            secure=self.secure_cookies,
        )

    def delete_cookie(self, response: web.StreamResponse, name: str, *, path: str = "/") -> None:
        # With the attributes it was set with: a browser refuses a __Host- cookie, even an
        # expired one, that is not Secure.
        response.del_cookie(
            name, path=path, httponly=True, samesite="Lax", secure=self.secure_cookies
        )


GATEWAY = web.AppKey("gateway", Gateway)


def sign_in_metrics(registry: CollectorRegistry) -> Counter:
    return Counter(
        "auth_gateway_sign_ins",
        "Sign-ins that ended, by flow (sign, author, staff) and outcome.",
        ["flow", "outcome"],
        registry=registry,
    )


def gateway_context(settings: AuthGatewaySettings, registry: CollectorRegistry) -> CleanupContext:
    async def gateway(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=settings.provider_timeout)
        # No cookie jar: calls to the providers are made for many people at once, and nothing
        # one provider answer sets may follow another person's call.
        async with aiohttp.ClientSession(
            timeout=timeout, raise_for_status=False, cookie_jar=aiohttp.DummyCookieJar()
        ) as http:
            issuer = TokenIssuer.from_settings(settings)
            app[GATEWAY] = Gateway(
                settings=settings,
                providers={
                    FRANCECONNECT: Provider(
                        Client(
                            issuer=str(settings.franceconnect_issuer).rstrip("/"),
                            client_id=settings.franceconnect_client_id,
                            client_secret=settings.franceconnect_client_secret.get_secret_value(),
                            acr_values=settings.franceconnect_acr_values,
                        ),
                        http,
                        keys_max_age=settings.provider_keys_max_age,
                    ),
                    STAFF_PROVIDER: Provider(
                        Client(
                            issuer=str(settings.staff_issuer).rstrip("/"),
                            client_id=settings.staff_client_id,
                            client_secret=settings.staff_client_secret.get_secret_value(),
                        ),
                        http,
                        keys_max_age=settings.provider_keys_max_age,
                    ),
                },
                issuer=issuer,
                signer_issuer=TokenIssuer.for_signers(settings),
                catalog=Catalog(str(settings.catalog_url), http, issuer),
                sign_ins=sign_in_metrics(registry),
            )
            yield

    return gateway
