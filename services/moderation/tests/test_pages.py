"""Staff pages: French, no JavaScript needed, forms that POST and redirect, CSRF-guarded."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Awaitable, Callable
from html import unescape
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from paraphe_common.tokens import SIGNER
from paraphe_devstack.keys import new_signer_key
from paraphe_moderation.pages import age_fr

Client = TestClient[web.Request, web.Application]
SubmitPetition = Callable[..., Awaitable[dict[str, Any]]]
IssueStaffToken = Callable[..., str]
SetState = Callable[[str, str], Awaitable[None]]
Eventually = Callable[..., Awaitable[Any]]

ORIGIN = {"Origin": "http://petitions.example"}
HTML = {"Accept": "text/html"}


def as_staff(token: str) -> dict[str, str]:
    return {"Cookie": f"paraphe_staff={token}", **HTML}


async def test_without_a_staff_session_the_page_offers_the_staff_sign_in(
    moderation: Client,
) -> None:
    citizen = new_signer_key().issuer().issue(SIGNER, "s" * 64, 600)
    for headers in (HTML, {"Cookie": f"paraphe_signer={citizen}", **HTML}):
        answer = await moderation.get("/moderation/", headers=headers)
        assert answer.status == 401
        page = await answer.text()
        assert 'href="/auth/login?flow=staff&amp;return_to=%2Fmoderation%2F"' in page
        assert '<html lang="fr">' in page


async def test_an_agent_without_a_role_is_refused(
    moderation: Client, staff_token: IssueStaffToken
) -> None:
    answer = await moderation.get("/moderation/", headers=as_staff(staff_token()))
    assert answer.status == 403
    assert "text/html" in answer.headers["Content-Type"]


async def test_a_moderator_reviews_and_publishes_from_the_pages(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: Any,
) -> None:
    item = await submit_petition(title="Des écoles <script>alert(1)</script> rénovées")
    marie = staff_token("moderator", subject="marie", name="Marie")
    queue = await moderation.get("/moderation/", headers=as_staff(marie))
    assert queue.status == 200
    page = await queue.text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    assert "moins d&#39;une minute" in page or "moins d'une minute" in page  # the item's age
    claim_url = f"/moderation/items/{item['id']}/claim"
    # Without the site's Origin (or Referer), a form is refused: another site could post it.
    forged = await moderation.post(claim_url, headers=as_staff(marie), allow_redirects=False)
    assert forged.status == 403
    elsewhere = await moderation.post(
        claim_url,
        headers={**as_staff(marie), "Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert elsewhere.status == 403
    claimed = await moderation.post(
        claim_url,
        headers={**as_staff(marie), "Referer": "http://petitions.example/moderation/"},
        allow_redirects=False,
    )
    assert claimed.status == 303
    assert claimed.headers["Location"] == f"/moderation/items/{item['id']}"
    review = await (
        await moderation.get(claimed.headers["Location"], headers=as_staff(marie))
    ).text()
    # The suggested committee is preselected, and said to be; the reason codes are offered.
    assert '<option value="affaires-culturelles" selected>' in review
    assert "Préremplie avec la suggestion" in review
    assert '<option value="not-french">' in review
    decision_id = re.search(r'name="decision_id" value="([0-9a-f-]{36})"', review)
    assert decision_id is not None
    published = await moderation.post(
        f"/moderation/items/{item['id']}/decision",
        data={"decision": "publish", "committee": "lois", "decision_id": decision_id[1]},
        headers={**as_staff(marie), **ORIGIN},
        allow_redirects=False,
    )
    assert published.status == 303, await published.text()
    assert published.headers["Location"] == "/moderation/?kind=review&notice=decided"
    assert catalog.calls == [
        {"decision_id": decision_id[1], "decision": "publish", "committee": "lois"}
    ]
    done = await moderation.get(published.headers["Location"], headers=as_staff(marie))
    assert "La décision est enregistrée." in await done.text()


async def test_without_a_suggestion_no_committee_is_chosen_for_the_moderator(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: Any,
) -> None:
    # No committee's terms in the text, and the author chose none.
    item = await submit_petition(
        title="Une rue au nom de Jeanne Martin",
        body="Nous demandons qu'une rue porte le nom de cette résistante de notre ville.",
    )
    assert item["suggested_committee"] is None
    marie = staff_token("moderator", subject="marie")
    headers = {**as_staff(marie), **ORIGIN}
    await moderation.post(f"/moderation/items/{item['id']}/claim", headers=headers)
    review = await (
        await moderation.get(f"/moderation/items/{item['id']}", headers=as_staff(marie))
    ).text()
    select = re.search(r'<select[^>]*name="committee".*?</select>', review, re.DOTALL)
    assert select is not None
    assert '<option value="" selected>Choisir une commission</option>' in select[0]
    assert select[0].count(" selected") == 1
    assert "Préremplie avec la suggestion" not in review
    # Sent as the page offers it, without a choice: refused beside the field, nothing decided.
    answer = await moderation.post(
        f"/moderation/items/{item['id']}/decision",
        data={"decision": "publish", "committee": "", "decision_id": str(uuid.uuid4())},
        headers=headers,
        allow_redirects=False,
    )
    assert answer.status == 422
    page = await answer.text()
    assert '<p class="fr-error-text" id="committee-erreur">' in page
    assert "Choisissez la commission saisie de la pétition." in page
    assert '<option value="" selected>Choisir une commission</option>' in page
    assert catalog.calls == []


async def test_a_control_character_in_an_explanation_is_marked_beside_the_field(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: Any,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie")
    headers = {**as_staff(marie), **ORIGIN}
    await moderation.post(f"/moderation/items/{item['id']}/claim", headers=headers)
    answer = await moderation.post(
        f"/moderation/items/{item['id']}/decision",
        data={"decision": "reject", "reason_code": "insulting", "reason": "Propos\x0binjurieux",
              "decision_id": str(uuid.uuid4())},
        headers=headers,
        allow_redirects=False,
    )  # fmt: skip
    assert answer.status == 422
    page = html.unescape(await answer.text())
    assert re.search(
        r'<p class="fr-error-text" id="reason-erreur">Ce texte contient un caractère invisible',
        page,
    )
    assert '<a href="#reason">Ce texte contient un caractère invisible' in page
    assert catalog.calls == []


async def test_the_fields_the_catalog_refuses_are_marked_on_the_page(
    moderation: Client,
    submit_petition: SubmitPetition,
    staff_token: IssueStaffToken,
    catalog: Any,
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie")
    headers = {**as_staff(marie), **ORIGIN}
    await moderation.post(f"/moderation/items/{item['id']}/claim", headers=headers)
    catalog.refusal = {
        "status": 422,
        "detail": "La décision n'est pas valide : corrigez les champs indiqués.",
        "invalid_params": [{"name": "reason", "reason": "format non reconnu"}],
    }
    answer = await moderation.post(
        f"/moderation/items/{item['id']}/decision",
        data={"decision": "reject", "reason_code": "insulting", "reason": "Injures.",
              "decision_id": str(uuid.uuid4())},
        headers=headers,
        allow_redirects=False,
    )  # fmt: skip
    assert answer.status == 422
    page = html.unescape(await answer.text())
    assert "La décision n'est pas valide : corrigez les champs indiqués." in page
    assert '<p class="fr-error-text" id="reason-erreur">format non reconnu</p>' in page


async def test_a_form_error_is_said_on_the_page_not_as_a_500(
    moderation: Client, submit_petition: SubmitPetition, staff_token: IssueStaffToken
) -> None:
    item = await submit_petition()
    marie = staff_token("moderator", subject="marie")
    headers = {**as_staff(marie), **ORIGIN}
    await moderation.post(f"/moderation/items/{item['id']}/claim", headers=headers)
    answer = await moderation.post(
        f"/moderation/items/{item['id']}/decision",
        data={"decision": "reject", "reason_code": "", "decision_id": "not-a-uuid"},
        headers=headers,
        allow_redirects=False,
    )
    assert answer.status == 422
    page = html.unescape(await answer.text())
    assert "La décision n'a pas été enregistrée" in page
    assert "decision_id : Identifiant (UUID) attendu." in page  # a field the form does not show
    unknown = await moderation.get(f"/moderation/items/{uuid.uuid4()}", headers=as_staff(marie))
    assert unknown.status == 404
    assert (await moderation.get("/moderation/items/xyz", headers=as_staff(marie))).status == 404


async def test_the_secretariat_records_a_step_from_the_petition_page(
    moderation: Client, staff_token: IssueStaffToken, catalog: Any
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    catalog.thresholds[petition_id] = [100_000]
    paul = staff_token("committee-secretariat", subject="paul")
    page = await (
        await moderation.get(f"/moderation/petitions/{petition_id}", headers=as_staff(paul))
    ).text()
    assert "Enregistrer une étape du suivi" in page
    assert "Retirer la pétition" not in page  # not a moderator
    answer = await moderation.post(
        f"/moderation/petitions/{petition_id}/decisions",
        data={"decision": "follow-up", "step": "rapporteur-appointed", "note": "M. Dupont"},
        headers={**as_staff(paul), **ORIGIN},
        allow_redirects=False,
    )
    assert answer.status == 303
    assert catalog.follow_ups[petition_id] == ["rapporteur-appointed"]
    assert catalog.calls[-1]["note"] == "M. Dupont"


async def test_the_petition_page_offers_only_the_steps_the_thresholds_allow(
    moderation: Client, staff_token: IssueStaffToken, catalog: Any
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    paul = as_staff(staff_token("committee-secretariat", subject="paul"))
    url = f"/moderation/petitions/{petition_id}"
    page = html.unescape(await (await moderation.get(url, headers=paul)).text())
    assert "Le suivi commence quand la pétition atteint 100\u202f000 signatures" in page
    assert 'name="step"' not in page
    # Sent all the same: refused on the page, in French.
    answer = await moderation.post(
        f"{url}/decisions",
        data={"decision": "follow-up", "step": "debated-in-public-session"},
        headers={**paul, **ORIGIN},
        allow_redirects=False,
    )
    assert answer.status == 409
    assert "La décision n'a pas été enregistrée" in html.unescape(await answer.text())
    assert petition_id not in catalog.follow_ups
    catalog.thresholds[petition_id] = [100_000]
    page = await (await moderation.get(url, headers=paul)).text()
    assert '<option value="rapporteur-appointed">' in page
    assert '<option value="debated-in-public-session">' not in page
    catalog.thresholds[petition_id] = [100_000, 500_000]
    page = await (await moderation.get(url, headers=paul)).text()
    assert '<option value="debated-in-public-session">' in page


async def test_the_catalogs_refusal_of_a_step_is_said_on_the_petition_page(
    moderation: Client, staff_token: IssueStaffToken, catalog: Any
) -> None:
    petition_id = str(uuid.uuid4())
    catalog.statuses[petition_id] = "published"
    catalog.thresholds[petition_id] = [100_000]
    # Another agent's « Classée », recorded after moderation read the petition.
    detail = "Le suivi de cette pétition est terminé (« Classée ») : aucune étape ne s'y ajoute."
    catalog.refusal = {
        "status": 409,
        "type": "urn:paraphe:problem:follow-up-not-allowed",
        "detail": detail,
    }
    paul = as_staff(staff_token("committee-secretariat", subject="paul"))
    answer = await moderation.post(
        f"/moderation/petitions/{petition_id}/decisions",
        data={"decision": "follow-up", "step": "examined-in-committee",
              "decision_id": str(uuid.uuid4())},
        headers={**paul, **ORIGIN},
        allow_redirects=False,
    )  # fmt: skip
    assert answer.status == 409
    page = html.unescape(await answer.text())
    assert "La décision n'a pas été enregistrée" in page
    assert detail in page


async def test_only_admins_see_the_audit_page(
    moderation: Client, staff_token: IssueStaffToken
) -> None:
    admin = await moderation.get("/moderation/journal", headers=as_staff(staff_token("admin")))
    assert admin.status == 200
    assert "Journal des décisions" in await admin.text()
    moderator = await moderation.get(
        "/moderation/journal", headers=as_staff(staff_token("moderator"))
    )
    assert moderator.status == 403


async def test_a_citizen_reports_a_petition_with_the_public_form(
    moderation: Client, set_petition_state: SetState, eventually: Eventually
) -> None:
    petition_id = str(uuid.uuid4())
    await set_petition_state(petition_id, "published")
    form = await moderation.get(f"/moderation/signaler?petition={petition_id}", headers=HTML)
    assert form.status == 200
    assert f'value="{petition_id}"' in await form.text()
    invalid = await moderation.post(
        "/moderation/signaler",
        data={"petition_id": petition_id, "reason_code": "", "message": ""},
        headers={**HTML, **ORIGIN},
    )
    assert invalid.status in (404, 422)  # 404 until the state reaches moderation's view

    async def sent() -> Any:
        answer = await moderation.post(
            "/moderation/signaler",
            data={"petition_id": petition_id, "reason_code": "insulting", "message": "Injures."},
            headers={**HTML, **ORIGIN},
        )
        return answer if answer.status == 200 else None

    answer = await eventually(sent)
    assert "Signalement envoyé" in await answer.text()


async def test_unreadable_or_oversized_forms_get_a_french_page_not_a_500(
    moderation: Client, set_petition_state: SetState
) -> None:
    headers = {**HTML, **ORIGIN}
    latin1 = await moderation.post(
        "/moderation/signaler",
        data=b"petition_id=%FF%FE&reason_code=other&message=caf%E9",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert latin1.status in (400, 404)
    huge = await moderation.post(
        "/moderation/signaler", data={"message": "x" * 200_000}, headers=headers
    )
    assert huge.status == 413
    assert "text/html" in huge.headers["Content-Type"]
    for content_type, body in (
        ("application/x-www-form-urlencoded; charset=nope", b"reason_code=other"),
        (
            "multipart/form-data; boundary=XX",
            b'--XX\r\nContent-Disposition: form-data; name="message"\r\n'
            b"Content-Transfer-Encoding: x-bogus\r\n\r\nbonjour\r\n--XX--\r\n",
        ),
    ):
        unreadable = await moderation.post(
            "/moderation/signaler", data=body, headers={**headers, "Content-Type": content_type}
        )
        assert unreadable.status == 400, content_type
        assert "text/html" in unreadable.headers["Content-Type"]
        assert "pas lisible" in unescape(await unreadable.text())


def test_ages_read_as_people_say_them() -> None:
    assert age_fr(30) == "moins d'une minute"
    assert age_fr(5 * 60 + 59) == "5 min"
    assert age_fr(90 * 60) == "1 h"
    assert age_fr(47 * 3600) == "47 h"
    assert age_fr(3 * 24 * 3600 + 5) == "3 jours"
