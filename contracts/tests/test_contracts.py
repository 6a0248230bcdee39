"""The committed schemas match the models, and every example is valid against its schema."""

import json
from pathlib import Path

import jsonschema
import pytest

from contracts import envelope, generate
from contracts.events import ContactClosed
from contracts.topics import TOPICS, all_topic_names

pytestmark = pytest.mark.unit
EXAMPLES = sorted((Path(generate.HERE) / "examples").glob("*.json"))
EVENT_TYPES = {e.type: e for topic in TOPICS for e in topic.event_types}


def test_committed_schemas_and_asyncapi_match_the_models():
    assert generate.drifted_files() == [], "run `make contracts` and commit the result"


def test_every_event_type_has_an_example():
    assert {path.stem for path in EXAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_valid_against_its_json_schema_and_its_model(path):
    example = json.loads(path.read_text(encoding="utf-8"))
    schema = json.loads((generate.SCHEMA_DIR / f"{path.stem}.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(example)
    event_type = EVENT_TYPES[example["type"]]
    envelope.decode(event_type.envelope, path.read_bytes())


def test_a_schema_rejects_what_the_model_rejects():
    example = json.loads(
        (generate.HERE / "examples/fr.enquetes.contact.closed.v1.json").read_text()
    )
    example["data"]["channel"] = "pigeon voyageur"
    schema = json.loads((generate.SCHEMA_DIR / "fr.enquetes.contact.closed.v1.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, schema)
    with pytest.raises(envelope.InvalidEvent, match="channel"):
        envelope.decode(envelope.CloudEvent[ContactClosed], json.dumps(example).encode())


def test_binary_content_mode_is_accepted():
    example = json.loads(
        (generate.HERE / "examples/fr.enquetes.contact.closed.v1.json").read_text()
    )
    headers = [(f"ce_{k}", str(v).encode()) for k, v in example.items() if k != "data"]
    event = envelope.decode(
        envelope.CloudEvent[ContactClosed], json.dumps(example["data"]).encode(), headers
    )
    assert event.data.contact_id == "crm-2026-000123"
    assert event.type == "fr.enquetes.contact.closed.v1"


def test_every_contact_closed_field_is_documented_in_french_and_english():
    for name, field in ContactClosed.model_fields.items():
        assert field.description and " / " in field.description, name


@pytest.mark.parametrize("raw", [b"", b"not json", b"\xff\xfe", b"{}", None])
def test_garbage_is_an_invalid_event_with_a_reason(raw):
    with pytest.raises(envelope.InvalidEvent) as caught:
        envelope.decode(envelope.CloudEvent[ContactClosed], raw)
    assert str(caught.value)


def test_registry_names_each_dlq():
    assert "crm.contact.closed.v1.dlq" in all_topic_names()
    assert len(set(all_topic_names())) == 2 * len(TOPICS)


def test_encode_then_decode_keeps_nulls_inside_data():
    path = generate.HERE / "examples/fr.enquetes.site-indicators.updated.v1.json"
    example = json.loads(path.read_text(encoding="utf-8"))
    example["data"]["periods"][0]["figures"][0]["value"] = None
    event_type = EVENT_TYPES[example["type"]]
    event = envelope.decode(event_type.envelope, json.dumps(example).encode())
    again = envelope.decode(event_type.envelope, envelope.encode(event))
    assert again == event
    assert again.data.periods[0].figures[0].value is None
