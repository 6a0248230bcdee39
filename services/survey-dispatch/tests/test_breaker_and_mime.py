"""Unit tests: the provider circuit breaker and the composed MIME message."""

from __future__ import annotations

import email
import email.policy

import pytest
from survey_dispatch.app import new_templates
from survey_dispatch.breaker import CircuitBreaker, CircuitState
from survey_dispatch.channels import MailComposer
from survey_dispatch.settings import DispatchSettings

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_circuit_opens_after_consecutive_failures_and_probes_after_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown_seconds=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.now = 29.9
    assert breaker.state is CircuitState.OPEN
    clock.now = 30.0
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record_failure()  # the probe failed: open again, for a whole cool-down
    assert breaker.state is CircuitState.OPEN
    clock.now = 60.0
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(failures=2, cooldown_seconds=1, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED


def composer() -> MailComposer:
    settings = DispatchSettings(
        public_survey_base_url="https://x", public_optout_base_url="https://y?a=1&b=2"
    )
    return MailComposer(settings, new_templates())


def test_the_message_has_french_parts_and_one_click_unsubscribe_headers() -> None:
    site = "Urssaf Île-de-France, accueil de Montreuil"
    mails = composer()
    for token, reminder in (("abc", False), ("def", True), ("ghi", True)):  # cached templates
        raw = mails.invitation(
            to="marie@exemple.fr", site_name=site, token=token, invitation_id="inv-1",
            reminder=reminder,
        )  # fmt: skip
        assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["From"].addresses[0].display_name == site
        assert message["From"].addresses[0].addr_spec == "enquete@services-publics.example"
        assert message["To"] == "marie@exemple.fr"
        subject = f"{site} : votre avis en une minute"
        assert message["Subject"] == (f"Rappel - {subject}" if reminder else subject)
        suffix = "-rappel" if reminder else ""
        assert message["Message-ID"] == f"<inv-1{suffix}@services-publics.example>"
        optout = mails.optout_link("inv-1")  # the invitation's own secret, not its survey token
        assert optout.startswith("https://y?a=1&b=2/o/") and token not in optout
        assert message["List-Unsubscribe"] == f"<{optout}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Date"] is not None
        text = message.get_body(preferencelist=("plain",)).get_content()
        html = message.get_body(preferencelist=("html",)).get_content()
        assert text.startswith("Bonjour")
        assert f"https://x/s/{token}" in text and optout in text
        assert ("Petit rappel" in text) is reminder and ("Petit rappel" in html) is reminder
        assert f'<a href="https://x/s/{token}"' in html
        assert f'<a href="{optout.replace("&", "&amp;")}"' in html  # escaped in HTML only
        assert f"contacté {site}" in text and "\x00" not in text + html


def test_a_site_name_with_markup_is_escaped_in_html_only() -> None:
    raw = composer().invitation(
        to="a@exemple.fr", site_name="Accueil <Nord> & Sud", token="t", invitation_id="inv-2"
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["From"].addresses[0].display_name == "Accueil <Nord> & Sud"
    assert "Accueil <Nord> & Sud" in message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Accueil &lt;Nord&gt; &amp; Sud" in html and "<Nord>" not in html
