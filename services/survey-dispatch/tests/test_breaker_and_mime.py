"""Unit tests: the provider circuit breaker and the hand-built MIME message."""

from __future__ import annotations

import email
import email.policy

import pytest
from survey_dispatch.breaker import CircuitBreaker, CircuitState
from survey_dispatch.channels import Email, render_mime

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


def test_the_message_has_french_parts_and_one_click_unsubscribe_headers() -> None:
    site = "Urssaf Île-de-France, accueil de Montreuil"
    raw = render_mime(
        Email(
            to="marie@exemple.fr",
            sender_name=site,
            subject=f"Rappel - {site} : votre avis",
            text="Répondez ici : https://x/s/abc",
            html="<p>Répondez <a href='https://x/s/abc'>ici</a></p>",
            message_id="<inv-1@services-publics.example>",
            unsubscribe_url="https://x/o/abc",
        ),
        "enquete@services-publics.example",
    )
    assert b"\r\n" in raw and b"\n " not in raw.replace(b"\r\n ", b"")  # CRLF folding only
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["From"].addresses[0].display_name == site
    assert message["Subject"] == f"Rappel - {site} : votre avis"
    assert message["Message-ID"] == "<inv-1@services-publics.example>"
    assert message["List-Unsubscribe"] == "<https://x/o/abc>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_body(preferencelist=("plain",)).get_content().startswith("Répondez ici")
    assert "<a href='https://x/s/abc'>" in message.get_body(preferencelist=("html",)).get_content()
