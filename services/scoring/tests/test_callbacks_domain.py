"""Call-backs that close, and the per-network detractor rule: the pure counting (issue #15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scoring.domain import (
    AlertState,
    DetractorRule,
    DetractorRules,
    callback_week,
    completion_problem,
    detractor_reasons,
    detractor_rule_of,
    open_age_days,
    overdue,
)

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 16, 9, tzinfo=UTC)  # Monday of 2026-W47


def test_a_weeks_callbacks_are_counted_by_delay_outcome_and_still_open() -> None:
    alerts = [
        AlertState(T0, T0 + timedelta(hours=2), "rappele_resolu"),
        AlertState(T0, T0 + timedelta(hours=48), "injoignable"),  # 48 h exactly: within
        AlertState(T0, T0 + timedelta(hours=49), "refus"),
        AlertState(T0, T0 + timedelta(days=7), "rappele_resolu"),  # 7 days exactly: within
        AlertState(T0, T0 + timedelta(days=7, seconds=1), "rappele_sans_solution"),
        AlertState(T0),
        AlertState(T0, T0 + timedelta(days=30), "refus"),  # after as_of: not yet happened
    ]
    week = callback_week(alerts, as_of=T0 + timedelta(days=10))
    assert (week.raised, week.handled, week.open) == (7, 5, 2)
    assert (week.handled_within_48h, week.handled_within_7d) == (2, 4)
    assert week.outcomes == {
        "rappele_resolu": 2, "injoignable": 1, "refus": 1, "rappele_sans_solution": 1,
    }  # fmt: skip


def test_a_week_without_alerts_counts_nothing() -> None:
    week = callback_week([], as_of=T0)
    assert (week.raised, week.handled, week.open, week.outcomes) == (0, 0, 0, {})


def test_an_open_alerts_age_is_whole_days_and_overdue_past_the_threshold() -> None:
    assert open_age_days(T0, T0 + timedelta(hours=23)) == 0
    assert open_age_days(T0, T0 + timedelta(days=3, hours=1)) == 3
    assert open_age_days(T0, T0 - timedelta(minutes=1)) == 0  # a clock behind: never negative
    assert not overdue(T0, T0 + timedelta(days=7), threshold_days=7)
    assert overdue(T0, T0 + timedelta(days=7, seconds=1), threshold_days=7)


def test_a_completion_is_refused_for_another_site_or_long_before_its_alert() -> None:
    ok = dict(raised_at=T0, site_id="s1", alert_site_id="s1")
    assert completion_problem(completed_at=T0 + timedelta(hours=1), **ok) is None  # type: ignore[arg-type]
    assert completion_problem(completed_at=T0 - timedelta(minutes=2), **ok) is None  # type: ignore[arg-type]
    assert "before" in str(completion_problem(completed_at=T0 - timedelta(hours=1), **ok))  # type: ignore[arg-type]
    wrong = completion_problem(raised_at=T0, completed_at=T0, site_id="s2", alert_site_id="s1")
    assert wrong is not None and "site s1" in wrong


def test_each_network_has_its_own_detractor_rule_else_the_default() -> None:
    rules = DetractorRules(by_network={"msa": detractor_rule_of({"max_recommendation": 4})})
    answers = {"recommandation": 5}
    assert detractor_reasons(answers, rules("msa")) == []
    assert [r.value for r in detractor_reasons(answers, rules("urssaf"))] == ["low_recommendation"]
    assert rules("urssaf") == DetractorRule()


@pytest.mark.parametrize(
    "stored",
    [
        {"max_recommendation": 11},
        {"max_recommendation": "6"},
        {"max_satisfaction": True},
        {"repeat_with_suggestion": "yes"},
        {"agent": "Dupont"},
    ],
)
def test_a_stored_rule_out_of_range_or_with_unknown_keys_is_refused(stored: dict) -> None:
    with pytest.raises(ValueError):
        detractor_rule_of(stored)


def test_a_rule_may_switch_a_reason_off() -> None:
    rule = detractor_rule_of(
        {"max_recommendation": -1, "max_satisfaction": 0, "repeat_with_suggestion": False}
    )
    answers = {"recommandation": 0, "satisfaction_globale": 1, "plusieurs_contacts": "oui",
               "suggestion": "Trop long."}  # fmt: skip
    assert detractor_reasons(answers, rule) == []
