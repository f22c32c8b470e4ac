"""A real browser for tests: Debian's Chromium driven by Playwright, axe-core, screenshots.

Browsers cannot be downloaded here: Playwright drives the system's ``/usr/bin/chromium``
(installed from Debian when missing), headless, so no display is needed. axe-core comes from
``web/node_modules`` (``make install``), run in the page under test.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    async_playwright,
)

from paraphe_devstack.binaries import ensure_programs

REPOSITORY: Final = Path(__file__).resolve().parents[4]
AXE: Final = REPOSITORY / "web" / "node_modules" / "axe-core" / "axe.min.js"
# Screenshots of the main pages, kept after the run for people to look at (CI artifacts).
ARTIFACTS: Final = REPOSITORY / ".paraphe" / "artifacts" / "browser"
# What the law (RGAA) and this project do not let through.
BLOCKING_IMPACTS: Final = frozenset({"serious", "critical"})


def chromium_path() -> str:
    ensure_programs("chromium")
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("chromium is not installed")
    return found


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Chromium, closed on exit."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # As root (containers, CI) Chromium refuses to start with its sandbox on.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def accessibility_violations(page: Page, rules: Sequence[str] = ()) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now; given ``rules``,
    those rules' violations only, whatever their impact (heading-order is "moderate")."""
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: run `make install` (npm ci in web/)")
    # Evaluated by the test's own channel (the DevTools protocol), not as a <script> of the
    # page: the site's Content-Security-Policy rightly refuses inline scripts.
    if not await page.evaluate("() => typeof axe !== 'undefined'"):
        await page.evaluate(_axe_source())
    options: dict[str, Any] = {"resultTypes": ["violations"]}
    if rules:
        options["runOnly"] = {"type": "rule", "values": list(rules)}
    results: dict[str, Any] = await page.evaluate(
        "async (options) => await axe.run(document, options)", options
    )
    return [
        {
            "id": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "targets": [node["target"] for node in violation["nodes"]][:5],
        }
        for violation in results["violations"]
        if rules or violation["impact"] in BLOCKING_IMPACTS
    ]


@functools.cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def csp_violations(context: BrowserContext) -> list[str]:
    """Every Content-Security-Policy violation the context's pages report, as they happen."""
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(f"{message.page.url if message.page else '?'}: {message.text}")

    context.on("console", on_console)
    return violations


async def assert_accessible(page: Page, rules: Sequence[str] = ()) -> None:
    violations = await accessibility_violations(page, rules)
    assert not violations, f"{page.url}:\n{json.dumps(violations, indent=2, ensure_ascii=False)}"


async def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under .paraphe/artifacts/browser/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") + ".png")
    await page.screenshot(path=str(path), full_page=True)
    return path
