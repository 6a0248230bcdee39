"""Pure rules of the survey page: link states, steps, pre-filling, cleaning, limits, CSRF."""

from __future__ import annotations

import asyncio
import gzip
import re
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from markupsafe import Markup
from survey_responses import domain, security
from survey_responses.pages import Pages, Segments, french_spacing, slot
from survey_responses.ratelimit import RateLimiter

from contracts.questionnaire import load
from plumbing.web import behind_tls

pytestmark = pytest.mark.unit

NOW = datetime(2024, 9, 2, 10, 0, tzinfo=UTC)
QUESTIONNAIRE = load("urssaf-chaud-2024-v1")


@pytest.mark.parametrize(
    ("found", "expires_at", "answered", "state"),
    [
        (False, None, False, domain.LinkState.UNKNOWN),
        (True, NOW + timedelta(days=1), False, domain.LinkState.OPEN),
        (True, NOW, False, domain.LinkState.EXPIRED),
        (True, NOW - timedelta(days=1), True, domain.LinkState.ANSWERED),  # answered wins
    ],
)
def test_link_state(found, expires_at, answered, state):
    assert (
        domain.link_state(found=found, expires_at=expires_at, answered=answered, now=NOW) is state
    )


def test_steps_put_each_question_alone_and_the_themes_together():
    steps = domain.steps(QUESTIONNAIRE)
    assert [len(step.items) for step in steps] == [1, 1, 1, 1, 1, 7, 1, 1, 1, 1]
    assert [step.number for step in steps] == list(range(1, 11))
    assert steps[5].group == "themes"
    assert [step.required for step in steps[:3]] == [True, True, False]


def test_prefill_keeps_only_values_the_questionnaire_offers():
    invitation = {"channel": "telephone", "profile": "astronaute", "request_nature": None}
    assert domain.prefilled_answers(QUESTIONNAIRE, invitation) == {"canal": "telephone"}


def test_form_answers_drop_foreign_fields_and_unstorable_characters():
    form = {
        "csrf": "abc",
        "action": "submit",
        "satisfaction_globale": "9",
        "suggestion": "ok\x00\ud800",
    }
    assert domain.form_answers(form, QUESTIONNAIRE) == {
        "satisfaction_globale": "9",
        "suggestion": "ok?",
    }


def test_token_is_cut_before_hashing():
    assert domain.token_digest_input("a" * 1000) == b"a" * domain.MAX_TOKEN_LENGTH


def test_rate_limiter_allows_a_burst_then_refills_at_the_rate():
    limiter = RateLimiter(rate_per_minute=60, burst=3)
    assert [limiter.retry_after("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.retry_after("k", 0.0) == pytest.approx(1.0)
    assert limiter.retry_after("other", 0.0) == 0.0  # keys are independent
    assert limiter.retry_after("k", 1.0) == 0.0  # one token a second came back


def test_rate_limiter_forgets_the_oldest_keys_and_can_be_disabled():
    limiter = RateLimiter(rate_per_minute=1, burst=1, max_keys=2)
    for key in ("a", "b", "c"):
        limiter.retry_after(key, 0.0)
    assert limiter.retry_after("a", 0.0) == 0.0  # "a" was evicted: memory stays bounded
    disabled = RateLimiter(rate_per_minute=0, burst=1)
    assert not disabled.enabled and all(disabled.retry_after("k", 0.0) == 0 for _ in range(100))


def test_csrf_token_is_bound_to_one_invitation():
    token = security.csrf_token(b"key", "inv-1")
    assert security.csrf_valid(b"key", "inv-1", token)
    assert not security.csrf_valid(b"key", "inv-2", token)
    assert not security.csrf_valid(b"other-key", "inv-1", token)
    assert not security.csrf_valid(b"key", "inv-1", "\ud800")


def test_cross_site_posts_and_tls_detection():
    assert security.cross_site({"sec-fetch-site": "cross-site"})
    assert not security.cross_site({"sec-fetch-site": "same-origin"})
    assert not security.cross_site({})  # old browsers and API clients send nothing
    assert behind_tls({"scheme": "https", "headers": []})
    assert behind_tls({"scheme": "http", "headers": [(b"x-forwarded-proto", b"https")]})
    assert not behind_tls({"scheme": "http", "headers": []})


def test_french_spacing_never_leaves_a_mark_alone_on_a_line():
    assert french_spacing("Vous êtes ? « Oui »") == "Vous êtes\u00a0? «\u00a0Oui\u00a0»"


def test_every_radio_has_a_label_and_every_scale_a_legend():
    pages = Pages(results_base_url="https://r", optout_base_url="https://o")
    html = pages.survey(
        questionnaire=QUESTIONNAIRE,
        site_name="Accueil",
        csrf="c",
        values={"canal": "sms"},
        errors={},
    ).body.decode()
    radios = re.findall(r'<input[^>]*type="radio"[^>]*id="([^"]+)"', html)
    assert len(radios) == 10 + 11 + 9 + 7 + 2 + 7 * 10 + 6 + 4 + 2  # every option of every item
    for radio_id in radios:
        assert f'for="{radio_id}"' in html
    assert (
        html.count("<fieldset") == html.count("<legend") == 16
    )  # 15 choice or scale items + the themes group
    assert 'id="f-canal-sms" name="canal" value="sms" checked' in html
    assert "Étape 10 sur 10" in html
    # The call-back consent: asked plainly, optional, Oui / Non.
    assert "J&#39;accepte d&#39;être recontacté(e) par le service au sujet de mes réponses." in html
    assert 'id="f-recontact-oui" name="recontact" value="oui">' in html
    assert 'id="f-recontact-non" name="recontact" value="non">' in html


def test_the_short_questionnaire_is_a_three_step_page_without_the_call_back_sentence():
    pages = Pages(results_base_url="https://r", optout_base_url="https://o")
    short = load("sms-court-2026-v1")
    html = pages.survey(
        questionnaire=short, site_name="Accueil", csrf="c", values={}, errors={}
    ).body.decode()
    radios = re.findall(r'<input[^>]*type="radio"[^>]*id="([^"]+)"', html)
    assert len(radios) == 10 + 7 + 2
    assert all(f'for="{radio_id}"' in html for radio_id in radios)
    assert html.count("<fieldset") == html.count("<legend") == 3
    assert "Étape 3 sur 3" in html and 'lang="fr"' in html
    assert "recontact" not in html and "rappeler" not in html
    full = pages.survey(questionnaire=QUESTIONNAIRE, site_name=None, csrf="c", values={}, errors={})
    assert "rappeler" in full.body.decode()


def _sent(page, accept_encoding: bytes) -> tuple[dict[bytes, bytes], bytes]:
    """What the page sends over ASGI to a client with this Accept-Encoding."""
    messages: list[dict] = []

    async def send(message: dict) -> None:
        messages.append(message)

    scope = {"type": "http", "headers": [(b"accept-encoding", accept_encoding)]}
    asyncio.run(page(scope, None, send))
    start, body = messages
    return dict(start["headers"]), body["body"]


def test_a_page_filled_in_is_the_template_rendered_and_its_gzip_decodes_to_it():
    pages = Pages(results_base_url="https://r", optout_base_url="https://o")
    site = 'Accueil <b>"Montreuil"</b> & co'  # escaped as the template escapes it
    values, errors = {"canal": "sms", "suggestion": "À <suivre>"}, {"effort": "Trop « court »"}
    page = pages.survey(questionnaire=QUESTIONNAIRE, site_name=site, csrf="c0ffee",
                        values=values, errors=errors, status=422)  # fmt: skip
    steps = domain.steps(QUESTIONNAIRE)
    steps_html = pages.env.get_template("_steps.html").render(
        steps=steps, values=values, errors=errors
    )
    expected = pages.env.get_template("survey.html").render(
        q=QUESTIONNAIRE, steps_html=Markup(steps_html), errors=errors, site_name=site,
        csrf="c0ffee", step_count=len(steps), asks_recontact=True,
    ).encode()  # fmt: skip
    headers, compressed = _sent(page, b"gzip, deflate, br")
    assert headers[b"content-encoding"] == b"gzip" and headers[b"vary"] == b"Accept-Encoding"
    assert int(headers[b"content-length"]) == len(compressed) < len(expected) / 4
    assert gzip.decompress(compressed) == expected == page.body
    headers, plain = _sent(page, b"identity")
    assert plain == expected and b"content-encoding" not in headers
    assert page.status_code == 422

    other = pages.survey(questionnaire=QUESTIONNAIRE, site_name=None, csrf="beef",
                         values=values, errors=errors)  # fmt: skip
    assert b"Service public" in gzip.decompress(_sent(other, b"gzip")[1])
    assert b'name="csrf" value="beef"' in other.body


def test_long_values_span_several_stored_blocks():
    segments = Segments(f"<p>{slot('a')}</p><p>{slot('b')}</p>")
    values = [b"x" * 70_000, "é".encode() * 40_000]
    assert zlib.decompress(segments.gzip(values), 16 + zlib.MAX_WBITS) == segments.plain(values)
    assert segments.plain(values) == b"<p>" + values[0] + b"</p><p>" + values[1] + b"</p>"


PHONE, EMAIL, NIR, IBAN = "[téléphone]", "[courriel]", "[numéro de sécurité sociale]", "[IBAN]"
REDACTED = [
    ("Rappelez-moi au 06 12 34 56 78 svp", f"Rappelez-moi au {PHONE} svp"),
    ("tel 0612345678", f"tel {PHONE}"),
    ("06.12.34.56.78", PHONE),
    ("06-12-34-56-78 le matin", f"{PHONE} le matin"),
    ("fixe : 01 23 45 67 89", f"fixe : {PHONE}"),
    ("+33 6 12 34 56 78", PHONE),
    ("+33612345678", PHONE),
    ("+33 (0)6 12 34 56 78", PHONE),
    ("0033 6 12 34 56 78", PHONE),
    ("portable 07\u00a012\u00a034\u00a056\u00a078.", f"portable {PHONE}."),
    ("(06 1234 5678)", f"({PHONE})"),
    ("tél:0987654321", f"tél:{PHONE}"),
    ("écrivez à jean.dupont@example.fr merci", f"écrivez à {EMAIL} merci"),
    ("Marie.Curie+urssaf@sub.domaine.gouv.fr", EMAIL),
    ("mon mail : jdupont (at) gmail.com", f"mon mail : {EMAIL}"),
    ("contact@urssaf.fr, 06 12 34 56 78", f"{EMAIL}, {PHONE}"),
    ("NIR 1 85 05 78 006 084 36", f"NIR {NIR}"),
    ("185057800608436", NIR),
    ("2 99 12 2A 123 456 78", NIR),
    ("n°2.85.05.78.006.084.36 !", f"n°{NIR} !"),
    ("sécu 1-85-05-78-006-084-36", f"sécu {NIR}"),
    ("mon numéro 1 85 05 78 006 084", f"mon numéro {NIR}"),
    ("IBAN FR76 3000 6000 0112 3456 7890 189", f"IBAN {IBAN}"),
    ("FR7630006000011234567890189", IBAN),
    ("fr76 3000 6000 0112 3456 7890 189 pour le remboursement", f"{IBAN} pour le remboursement"),
    ("BE68 5390 0754 7034", IBAN),
]
UNCHANGED = [
    "Réponse en 3 jours, merci.",
    "Rendez-vous le 12/05 à 14h30.",
    "Je mets 10/10 !",
    "Le 12/05/2024, puis le 03/06/2024.",
    "J'ai appelé 3 fois en 2 semaines.",
    "Montant de 1 250,00 € remboursé.",
    "Dossier 123456789 toujours en attente.",
    "Appelez le 3960 ou le 36 46.",
    "Ouvert de 8h30 à 16h30, 5 jours sur 7.",
    "Courtoisie : 8 sur 10 @ l'accueil.",
    "Code postal 93100 Montreuil.",
    "SIRET 123 456 789 00012",
    "Article L. 243-7 du code.",
    "ab12 cdef ghij klmn",
    "Très bien, rien à signaler.",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_free_text_loses_phones_emails_nir_and_iban(text, expected):
    assert domain.redact(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_free_text_keeps_dates_scores_amounts_and_service_numbers(text):
    assert domain.redact(text) == text


def test_redaction_touches_only_free_text_and_stays_within_the_contract_length():
    answers = {"recommandation": 3, "canal": "telephone", "suggestion": "Rappel au 0612345678"}
    assert domain.redact_answers(QUESTIONNAIRE, answers) == {
        "recommandation": 3, "canal": "telephone", "suggestion": f"Rappel au {PHONE}",
    }  # fmt: skip
    worst = " ".join(["a@b.fr"] * 143)[:1000]  # the shortest e-mails, the longest tag after them
    assert len(domain.redact(worst)) <= 2000


def test_erasure_keeps_ratings_and_choices_only():
    answers = {"recommandation": 3, "recontact": "oui", "suggestion": "Merci"}
    assert domain.without_free_text(QUESTIONNAIRE, answers) == {
        "recommandation": 3, "recontact": "oui",
    }  # fmt: skip


def test_trusted_proxies_come_from_a_comma_separated_setting(monkeypatch):
    from survey_responses.settings import ResponsesSettings

    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8")
    assert [str(n) for n in ResponsesSettings().trusted_proxies] == ["10.0.0.0/8", "fd00::/8"]
    monkeypatch.delenv("TRUSTED_PROXIES")
    assert [str(n) for n in ResponsesSettings().trusted_proxies] == ["127.0.0.0/8", "::1/128"]
