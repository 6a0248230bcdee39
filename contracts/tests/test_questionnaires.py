"""The questionnaire registry: every known version loads, validates, and scores with the others."""

from __future__ import annotations

import pytest

from contracts import questionnaire
from contracts.questionnaire import ItemKind, Questionnaire


def test_the_registry_is_exactly_the_files_shipped():
    files = {path.stem for path in questionnaire.QUESTIONNAIRE_DIR.glob("*.json")}
    assert files == set(questionnaire.KNOWN_VERSIONS)
    assert questionnaire.DEFAULT_VERSION in questionnaire.KNOWN_VERSIONS


@pytest.mark.parametrize("version", questionnaire.KNOWN_VERSIONS)
def test_every_known_version_loads_under_its_own_name(version):
    form = questionnaire.load(version)
    assert form.version == version
    assert form.items and any(item.required for item in form.items)
    assert len({item.id for item in form.items}) == len(form.items)


def test_the_short_questionnaire_has_three_items_suited_to_sms():
    form = questionnaire.load(questionnaire.SMS_SHORT_VERSION)
    assert [item.id for item in form.items] == [
        "satisfaction_globale",
        "effort",
        "plusieurs_contacts",
    ]
    assert all(item.kind is not ItemKind.TEXT for item in form.items)  # nothing to redact
    assert form.validate_answers({"satisfaction_globale": 9}, partial=False) == {
        "satisfaction_globale": 9
    }


def test_the_short_questionnaire_validates_answers_against_its_own_items():
    form = questionnaire.load(questionnaire.SMS_SHORT_VERSION)
    with pytest.raises(ValueError) as refused:
        form.validate_answers({"satisfaction_globale": 9, "recommandation": 10}, partial=False)
    assert refused.value.args[0] == {"recommandation": "Question inconnue : recommandation."}
    with pytest.raises(ValueError) as missing:
        form.validate_answers({"effort": 6}, partial=False)
    assert "satisfaction_globale" in missing.value.args[0]


def test_known_versions_answer_every_shared_item_the_same_way():
    assert questionnaire.incompatibilities(questionnaire.load_all().values()) == []


def test_a_version_giving_a_shared_item_another_scale_is_reported():
    default = questionnaire.load()
    effort = default.item("effort").model_copy(update={"scale_max": 5})
    other = Questionnaire(version="autre-v1", title="t", intro="i", items=(effort,))
    assert questionnaire.incompatibilities([default, other]) == [
        "effort: autre-v1 does not answer it as urssaf-chaud-2024-v1"
    ]


@pytest.mark.parametrize("version", ["inconnu-v1", "../urssaf-chaud-2024-v1", ""])
def test_an_unknown_version_is_not_loaded(version):
    assert not questionnaire.is_known(version)
    with pytest.raises(KeyError):
        questionnaire.load(version)
    assert "sms-court-2026-v1" in questionnaire.unknown_version_message(version)
