"""Trust rules held by the contracts themselves (issue #12)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contracts import envelope, floors, questionnaire
from contracts.events import (
    ContactClosed,
    DetractorAlert,
    IndicatorFigure,
    Interval,
    ResponseSubmitted,
)
from contracts.topics import CRM_CONTACT_CLOSED, DAY_MS, SURVEY_CONTACT, TOPICS

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CONTACT = {
    "contact_id": "crm-1",
    "closed_at": NOW.isoformat(),
    "site_id": "site-1",
    "network": "urssaf",
    "channel": "telephone",
    "motif": "cotisations",
    "user_ref": "usager-1",
    "site_name": "Agence de Montreuil",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site_name", "Agence\r\nReply-To: phish@evil.example"),
        ("site_name", "Agence\nBcc: x@evil.example"),
        ("site_name", "Agence\x00"),
        ("site_name", "Agence\tMontreuil"),
        ("site_name", "Agence\u2028Montreuil"),
        ("site_name", "Agence\x85Montreuil"),
        ("user_ref", "usager\r\n1"),
        ("email", "a@b.fr\r\nBcc: c@evil.example"),
        ("mobile_phone", "0612\n345678"),
        ("site_id", "site\r\n1"),
        ("motif", "motif\x7f"),
    ],
)
def test_control_characters_are_refused_in_every_label_and_identifier(field, value):
    with pytest.raises(ValidationError):
        ContactClosed.model_validate({**CONTACT, field: value})


def test_plain_french_labels_are_still_accepted():
    name = "Accueil d'Évry – Courcouronnes"
    contact = ContactClosed.model_validate({**CONTACT, "site_name": name})
    assert contact.site_name == name


def _response(answers):
    return {
        "response_id": "r-1",
        "invitation_id": "i-1",
        "contact_id": "c-1",
        "site_id": "s-1",
        "network": "urssaf",
        "channel": "telephone",
        "motif": "m",
        "questionnaire_version": "v1",
        "answers": answers,
        "answered_at": NOW.isoformat(),
    }


@pytest.mark.parametrize("rating", [True, False, 7.0, 7.5])
def test_a_json_boolean_or_float_is_not_a_rating(rating):
    raw = json.dumps(_response({"recommandation": rating}))
    with pytest.raises(ValidationError):
        ResponseSubmitted.model_validate_json(raw)


def test_questionnaire_refuses_a_boolean_rating_with_a_french_message():
    form = questionnaire.load()
    with pytest.raises(ValueError, match="nombre entier"):
        form.item("recommandation").check(True)
    assert form.item("recommandation").check("7") == 7


def test_consent_item_asks_before_any_call_back():
    item = questionnaire.load().item("recontact")
    assert not item.required
    assert {option.value for option in item.options} == {"oui", "non"}


def test_free_text_never_travels_on_a_detractor_alert():
    alert = {
        "alert_id": "a-1",
        "invitation_id": "i-1",
        "contact_id": "c-1",
        "site_id": "s-1",
        "network": "urssaf",
        "reasons": ["low_recommendation"],
        "raised_at": NOW.isoformat(),
    }
    DetractorAlert.model_validate({**alert, "answers": {"recommandation": 2, "canal": "sms"}})
    with pytest.raises(ValidationError):
        DetractorAlert.model_validate(
            {**alert, "answers": {"suggestion": "Rappelez-moi au 06 12 34 56 78"}}
        )


def test_only_survey_dispatch_reads_the_topic_with_contact_points():
    personal = [topic for topic in TOPICS if topic.personal_data]
    assert personal == [CRM_CONTACT_CLOSED]
    assert CRM_CONTACT_CLOSED.consumers == ("survey-dispatch",)
    assert SURVEY_CONTACT.consumers == ("scoring",)
    link_validity = 7 * DAY_MS
    assert CRM_CONTACT_CLOSED.retention_ms is not None
    assert CRM_CONTACT_CLOSED.retention_ms < link_validity
    assert CRM_CONTACT_CLOSED.dlq_retention_ms is not None
    assert CRM_CONTACT_CLOSED.dlq_retention_ms < link_validity


def test_the_pseudonymous_contact_carries_no_contact_point():
    fields = set(SURVEY_CONTACT.event_types[0].model.model_fields)
    assert not fields & {"email", "mobile_phone", "user_ref"}
    assert "user_pseudo_id" in fields


def _figure(n):
    return IndicatorFigure(
        indicator="nps",
        label="NPS",
        value=40.0,
        unit="score",
        sample_size=n,
        interval=Interval(low=10, high=60, method="adjusted_wald"),
        counts={"promoters": 3},
    )


def test_floor_withholds_value_interval_and_counts_below_it():
    shown = floors.floored(_figure(5), floors.ANONYMITY_FLOOR)
    assert shown.value == 40.0 and shown.interval is not None
    hidden = floors.floored(_figure(4), floors.ANONYMITY_FLOOR)
    assert (hidden.value, hidden.interval, hidden.counts) == (None, None, {})
    assert hidden.sample_size == 4 and hidden.label == "NPS"
    assert not floors.may_show(29, floors.PUBLIC_FLOOR)
    assert floors.may_show(30, floors.PUBLIC_FLOOR)


def test_decode_of_a_header_injection_names_the_field():
    raw = json.dumps(
        {
            "specversion": "1.0",
            "id": "e-1",
            "source": "/crm",
            "type": "fr.enquetes.contact.closed.v1",
            "time": NOW.isoformat(),
            "data": {**CONTACT, "site_name": "A\r\nReply-To: x@evil.example"},
        }
    ).encode()
    with pytest.raises(envelope.InvalidEvent, match="site_name"):
        envelope.decode(envelope.CloudEvent[ContactClosed], raw)
