"""A person's browser for tests: a cookie jar, and redirects followed one hop at a time."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp


@dataclass
class Browser:
    """A person's browser: a cookie jar, and redirects followed one hop at a time."""

    session: aiohttp.ClientSession
    gateway: str

    async def get(self, url: str) -> aiohttp.ClientResponse:
        response = await self.session.get(url, allow_redirects=False)
        await response.read()
        return response

    async def post(self, url: str) -> aiohttp.ClientResponse:
        """A fetch from the site's own pages: the browser says their origin."""
        response = await self.session.post(
            url, allow_redirects=False, headers={"Origin": self.gateway}
        )
        await response.read()
        return response

    async def sign_in(self, query: str) -> tuple[aiohttp.ClientResponse, str]:
        """/auth/login → provider → /auth/callback; the callback's answer and its URL."""
        login = await self.get(f"{self.gateway}/auth/login?{query}")
        assert login.status == 302, await login.text()
        at_provider = await self.get(login.headers["Location"])
        assert at_provider.status == 302, await at_provider.text()
        callback_url = at_provider.headers["Location"]
        return await self.get(callback_url), callback_url

    def cookie(self, name: str) -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None


async def problem_of(response: aiohttp.ClientResponse) -> str:
    """The problem an answer names (``urn:paraphe:problem:<name>``), once it is problem+json."""
    assert response.content_type == "application/problem+json", response.content_type
    return str((await response.json())["type"]).removeprefix("urn:paraphe:problem:")
