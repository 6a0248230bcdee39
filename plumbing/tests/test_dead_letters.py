"""What a DLQ record keeps, as a pure function (issue #12, item 2)."""

from __future__ import annotations

import json

from contracts.topics import CRM_CONTACT_CLOSED, SURVEY_RESPONSE
from plumbing.dead_letters import dead_letter

CONTACT = {
    "id": "e-1",
    "type": "fr.enquetes.contact.closed.v1",
    "data": {"contact_id": "c-1", "email": "a@b.fr", "mobile_phone": "0612", "user_ref": "u-1"},
}


def test_structured_record_of_a_personal_topic_loses_its_contact_points():
    letter = dead_letter(CRM_CONTACT_CLOSED, json.dumps(CONTACT).encode(), (), detail="x")
    kept = json.loads(letter.value)
    assert kept["data"] == {"contact_id": "c-1"}
    assert dict(letter.headers)["dlq-redacted"] == b"email,mobile_phone,user_ref"


def test_binary_mode_record_loses_its_contact_points_too():
    headers = (("ce_specversion", b"1.0"),)
    letter = dead_letter(
        CRM_CONTACT_CLOSED, json.dumps(CONTACT["data"]).encode(), headers, detail="x"
    )
    assert json.loads(letter.value) == {"contact_id": "c-1"}


def test_a_record_that_is_not_json_is_withheld_whole():
    letter = dead_letter(CRM_CONTACT_CLOSED, b"email=a@b.fr;phone=0612", (), detail="not JSON")
    assert letter.value == b""
    assert dict(letter.headers)["dlq-value-withheld"] == b"not a JSON object"


def test_a_handler_error_message_is_withheld_on_a_personal_topic():
    letter = dead_letter(
        CRM_CONTACT_CLOSED,
        json.dumps(CONTACT).encode(),
        (),
        detail="KeyError: 'a@b.fr'",
        error_type="KeyError",
    )
    assert "a@b.fr" not in letter.detail
    assert letter.detail.startswith("KeyError")


def test_other_topics_keep_the_record_and_the_message():
    raw = b'{"id": "r-1"}'
    letter = dead_letter(SURVEY_RESPONSE, raw, (), detail="boom", error_type="ValueError")
    assert (letter.value, letter.detail, letter.headers) == (raw, "boom", ())
