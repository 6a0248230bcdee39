"""The week's top irritants (issue #17), pure: counts, ranking, trend against the four previous
weeks without calling noise a trend, the anonymity floor."""

from __future__ import annotations

from datetime import date, timedelta

from scoring.irritants import (
    NO_HISTORY,
    SiteWeek,
    irritant_counts,
    top_irritants,
    weekly_top_irritants,
)

from contracts.figures import STABLE_TEXT

FLOOR = 5


def test_counts_only_irritant_verbatims_once_per_theme():
    counts = irritant_counts([
        ("irritant", ["delais", "courtoisie"]),
        ("irritant", ["delais", "delais"]),
        ("satisfaction", ["delais"]),
        ("suggestion", ["courtoisie"]),
        (None, None),  # stored before tagging: « non classé », never an irritant
        ("irritant", []),
    ])  # fmt: skip
    assert counts == {"delais": 2, "courtoisie": 1}


def test_ranked_by_count_then_by_the_questionnaires_order():
    week = SiteWeek(40, {"courtoisie": 3, "delais": 5, "clarte": 3, "autre": 0})
    ranked = top_irritants(week, [], floor=FLOOR)
    assert [(i.theme, i.count) for i in ranked] == [("delais", 5), ("clarte", 3), ("courtoisie", 3)]
    assert ranked[0].label == "Délais de traitement"
    assert [i.theme for i in top_irritants(week, [], floor=FLOOR, limit=2)] == ["delais", "clarte"]


def test_withheld_below_the_anonymity_floor():
    assert top_irritants(SiteWeek(4, {"delais": 3}), [], floor=FLOOR) is None
    assert top_irritants(SiteWeek(5, {"delais": 3}), [], floor=FLOOR) is not None


def test_no_history_is_said_not_guessed():
    (delais,) = top_irritants(SiteWeek(30, {"delais": 6}), [SiteWeek(0, {})] * 4, floor=FLOOR)
    assert delais.previous_mean is None and delais.trend is None
    assert delais.trend_text == NO_HISTORY


def test_a_clear_rise_against_the_four_previous_weeks():
    history = [SiteWeek(50, {"delais": 1})] * 4  # 4 of 200 answers: 2 %
    (delais,) = top_irritants(SiteWeek(50, {"delais": 12}), history, floor=FLOOR)  # 24 %
    assert delais.previous_mean == 1.0
    assert delais.trend == "hausse" and delais.trend_text == "en hausse"


def test_a_clear_fall():
    history = [SiteWeek(50, {"delais": 15})] * 4  # 30 %
    (delais,) = top_irritants(SiteWeek(50, {"delais": 2}), history, floor=FLOOR)  # 4 %
    assert delais.trend == "baisse" and delais.trend_text == "en baisse"


def test_small_counts_are_not_called_a_trend():
    """1 or 2 complaints after a mean of 0,25 (one in four weeks), four and eight times the mean:
    noise at these counts. 3 of 20 answers after 1 of 80 is not (Poisson: p < 0,01)."""
    history = [SiteWeek(20, {"courtoisie": 1}), SiteWeek(20, {}), SiteWeek(20, {}),
               SiteWeek(20, {})]  # fmt: skip
    (courtoisie,) = top_irritants(SiteWeek(20, {"courtoisie": 1}), history, floor=FLOOR)
    assert courtoisie.previous_mean == 0.25
    assert courtoisie.trend == "stable" and courtoisie.trend_text == STABLE_TEXT
    (double,) = top_irritants(SiteWeek(20, {"courtoisie": 2}), history, floor=FLOOR)
    assert double.trend == "stable"
    (triple,) = top_irritants(SiteWeek(20, {"courtoisie": 3}), history, floor=FLOOR)
    assert triple.trend == "hausse"


def test_a_busier_week_is_not_a_rise_of_its_complaints():
    """Twice the answers and twice the complaints: the same rate, stable."""
    history = [SiteWeek(100, {"delais": 10})] * 4
    (delais,) = top_irritants(SiteWeek(200, {"delais": 20}), history, floor=FLOOR)
    assert delais.previous_mean == 10 and delais.count == 20
    assert delais.trend == "stable"


def test_weeks_without_answers_leave_the_mean_and_the_pool():
    history = [SiteWeek(40, {"delais": 2}), SiteWeek(0, {}), SiteWeek(40, {"delais": 4}),
               SiteWeek(0, {})]  # fmt: skip
    (delais,) = top_irritants(SiteWeek(40, {"delais": 3}), history, floor=FLOOR)
    assert delais.previous_mean == 3.0
    assert delais.change is not None and abs(delais.change.difference - 0.0) < 1e-9


def test_the_history_is_the_four_weeks_before_the_monday():
    monday = date(2026, 11, 16)
    weeks = {monday - timedelta(weeks=k): SiteWeek(50, {"delais": 1}) for k in range(1, 5)}
    weeks[monday - timedelta(weeks=5)] = SiteWeek(50, {"delais": 50})  # too old: not counted
    weeks[monday] = SiteWeek(50, {"delais": 12})
    (delais,) = weekly_top_irritants(weeks, monday, floor=FLOOR)
    assert delais.previous_mean == 1.0 and delais.trend == "hausse"
    assert weekly_top_irritants(weeks, monday + timedelta(weeks=1), floor=FLOOR) is None
