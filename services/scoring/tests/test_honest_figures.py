"""Issue #18 in scoring's pure rules: the response rate of a cohort of invitations, and a figure
never shown outside its own interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scoring.domain import Cohort, _nps, cohort_response_rate, manager_value, nps_interval

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
