"""Issue #18 in scoring's pure rules: the response rate of a cohort of invitations, and a figure
never shown outside its own interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scoring import api, weekly_report
from scoring.domain import (
    Cohort,
    _nps,
    breakdown_cells,
    cohort_of,
    cohort_response_rate,
    figures,
    manager_value,
    nps_interval,
)

from contracts import questionnaire
from contracts.events import IndicatorFigure, Interval

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_the_cohort_rate_counts_answers_to_its_own_invitations():
    # 200 invitations sent this week, 50 of them answered so far; 30 other answers received
    # this week answer last week's invitations and must not count here.
    figure = cohort_response_rate(Cohort(invited=200, answered=50), now=NOW)
    assert figure.value == 25.0
    assert figure.sample_size == 200
    assert figure.counts == {"responses": 50, "invitations": 200}
    assert figure.interval is not None and figure.interval.method == "wilson"
    assert figure.provisional is False


def test_a_cohort_whose_links_have_not_expired_is_provisional():
    open_cohort = Cohort(invited=200, answered=50, open_until=NOW + timedelta(days=3))
    assert cohort_response_rate(open_cohort, now=NOW).provisional is True
    closed = Cohort(invited=200, answered=50, open_until=NOW - timedelta(seconds=1))
    assert cohort_response_rate(closed, now=NOW).provisional is False


def test_a_cohort_cannot_have_more_answers_than_invitations():
    with pytest.raises(ValueError):
        cohort_response_rate(Cohort(invited=10, answered=11), now=NOW)


def test_an_empty_cohort_has_no_rate():
    figure = cohort_response_rate(Cohort(invited=0, answered=0), now=NOW)
    assert figure.value is None and figure.interval is None


def test_one_promoter_is_shown_at_the_centre_of_its_interval_flagged():
    figure = _nps({10: 1})
    assert figure.value == 100.0
    assert figure.interval is not None
    assert (round(figure.interval.low, 1), round(figure.interval.high, 1)) == (-48.5, 98.5)
    value, adjusted = manager_value(figure)
    assert adjusted is True
    assert value == pytest.approx(25.0)  # (P + 3/4 - D - 3/4) / (n + 3): the adjusted centre
    assert figure.interval.low <= value <= figure.interval.high


def test_a_figure_inside_its_interval_is_shown_as_it_is():
    figure = _nps({10: 30, 5: 10, 8: 10})
    value, adjusted = manager_value(figure)
    assert (value, adjusted) == (figure.value, False)
    no_interval = IndicatorFigure(indicator="x", label="x", value=3.0, unit="score", sample_size=1)
    assert manager_value(no_interval) == (3.0, False)


@pytest.mark.parametrize("n", range(1, 41))
def test_every_all_promoter_nps_is_shown_inside_its_interval(n):
    interval = nps_interval(n, 0, n)
    assert interval is not None
    figure = IndicatorFigure(
        indicator="nps", label="NPS", value=100.0, unit="score", sample_size=n,
        interval=Interval(low=interval.low, high=interval.high, method=interval.method),
    )  # fmt: skip
    value, _ = manager_value(figure)
    assert value is not None and interval.low - 1e-9 <= value <= interval.high + 1e-9


# --------------------------------------------------------------------------- told to people


def test_the_period_figures_tell_the_cohorts_rate_not_answers_received_over_invitations():
    """The figures of a week: its invitations' answers over its invitations, provisional while
    its links are open. 12 answers received this week, only 3 of them to this week's 40
    invitations: 7.5 %, not 12/40 = 30 % (the old rule's answers by answer day)."""
    tally = {"__responses__": {"1": 12}, "recommandation": {"9": 12}}
    cohort = cohort_of(40, 3, open_until=NOW + timedelta(days=6))
    shown = {
        f.indicator: f
        for f in figures(tally, invitations=cohort, questionnaire=questionnaire.load(), now=NOW)
    }
    rate = shown["response_rate"]
    assert (rate.value, rate.sample_size, rate.provisional) == (7.5, 40, True)
    assert rate.counts == {"responses": 3, "invitations": 40}


def test_answers_waiting_for_their_invitation_never_make_more_than_100_percent():
    assert cohort_of(invited=2, answered=5) == Cohort(invited=2, answered=2)
    assert cohort_response_rate(cohort_of(0, 3), now=NOW).value is None


def test_an_open_cohort_is_never_told_without_the_time():
    with pytest.raises(ValueError):
        cohort_response_rate(cohort_of(4, 1, open_until=NOW), now=None)


def test_the_weekly_e_mail_says_a_rate_of_open_links_is_provisional():
    cohort = cohort_of(40, 3, open_until=NOW + timedelta(days=6))
    rate = cohort_response_rate(cohort, now=NOW)
    [line] = [
        line
        for line in weekly_report.headline_figures([rate], [], floor=1)
        if line.indicator == "response_rate"
    ]
    assert line.provisional is True
    assert weekly_report.format_value(line) == (
        "7,5\u202f% (provisoire : des liens de la semaine peuvent encore être utilisés)"
    )
    closed = cohort_response_rate(cohort_of(40, 3), now=NOW)
    line = weekly_report.headline_figures([closed], [], floor=1)[0]
    assert weekly_report.format_value(line) == "7,5\u202f%"


def test_the_managers_api_never_shows_a_figure_outside_its_interval():
    one_promoter = _nps({10: 1})
    shown = api._figure_json(one_promoter)
    assert shown["adjusted"] is True and shown["value"] == pytest.approx(25.0)
    assert shown["interval"]["low"] <= shown["value"] <= shown["interval"]["high"]
    assert shown["note"] == "centre de l'intervalle : trop peu de réponses"
    inside = api._figure_json(_nps({10: 30, 5: 10, 8: 10}))
    assert inside["adjusted"] is False and "note" not in inside
    assert inside["value"] == pytest.approx(40.0)


def test_the_managers_api_says_a_rate_of_open_links_is_provisional():
    rate = cohort_response_rate(cohort_of(40, 3, open_until=NOW + timedelta(days=1)), now=NOW)
    assert api._figure_json(rate)["note"] == api.PROVISIONAL_NOTE
    assert "provisoire" in api.PROVISIONAL_NOTE


def test_a_breakdown_cell_tells_its_own_cohorts_rate():
    tally = {"__responses__": {"1": 6}, "recommandation": {"9": 6}}
    [cell] = breakdown_cells(
        {"telephone": tally}, invitations={"telephone": cohort_of(20, 2)}, fcr={},
        questionnaire=questionnaire.load(), floor=5, now=NOW,
    )  # fmt: skip
    assert cell.figures is not None
    [rate] = [f for f in cell.figures if f.indicator == "response_rate"]
    assert (rate.value, rate.sample_size) == (10.0, 20)
