"""A phone in a real Chromium (360×740): answer by touch, by keyboard, without JavaScript; every
page passes axe-core; the answers arrive on the real broker; screenshots for review."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from survey_responses.domain import steps

from contracts.questionnaire import load
from contracts.topics import SURVEY_RESPONSE
from plumbing.testing import read_topic

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 740}
QUESTIONNAIRE = load("urssaf-chaud-2024-v1")
THANKS = "vos réponses sont bien enregistrées"
# What each user picks; the event on the broker must carry exactly this.
TOUCH_ANSWERS: dict[str, int | str] = {
    "satisfaction_globale": 9,
    "recommandation": 10,
    "canal": "accueil_physique",
    "effort": 6,
    "plusieurs_contacts": "non",
    "theme_reponse_personnalisee": 8,
    "theme_clarte": 9,
    "theme_facilite_contact": 7,
    "theme_comprehension": 10,
    "theme_prise_en_charge": 8,
    "theme_delais": 5,
    "theme_courtoisie": 10,
    "profil": "particulier",
    "nature_demande": "suivi_dossier",
    "recontact": "oui",
    "suggestion": "Plus de créneaux le samedi, merci.",
}


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest.fixture(scope="module")
def shots(artifacts_dir):
    folder = artifacts_dir / "responses"
    folder.mkdir(exist_ok=True)
    return folder


async def phone(browser: Browser, *, javascript: bool = True, width: int = 360) -> BrowserContext:
    return await browser.new_context(
        viewport={**PHONE, "width": width},
        has_touch=True,
        is_mobile=True,
        locale="fr-FR",
        java_script_enabled=javascript,
    )


async def no_axe_violations(page: Page) -> None:
    results = await Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def watch_console(page: Page) -> list[str]:
    """CSP refusals and script errors show up here: the pages must produce none."""
    problems: list[str] = []
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


async def response_event(stack, contact_id: str) -> dict[str, Any]:
    def arrived(records: list[Any]) -> bool:
        return any(contact_id.encode() in record.value for record in records)

    records = await read_topic(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, until=arrived)
    matching = [json.loads(r.value) for r in records if contact_id.encode() in r.value]
    assert len(matching) == 1, "one answer, one event"
    return matching[0]


async def test_touch_user_answers_every_item_one_step_at_a_time(
    browser, service, invite, stack, shots
):
    [token] = await invite(contact_id="crm-touch-user")
    context = await phone(browser)
    page = await context.new_page()
    problems = watch_console(page)
    await page.goto(f"{service.url}/s/{token}")
    await page.screenshot(path=shots / "questionnaire-etape-1.png", full_page=True)
    await no_axe_violations(page)

    next_button = page.get_by_role("button", name="Suivant")
    await next_button.tap()  # nothing chosen yet: the step says what is missing, and stays
    await page.get_by_text("Merci de choisir une réponse pour continuer.").wait_for()
    await no_axe_violations(page)

    answered_steps = 0
    for item in QUESTIONNAIRE.items:
        value = TOUCH_ANSWERS[item.id]
        field = (
            page.locator(f"#f-{item.id}")
            if item.kind == "text"
            else page.locator(f"label[for='f-{item.id}-{value}']")
        )
        if not await field.is_visible():  # this item is on the next step
            await next_button.tap()
            answered_steps += 1
            await field.wait_for(state="visible")
            if answered_steps == 5:  # the themes: seven scales at once
                await page.screenshot(path=shots / "questionnaire-themes.png", full_page=True)
                await no_axe_violations(page)
        if item.kind == "text":
            await field.tap()
            await field.fill(str(value))
        else:
            await field.tap()
            assert await page.locator(f"#f-{item.id}-{value}").is_checked()
    await no_axe_violations(page)
    await page.get_by_role("button", name="Envoyer mes réponses").tap()

    await page.get_by_text(THANKS).wait_for()
    await page.screenshot(path=shots / "merci.png", full_page=True)
    await no_axe_violations(page)
    assert not problems
    await context.close()

    event = await response_event(stack, "crm-touch-user")
    assert event["data"]["answers"] == TOUCH_ANSWERS


FOCUS_IS_VISIBLE = """() => {
  const element = document.activeElement;
  const outlined = (node, pseudo) => {
    const style = getComputedStyle(node, pseudo);
    return style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  };
  if (outlined(element)) return true;
  const label = element.labels && element.labels[0];
  return Boolean(label) && (outlined(label) || outlined(label, "::before"));
}"""


async def focused(page: Page) -> dict[str, Any]:
    return await page.evaluate(
        "() => ({name: document.activeElement.name || '', value: document.activeElement.value,"
        " tag: document.activeElement.tagName, text: document.activeElement.textContent})"
    )


async def choose_by_keyboard(page: Page, item_id: str, value: int | str) -> None:
    """Tab into the item's radio group, then arrows until `value` is checked, as a user would."""
    await page.keyboard.press("Tab")
    now = await focused(page)
    assert now["name"] == item_id, f"Tab should reach {item_id}, reached {now}"
    assert await page.evaluate(FOCUS_IS_VISIBLE), f"focus not visible on {item_id}"
    if not await page.locator(f"input[name='{item_id}']:checked").count():
        await page.keyboard.press("Space")
    options = await page.locator(f"input[name='{item_id}']").evaluate_all(
        "els => els.map(e => e.value)"
    )
    checked = await page.locator(f"input[name='{item_id}']:checked").get_attribute("value")
    moves = options.index(str(value)) - options.index(checked)
    for _ in range(abs(moves)):
        await page.keyboard.press("ArrowRight" if moves > 0 else "ArrowLeft")
    assert await page.locator(f"#f-{item_id}-{value}").is_checked()


async def test_keyboard_only_user_answers_every_item(browser, service, invite, stack):
    [token] = await invite(contact_id="crm-keyboard-user")
    answers = {
        **TOUCH_ANSWERS,
        "canal": "courriel",
        "profil": "employeur",
        "theme_delais": 1,
        "suggestion": "Rien à redire.",
    }
    context = await phone(browser)
    page = await context.new_page()
    await page.goto(f"{service.url}/s/{token}")

    await page.keyboard.press("Tab")  # the skip link comes first, and shows itself
    assert (await focused(page))["text"] == "Aller au contenu"
    assert await page.evaluate(FOCUS_IS_VISIBLE)
    await page.keyboard.press("Enter")
    step = 1
    for item in QUESTIONNAIRE.items:
        item_step = next(s.number for s in steps(QUESTIONNAIRE) if item in s.items)
        if item_step != step:
            await page.keyboard.press("Enter")  # Enter in a question means "Suivant"
            step = item_step
            await page.locator(f"#etape-{step}").wait_for(state="visible")
        if item.kind == "text":
            assert (await focused(page))["name"] == item.id, "the last step focuses its text box"
            await page.keyboard.type(str(answers[item.id]))
        else:
            await choose_by_keyboard(page, item.id, answers[item.id])
    await page.keyboard.press("Tab")
    assert (await focused(page))["text"] == "Envoyer mes réponses"
    assert await page.evaluate(FOCUS_IS_VISIBLE)
    await page.keyboard.press("Enter")
    await page.get_by_text(THANKS).wait_for()
    await context.close()

    event = await response_event(stack, "crm-keyboard-user")
    assert event["data"]["answers"] == answers


async def test_without_javascript_the_whole_form_works(browser, service, invite, stack, shots):
    [token] = await invite(contact_id="crm-no-js-user")
    context = await phone(browser, javascript=False)
    page = await context.new_page()
    await page.goto(f"{service.url}/s/{token}")
    await page.screenshot(path=shots / "questionnaire-sans-javascript.png", full_page=True)
    await page.locator("label[for='f-recommandation-3']").tap()
    await page.get_by_role("button", name="Envoyer mes réponses").tap()  # one required missing
    await page.get_by_text("Merci de corriger 1 réponse").wait_for()
    await page.screenshot(path=shots / "erreurs.png", full_page=True)
    await page.locator("label[for='f-satisfaction_globale-4']").tap()
    await page.get_by_role("button", name="Envoyer mes réponses").tap()
    await page.get_by_text(THANKS).wait_for()
    await context.close()

    event = await response_event(stack, "crm-no-js-user")
    assert event["data"]["answers"] == {
        "satisfaction_globale": 4,
        "recommandation": 3,
        "canal": "telephone",
        "profil": "employeur",
        "nature_demande": "information",
    }


async def test_error_summary_after_a_refused_submission_is_accessible(browser, service, invite):
    [token] = await invite()
    context = await phone(browser)
    page = await context.new_page()
    # JavaScript on, but a server refusal (here: a required answer removed by hand) shows
    # every step with the error summary first, and focuses it.
    await page.goto(f"{service.url}/s/{token}")
    await page.evaluate("document.querySelector('form').submit()")
    await page.get_by_text("Merci de corriger 2 réponses").wait_for()
    assert await page.evaluate("document.activeElement.id") == "erreurs"
    await no_axe_violations(page)
    await context.close()


async def test_closed_links_explain_themselves(browser, service, invite, shots):
    [expired] = await invite(expires_in=timedelta(minutes=-5))
    [answered] = await invite()
    async with httpx.AsyncClient(base_url=service.url) as client:
        stored = await client.post(
            f"/v1/responses/{answered}",
            json={"answers": {"satisfaction_globale": 8, "recommandation": 9}},
        )
        assert stored.status_code == 201
    context = await phone(browser)
    page = await context.new_page()
    problems = watch_console(page)

    cases = [
        (expired, 410, "Ce lien a expiré.", "lien-expire"),
        (answered, 409, "Vous avez déjà répondu", "deja-repondu"),
        ("inconnu-" + expired[::-1], 404, "Ce lien n'est pas reconnu.", "lien-inconnu"),
    ]
    for token, status, text, name in cases:
        response = await page.goto(f"{service.url}/s/{token}")
        assert response is not None and response.status == status
        await page.get_by_text(text).wait_for()
        await page.screenshot(path=shots / f"{name}.png", full_page=True)
        await no_axe_violations(page)
    problems = [p for p in problems if "status of 4" not in p]  # the 404/409/410 themselves
    assert not problems
    await context.close()


async def test_first_page_weight_and_no_render_blocking_script(browser, service, invite, shots):
    [token] = await invite()
    context = await phone(browser)  # a fresh context: empty cache, like a first visit
    page = await context.new_page()
    requests = []
    page.on("requestfinished", lambda request: requests.append(request))
    response = await page.goto(f"{service.url}/s/{token}")
    await page.wait_for_load_state("networkidle")
    assert response is not None and response.headers.get("content-encoding") == "gzip"

    rows = []
    for request in requests:
        sizes = await request.sizes()
        rows.append(
            {
                "url": request.url.removeprefix(service.url),
                "type": request.resource_type,
                "bytes": sizes["responseBodySize"] + sizes["responseHeadersSize"],
            }
        )
    with_fonts = sum(row["bytes"] for row in rows)
    without_fonts = sum(row["bytes"] for row in rows if row["type"] != "font")
    blocking = await page.evaluate(
        "performance.getEntriesByType('resource')"
        ".filter(e => e.initiatorType === 'script' && e.renderBlockingStatus === 'blocking')"
        ".map(e => e.name)"
    )
    report = {
        "transferred_bytes_without_fonts": without_fonts,
        "transferred_bytes_with_fonts": with_fonts,
        "requests": rows,
    }
    (shots / "poids-premiere-page.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"first page: {without_fonts / 1024:.1f} KiB without fonts, {with_fonts / 1024:.1f} with")
    assert without_fonts < 100_000
    assert with_fonts < 300_000
    assert not blocking
    assert all(not row["url"].startswith("http") for row in rows), "no third-party request"
    await context.close()


async def test_reflows_at_320_px_and_at_200_percent_text(browser, service, invite):
    [token] = await invite()
    for width, text_zoom in ((320, "100%"), (360, "200%")):
        context = await phone(browser, width=width)
        page = await context.new_page()
        await page.route("**/survey.js*", lambda route: route.abort())  # every step on one page
        await page.goto(f"{service.url}/s/{token}")
        await page.evaluate(f"document.documentElement.style.fontSize = '{text_zoom}'")
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"horizontal scroll at {width}px, text {text_zoom}"
        await context.close()


async def test_save_resume_and_error_pages_are_accessible(browser, service, invite, shots):
    [token] = await invite()
    context = await phone(browser)
    page = await context.new_page()
    await page.goto(f"{service.url}/s/{token}")
    await page.locator("label[for='f-satisfaction_globale-6']").tap()
    await page.get_by_role("button", name="Enregistrer et finir plus tard").tap()
    await page.get_by_text("Votre questionnaire est mis de côté.").wait_for()
    await page.screenshot(path=shots / "enregistre.png", full_page=True)
    await no_axe_violations(page)
    await page.get_by_role("link", name="Reprendre maintenant").tap()
    assert await page.locator("#f-satisfaction_globale-6").is_checked()

    # A stale form (its CSRF field no longer matches): a French page, the way back, no change.
    await page.evaluate("document.querySelector('input[name=csrf]').value = 'perime'")
    await page.evaluate("document.querySelector('form').submit()")
    await page.get_by_text("Le formulaire a expiré.").wait_for()
    await no_axe_violations(page)
    await context.close()

    # Too many requests from one address (the limit is 60 at once): its own, not the tests'.
    context = await browser.new_context(
        viewport=PHONE, extra_http_headers={"X-Forwarded-For": "198.51.100.250"}
    )
    page = await context.new_page()
    for _ in range(3):  # the bucket refills 2 a second: empty it, then ask at once
        for attempt in range(200):
            if (await page.request.get(f"{service.url}/s/guess-{attempt}")).status == 429:
                break
        response = await page.goto(f"{service.url}/s/{token}")
        if response is not None and response.status == 429:
            break
    assert response is not None and response.status == 429
    await page.get_by_text("Merci de patienter une minute").wait_for()
    await page.screenshot(path=shots / "trop-de-tentatives.png", full_page=True)
    await no_axe_violations(page)
    await context.close()


LEGAL_PAGES = {
    "Données personnelles": (
        "/donnees-personnelles",
        ["Responsable du traitement", "mission d'intérêt public", "180 jours", "CNIL",
         "d'accès, de rectification, d'effacement, d'opposition et de limitation"],
    ),
    "Mentions légales": (
        "/mentions-legales", ["Éditeur", "Directeur de la publication", "Hébergeur"]
    ),
    "Accessibilité : partiellement conforme": (
        "/accessibilite", ["RGAA), version 4.1", "partiellement conforme", "Voies de recours",
                           "Défenseur des droits"],
    ),
}  # fmt: skip


async def test_survey_and_thanks_pages_link_the_legal_pages_and_say_what_happens_to_answers(
    browser, service, invite, shots
):
    [token] = await invite()
    context = await phone(browser)
    page = await context.new_page()
    problems = watch_console(page)
    await page.goto(f"{service.url}/s/{token}")
    survey_text = await page.locator("main").inner_text()
    assert "satisfaction anonyme" not in (await page.content()).lower()  # they are not
    assert "ne sont pas anonymes pour le service" in survey_text
    assert "ne servent jamais à évaluer un agent" in survey_text
    assert "sans votre accord, personne ne vous rappellera" in survey_text
    for name, (path, facts) in LEGAL_PAGES.items():
        await page.goto(f"{service.url}/s/{token}")
        footer = page.locator("footer")
        await footer.get_by_role("link", name=name).click()
        await page.wait_for_url(f"{service.url}{path}")
        text = await page.locator("main").inner_text()
        for fact in facts:
            assert fact in text, (path, fact)
        await page.screenshot(path=shots / f"{path.strip('/')}.png", full_page=True)
        await no_axe_violations(page)

    assert not problems
    await context.close()

    context = await phone(browser, javascript=False)  # every step on one page
    page = await context.new_page()
    await page.goto(f"{service.url}/s/{token}")
    for label in ("f-satisfaction_globale-2", "f-recommandation-1", "f-recontact-oui"):
        await page.locator(f"label[for='{label}']").tap()
    await page.get_by_role("button", name="Envoyer mes réponses").tap()
    await page.get_by_text(THANKS).wait_for()
    thanks = await page.locator("main").inner_text()
    assert "un agent du service pourra vous rappeler" in thanks
    for name in LEGAL_PAGES:
        assert await page.locator("footer").get_by_role("link", name=name).count() == 1
    assert "anonyme" not in thanks.lower()
    await context.close()  # (axe needs JavaScript: the thanks page is checked in the touch test)


async def test_touch_user_answers_the_three_step_short_questionnaire(
    browser, service, invite, stack
):
    """Issue #15: a network on the short questionnaire (SMS) gets its three steps, accessible."""
    short = load("sms-court-2026-v1")
    answers = {"satisfaction_globale": 4, "effort": 2, "plusieurs_contacts": "oui"}
    [token] = await invite(contact_id="crm-touch-court", questionnaire_version=short.version)
    context = await phone(browser)
    page = await context.new_page()
    problems = watch_console(page)
    await page.goto(f"{service.url}/s/{token}")
    await page.get_by_text("Étape 1 sur 3").wait_for()
    await no_axe_violations(page)
    for number, item in enumerate(short.items, start=1):
        if number > 1:
            await page.get_by_role("button", name="Suivant").tap()
        label = page.locator(f"label[for='f-{item.id}-{answers[item.id]}']")
        await label.wait_for(state="visible")
        await label.tap()
    await page.get_by_role("button", name="Envoyer mes réponses").tap()
    await page.get_by_text(THANKS).wait_for()
    await no_axe_violations(page)
    assert not problems
    await context.close()

    event = await response_event(stack, "crm-touch-court")
    assert event["data"]["answers"] == answers
    assert event["data"]["questionnaire_version"] == short.version
