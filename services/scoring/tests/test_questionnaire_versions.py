"""Issue #15: every figure from the questionnaire version each response carries (pure rules)."""

from __future__ import annotations

from scoring import domain

from contracts import questionnaire

DEFAULT = questionnaire.load(questionnaire.DEFAULT_VERSION)
SHORT = questionnaire.load(questionnaire.SMS_SHORT_VERSION)
FORMS = questionnaire.load_all()


def tally_of(*responses: tuple[str | None, dict[str, int | str]]) -> dict[str, dict[str, int]]:
    """The tally of (version, answers) responses, as the consumer adds them."""
    cells = [domain.tally_rows(answers, version=version) for version, answers in responses]
    tally: dict[str, dict[str, int]] = {}
    for rows in cells:
        for item, value in rows:
            tally.setdefault(item, {})
            tally[item][value] = tally[item].get(value, 0) + 1
    return tally


def indicators(tally, form) -> dict[str, object]:
    figures = domain.figures(tally, invitations=10, questionnaire=form)
    return {figure.indicator: figure for figure in figures}


def test_the_short_questionnaire_supports_satisfaction_effort_and_declared_fcr_only():
    assert domain.supported_indicators(SHORT) == {
        "satisfaction", "satisfaction_mean", "ces", "ces_mean", "fcr_declared", "response_rate",
    }  # fmt: skip
    default = domain.supported_indicators(DEFAULT)
    assert {"nps", "theme_clarte", "theme_clarte_share"} <= default
    assert domain.supported_indicators(SHORT) < default


def test_each_response_is_tallied_with_its_version():
    rows = domain.tally_rows({"satisfaction_globale": 9}, version=SHORT.version)
    assert (domain.VERSION_ITEM, SHORT.version) in rows
    assert all(item != domain.VERSION_ITEM for item, _ in domain.tally_rows({"effort": 3}))


def test_responses_of_the_short_version_only_leave_out_the_indicators_it_lacks():
    tally = tally_of(
        (SHORT.version, {"satisfaction_globale": 9, "effort": 6, "plusieurs_contacts": "non"}),
        (SHORT.version, {"satisfaction_globale": 4}),
    )
    form = domain.questionnaire_of([tally], FORMS, fallback=DEFAULT)
    assert form is SHORT
    shown = indicators(tally, form)
    assert set(shown) == domain.supported_indicators(SHORT)  # no NPS at n = 0, no themes
    assert shown["satisfaction"].sample_size == 2 and shown["satisfaction"].value == 50.0
    assert shown["ces"].sample_size == 1 and shown["fcr_declared"].value == 100.0


def test_a_mixed_period_computes_each_figure_from_the_responses_whose_version_asks_it():
    tally = tally_of(
        (SHORT.version, {"satisfaction_globale": 10, "effort": 7}),
        (DEFAULT.version, {"satisfaction_globale": 2, "recommandation": 10, "theme_clarte": 9}),
        (None, {"satisfaction_globale": 8, "recommandation": 3}),  # tallied before versions
    )
    assert domain.tallied_versions(tally, untagged=DEFAULT.version) == {
        SHORT.version: 1, DEFAULT.version: 2,
    }  # fmt: skip
    form = domain.questionnaire_of([tally], FORMS, fallback=DEFAULT)
    assert form.version == f"{DEFAULT.version}+{SHORT.version}"
    assert [item.id for item in form.items] == [item.id for item in DEFAULT.items]
    shown = indicators(tally, form)
    assert set(shown) == domain.supported_indicators(DEFAULT)
    assert shown["satisfaction"].sample_size == 3  # every version asks it
    assert shown["nps"].sample_size == 2  # only the default version's responses
    assert shown["ces"].sample_size == 1  # only the short one's answered it


def test_a_period_without_responses_takes_the_fallback():
    assert domain.questionnaire_of([{}], FORMS, fallback=SHORT) is SHORT
    assert domain.questionnaire_of([], FORMS, fallback=DEFAULT) is DEFAULT
    untagged = tally_of((None, {"satisfaction_globale": 7}))
    assert domain.questionnaire_of([untagged], FORMS, fallback=SHORT) is DEFAULT


def test_a_site_form_over_several_windows_serves_an_empty_window():
    week: dict[str, dict[str, int]] = {}
    quarter = tally_of((SHORT.version, {"satisfaction_globale": 9}))
    site_form = domain.questionnaire_of([week, quarter], FORMS, fallback=DEFAULT)
    assert domain.questionnaire_of([week], FORMS, fallback=site_form) is SHORT
    assert "nps" not in indicators(week, SHORT)


def test_each_breakdown_cell_shows_the_indicators_of_its_own_responses_versions():
    sms = tally_of(*[(SHORT.version, {"satisfaction_globale": 9, "effort": 6})] * 5)
    full = tally_of(*[(DEFAULT.version, {"satisfaction_globale": 7, "recommandation": 9})] * 5)
    tallies = {"sms": sms, "courriel": full}
    site_form = domain.questionnaire_of(tallies.values(), FORMS, fallback=DEFAULT)
    cells = domain.breakdown_cells(
        tallies, invitations={}, fcr={}, questionnaire=site_form, floor=5, forms=FORMS
    )
    shown = {cell.value: {f.indicator for f in cell.figures or []} for cell in cells}
    assert "nps" not in shown["sms"] and "ces" in shown["sms"]
    assert "nps" in shown["courriel"] and "theme_clarte" in shown["courriel"]
    assert shown["sms"] == domain.supported_indicators(SHORT)
