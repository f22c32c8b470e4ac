"""The site in a real browser: headless Chromium through the proxy and the FranceConnect sandbox.

Each journey is what a person does, click by click, on the pages as served; axe-core checks the
main pages on the way (no serious or critical violation), no page may break the site's
Content-Security-Policy, and a screenshot of each main page is kept under
.paraphe/artifacts/browser/.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from paraphe_devstack.playwright import (
    assert_accessible,
    chromium,
    csp_violations,
    screenshot,
)
from paraphe_devstack.stack import Stack

pytestmark = pytest.mark.stack

# Long enough for a signature to go through intake, JetStream and the counter to the page.
LIVE = 15_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as started:
        yield started


NewContext = Callable[..., Awaitable[BrowserContext]]


@pytest.fixture
async def new_context(browser: Browser, stack: Stack) -> AsyncIterator[NewContext]:
    """Browser contexts (one person each) on the site; none may see a CSP violation."""
    contexts: list[BrowserContext] = []
    reports: list[list[str]] = []

    async def make(**options: Any) -> BrowserContext:
        context = await browser.new_context(base_url=stack.public_url, locale="fr-FR", **options)
        context.set_default_timeout(LIVE)
        contexts.append(context)
        reports.append(csp_violations(context))
        return context

    yield make
    for context in contexts:
        await context.close()
    violations = [violation for reported in reports for violation in reported]
    assert not violations, "\n".join(violations)


@pytest.fixture
async def context(new_context: NewContext) -> BrowserContext:
    return await new_context()


async def sign_in_at_the_sandbox(page: Page, identity: str) -> None:
    """On the sandbox's picker, as the demo person ``identity``."""
    await expect(page.get_by_role("heading", name="Choisir une identité")).to_be_visible()
    await page.locator(f"#identite-{identity}").check()
    await page.get_by_role("button", name="Se connecter").click()


def signatures(text: str) -> int:
    return int(re.sub(r"\D", "", text))


async def test_a_citizen_finds_a_petition_signs_it_and_sees_the_counter_move(
    context: BrowserContext,
) -> None:
    page = await context.new_page()
    await page.goto("/")
    await assert_accessible(page)
    await screenshot(page, "accueil")

    await page.get_by_label("Rechercher une pétition").fill("premiers secours college")
    await page.get_by_role("button", name="Rechercher").click()
    await expect(page.locator("#resultats")).to_contain_text("1 pétition")
    await assert_accessible(page)
    await screenshot(page, "recherche")

    await page.get_by_role("link", name=re.compile("premiers secours")).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("premiers secours")
    before = signatures(await page.locator("#compteur-nombre").inner_text())
    await assert_accessible(page)
    await screenshot(page, "petition")

    await page.get_by_role("button", name=re.compile("FranceConnect")).click()
    await sign_in_at_the_sandbox(page, "camille-durand")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("premiers secours")

    await page.get_by_role("button", name="Signer la pétition").click()
    await expect(page.get_by_text("Vous avez signé cette pétition")).to_be_visible()
    # The page's stream brings the new count, without reloading.
    await expect(page.locator("#compteur-nombre")).to_have_text(
        re.compile(rf"^{before + 1:,}$".replace(",", r"\s?"))
    )
    await screenshot(page, "petition-signee")

    # Coming back later, the page knows this person signed (intake says so).
    await page.reload()
    await expect(page.get_by_text("Vous avez signé cette pétition")).to_be_visible()
    await expect(page.get_by_role("button", name="Signer la pétition")).to_be_hidden()
    assert signatures(await page.locator("#compteur-nombre").inner_text()) == before + 1


async def test_without_javascript_a_citizen_still_signs(new_context: NewContext) -> None:
    """Everything but the live counter works without JavaScript (the sign form goes through
    the catalogue to intake)."""
    context = await new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto("/petitions?q=invendus")
    await page.get_by_role("link", name=re.compile("invendus")).click()
    petition_url = page.url
    before = signatures(await page.locator("#compteur-nombre").inner_text())
    await page.get_by_role("button", name=re.compile("FranceConnect")).click()
    await sign_in_at_the_sandbox(page, "amina-benali")
    await page.get_by_role("button", name="Signer la pétition").click()
    await expect(page.get_by_text("Vous avez signé cette pétition")).to_be_visible()
    await expect(page.get_by_role("button", name="Signer la pétition")).to_be_hidden()
    # Without the stream the count moves on the next visit.
    for _ in range(20):
        await page.goto(petition_url)
        if signatures(await page.locator("#compteur-nombre").inner_text()) == before + 1:
            break
        await page.wait_for_timeout(500)
    assert signatures(await page.locator("#compteur-nombre").inner_text()) == before + 1
    # Coming back, the page says they signed: the catalogue asked intake itself.
    await expect(page.get_by_text("Vous avez signé cette pétition")).to_be_visible()
    await expect(page.get_by_role("button", name="Signer la pétition")).to_be_hidden()


async def test_a_citizen_filters_and_sorts_the_list_and_the_form_keeps_the_choices(
    context: BrowserContext,
) -> None:
    page = await context.new_page()
    await page.goto("/petitions")
    committee, sort = page.get_by_label("Commission", exact=True), page.get_by_label("Trier par")
    await page.get_by_label("État").select_option(label="Ouvertes à la signature")
    await committee.select_option(label="Commission des affaires économiques")
    await sort.select_option(label="Les plus signées")
    await page.get_by_role("button", name="Appliquer les filtres").click()
    await expect(page.get_by_role("link", name=re.compile("invendus"))).to_be_visible()
    cards = page.locator(".fr-card__desc")
    for text in await cards.all_inner_texts():
        assert "Commission des affaires économiques" in text
    await expect(page.get_by_role("link", name=re.compile("premiers secours"))).to_be_hidden()
    await expect(page.get_by_label("État")).to_have_value("ouvertes")
    await expect(committee).to_have_value("affaires-economiques")
    await expect(sort).to_have_value("plus-signees")
    assert "commission=affaires-economiques" in page.url
    await assert_accessible(page)

    await page.get_by_label("Seuil atteint").select_option(label="500\u202f000 signatures")
    await page.get_by_role("button", name="Appliquer les filtres").click()
    await expect(page.locator("#resultats")).to_contain_text("Aucune pétition ne correspond")
    await expect(page.get_by_label("Seuil atteint")).to_have_value("500000")

    # The home page's link to the newest sorts the list by date.
    await page.goto("/")
    await page.get_by_role("link", name="Voir toutes les pétitions").click()
    await expect(page.get_by_label("Trier par")).to_have_value("plus-recentes")


async def visit_until(page: Page, path: str, what: str, text: str) -> None:
    """Visit ``path`` again until ``what`` (a CSS selector) says ``text``: for what another
    person's action changes through events (a decision, a new item in the queue)."""
    for _ in range(30):
        await page.goto(path)
        if text in " ".join(await page.locator(what).all_inner_texts()):
            return
        await page.wait_for_timeout(500)
    await expect(page.locator(what).first).to_contain_text(text)


def unique_word() -> str:
    """A made-up word that only one petition of the run contains, to find it by searching."""
    return "".join(random.choices(string.ascii_lowercase, k=12))


async def deposit_a_petition(context: BrowserContext, author: str, title: str) -> Page:
    """An author signs in with FranceConnect, writes a draft, and submits it with a last change
    to its title they did not save first."""
    page = await context.new_page()
    await page.goto("/mon-espace/")
    await page.get_by_role("button", name=re.compile("FranceConnect")).click()
    await sign_in_at_the_sandbox(page, author)
    await expect(page.get_by_role("heading", name="Mes pétitions")).to_be_visible()
    await page.get_by_role("link", name="Déposer une nouvelle pétition").click()
    await assert_accessible(page)
    await screenshot(page, "auteur-depot")
    await page.get_by_label("Titre de la pétition").fill(f"Brouillon : {title}")
    await page.get_by_label("Texte de la pétition").fill(
        "Les parcs manquent de points d'eau en été.\n\n"
        "Nous demandons une fontaine d'eau potable dans chaque parc public."
    )
    await page.get_by_label("Commission suggérée").select_option("developpement-durable")
    await page.get_by_role("button", name="Enregistrer le brouillon").click()
    await expect(page.get_by_text("Votre brouillon est enregistré")).to_be_visible()
    await page.get_by_label("Titre de la pétition").fill(title)
    await page.get_by_role("button", name="Soumettre la pétition").click()
    await expect(page.get_by_text("Votre pétition est soumise")).to_be_visible()
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    return page


async def claim_in_the_moderation_queue(context: BrowserContext, title: str) -> Page:
    """A moderator signs in with their agent account and takes the petition's review item."""
    page = await context.new_page()
    await page.goto("/moderation/")
    await page.get_by_role("link", name="Se connecter avec son compte d'agent").click()
    await sign_in_at_the_sandbox(page, "marie-moderatrice")
    await expect(page.get_by_role("heading", name="File de modération")).to_be_visible()
    await assert_accessible(page)
    await screenshot(page, "moderation-file")
    claim = page.get_by_role("button", name=f"Prendre en charge : {title}")
    # The review item arrives through the submitted event: a moment after the submission.
    for _ in range(30):
        if await claim.count():
            break
        await page.wait_for_timeout(500)
        await page.reload()
    await claim.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    return page


async def test_an_author_deposits_a_moderator_publishes_and_citizens_sign(
    new_context: NewContext,
) -> None:
    word = unique_word()
    title = f"Des fontaines {word} dans les parcs publics"
    author, moderator, citizen = [await new_context() for _ in range(3)]
    mine = await deposit_a_petition(author, "amina-benali", title)
    await screenshot(mine, "auteur-petition-soumise")

    review = await claim_in_the_moderation_queue(moderator, title)
    await review.get_by_label("Commission saisie").select_option("developpement-durable")
    await assert_accessible(review)
    await screenshot(review, "moderation-examen")
    await review.get_by_role("button", name="Publier la pétition").click()

    page = await citizen.new_page()
    await visit_until(page, f"/petitions?q={word}", "#resultats", "1 pétition")
    await page.get_by_role("link", name=title).click()
    await expect(page.get_by_text("Amina Benali")).to_be_visible()
    await expect(page.locator("#compteur-nombre")).to_have_text("0")
    await page.get_by_role("button", name=re.compile("FranceConnect")).click()
    await sign_in_at_the_sandbox(page, "jean-martin")
    await page.get_by_role("button", name="Signer la pétition").click()
    await expect(page.get_by_text("Vous avez signé cette pétition")).to_be_visible()
    await expect(page.locator("#compteur-nombre")).to_have_text("1")

    await mine.goto("/mon-espace/")
    await expect(mine.get_by_role("row", name=re.compile(word))).to_contain_text("Ouverte")
    await assert_accessible(mine)
    await screenshot(mine, "auteur-mes-petitions")


async def test_a_moderator_rejects_a_petition_and_its_author_reads_why(
    new_context: NewContext,
) -> None:
    word = unique_word()
    title = f"Une pétition {word} hors du champ du Parlement"
    reason = "Cette demande relève de la commune, pas du Parlement."
    author, moderator = await new_context(), await new_context()
    mine = await deposit_a_petition(author, "camille-durand", title)

    review = await claim_in_the_moderation_queue(moderator, title)
    reject = review.locator("form", has=review.get_by_role("button", name="Déclarer irrecevable"))
    await reject.get_by_label("Motif", exact=True).select_option(index=1)
    await reject.get_by_label("Explication publique").fill(reason)
    await reject.get_by_role("button", name="Déclarer irrecevable").click()

    await visit_until(mine, "/mon-espace/", f"tr:has-text('{word}')", "Irrecevable")
    await mine.get_by_role("link", name=title).click()
    await expect(mine.locator("#decision")).to_contain_text(f"Motif : {reason}")
    await assert_accessible(mine)
    await screenshot(mine, "auteur-petition-irrecevable")
