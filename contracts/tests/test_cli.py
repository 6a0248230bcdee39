"""`enquetes validate` and the file formats of `enquetes emit`, without a broker."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from contracts import cli
from contracts.events import ContactClosed
from contracts.generate import event_schema
from contracts.topics import TOPICS

pytestmark = pytest.mark.unit

HERE = Path(__file__).parent.parent
CONTACT = {
    "contact_id": "c-1001",
    "closed_at": "2026-05-02T14:30:00+02:00",
    "site_id": "urssaf-75-01",
    "network": "urssaf",
    "channel": "telephone",
    "motif": "cotisations",
    "user_ref": "u-77",
    "email": "marie@example.org",
}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_validate_names_each_wrong_field_in_french_and_english_without_quoting_values(
    tmp_path, capsys
):
    bad = {
        **CONTACT,
        "contact_id": "c 2 jean.martin@example.org",
        "closed_at": "2026-05-02T14:30:00",
        "channel": "pigeon",
        "site_name": "Accueil\r\nBcc: someone",
        "nope": 1,
    }
    del bad["user_ref"]
    path = tmp_path / "contacts.jsonl"
    path.write_text(json.dumps(CONTACT) + "\n" + json.dumps(bad) + "\n\n{not json\n")

    code, out, err = _run(capsys, "validate", str(path))

    assert code == 1
    blocks = {
        match[0]: (match[1], match[2])
        for match in re.findall(r"ligne 2 / line 2: (\S+)\n  fr : (.*)\n  en : (.*)", out)
    }
    assert set(blocks) == {"contact_id", "closed_at", "channel", "site_name", "user_ref", "nope"}
    assert blocks["user_ref"] == ("champ obligatoire absent", "Field required")
    assert "décalage horaire" in blocks["closed_at"][0]
    assert "timezone" in blocks["closed_at"][1]
    assert "caractère de contrôle" in blocks["site_name"][0]
    assert "control characters" in blocks["site_name"][1]
    assert "'telephone'" in blocks["channel"][0] and " ou " in blocks["channel"][0]
    assert "champ inconnu" in blocks["nope"][0]
    assert "ligne 4 / line 4: (JSON)" in out and "JSON non valide" in out
    assert "ligne 1" not in out  # the valid line has nothing to say
    assert "example.org" not in out + err and "pigeon" not in out + err and "Bcc" not in out
    assert "4 record(s), 2 invalid" not in err  # the blank line is no record
    assert "3 record(s), 2 invalid" in err


def test_validate_accepts_the_committed_example_of_every_event_type(capsys):
    examples = sorted((HERE / "examples").glob("*.json"))
    assert len(examples) == sum(len(topic.event_types) for topic in TOPICS)
    for example in examples:
        code, out, _ = _run(capsys, "validate", str(example))
        assert (code, out) == (0, ""), example.name


def test_validate_a_json_array_of_full_cloudevents_refuses_an_unknown_type(tmp_path, capsys):
    good = json.loads((HERE / "examples" / "fr.enquetes.user.erased.v1.json").read_text())
    unknown = {**good, "type": "fr.enquetes.user.teleported.v1"}
    path = tmp_path / "events.json"
    path.write_text(json.dumps([good, unknown], indent=2))

    code, out, _ = _run(capsys, "validate", str(path))

    assert code == 1
    assert "élément 2 / item 2: type" in out
    assert "type d'événement inconnu" in out and "unknown event type" in out
    assert "élément 1" not in out


def test_validate_bare_data_of_another_type_with_type_option(tmp_path, capsys):
    alert = json.loads((HERE / "examples" / "fr.enquetes.detractor.alert.v1.json").read_text())
    path = tmp_path / "alert.jsonl"
    path.write_text(json.dumps(alert["data"]) + "\n")
    assert _run(capsys, "validate", str(path))[0] == 1  # not a closed contact
    code, out, _ = _run(capsys, "validate", "--type", alert["type"], str(path))
    assert (code, out) == (0, "")


def test_the_csv_documented_in_the_readme_validates(tmp_path, capsys):
    readme = (HERE / "README.md").read_text()
    example = readme.split("Example (`contacts.csv`):", 1)[1].split("```")[1].strip()
    path = tmp_path / "contacts.csv"
    path.write_text(example + "\n", encoding="utf-8")
    code, out, _ = _run(capsys, "validate", str(path))
    assert (code, out) == (0, "")
    checked = cli.check_file(str(path), "auto", None)
    ((_, event),) = checked.events
    assert event.data.opted_out is False and event.data.email == "marie@example.org"


def test_the_readme_csv_header_is_exactly_the_contact_closed_fields():
    readme = (HERE / "README.md").read_text()
    header = readme.split("## The CSV of closed contacts", 1)[1].split("```")[1].strip()
    assert header.split(",") == list(ContactClosed.model_fields)


def test_csv_with_commas_bom_empty_cells_and_a_missing_required_column(tmp_path, capsys):
    path = tmp_path / "contacts.csv"
    path.write_text(
        "\ufeffcontact_id,closed_at,site_id,network,channel,motif,user_ref,mobile_phone,opted_out\n"
        "c-1,2026-05-02T14:30:00Z,s-1,urssaf,accueil_physique,m,u-1,,oui\n"
        "c-2,2026-05-02T14:30:00Z,s-1,urssaf,accueil_physique,m,,+33612345678,\n",
        encoding="utf-8",
    )
    code, out, _ = _run(capsys, "validate", str(path))
    assert code == 1
    assert out.splitlines()[0] == "ligne 3 / line 3: user_ref"
    assert "+33612345678" not in out
    first = cli.check_file(str(path), "auto", None).events[0][1]
    assert first.data.opted_out is True and first.data.mobile_phone is None


def test_emit_refuses_an_invalid_file_and_sends_nothing(tmp_path, capsys):
    path = tmp_path / "contacts.jsonl"
    path.write_text(json.dumps(CONTACT) + "\n" + json.dumps({**CONTACT, "channel": "x"}) + "\n")
    # No broker listens on port 9: had it tried to send, it would fail differently.
    code, out, err = _run(capsys, "emit", "--bootstrap", "127.0.0.1:9", str(path))
    assert code == 1
    assert "ligne 2 / line 2: channel" in out
    assert "nothing was sent" in err


def test_bare_contacts_get_stable_event_ids_so_a_file_sent_twice_is_deduplicated(tmp_path):
    path = tmp_path / "contacts.jsonl"
    other = {**CONTACT, "contact_id": "c-1002"}
    path.write_text(json.dumps(CONTACT) + "\n" + json.dumps(other) + "\n")
    first = [event for _, event in cli.check_file(str(path), "auto", None).events]
    again = [event for _, event in cli.check_file(str(path), "auto", None).events]
    assert [e.id for e in first] == [e.id for e in again]
    assert first[0].id != first[1].id
    assert first[0].subject == "urssaf-75-01"
    assert first[0].time == first[0].data.closed_at


def test_every_event_points_at_its_json_schema_id():
    for topic in TOPICS:
        for event_type in topic.event_types:
            example = json.loads((HERE / "examples" / f"{event_type.type}.json").read_text())
            bare = cli.wrap(event_type, event_type.model.model_validate(example["data"]))
            decoded = event_type.envelope.model_validate(example)
            for event in (bare, decoded):
                on_the_wire = json.loads(cli.encode(event))
                assert on_the_wire["dataschema"] == event_schema(event_type)["$id"]
