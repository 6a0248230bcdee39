"""Figures built without validating again (issue #14, `domain._figure`) are exactly the models
validation builds: same fields, same types, same fields set, same JSON, for every
questionnaire version and any tally, empty, tiny or large."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from scoring import domain

from contracts import questionnaire
from contracts.events import IndicatorFigure, Interval, PeriodFigures

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 3, 10, tzinfo=UTC)
FORMS = list(questionnaire.load_all().values())


def _validated(figure: IndicatorFigure) -> IndicatorFigure:
    """The same figure through validation, from the fields its builder passed."""
    given: dict[str, Any] = {name: getattr(figure, name) for name in figure.model_fields_set}
    if isinstance(given.get("interval"), Interval):
        interval = given["interval"]
        given["interval"] = Interval(
            **{name: getattr(interval, name) for name in interval.model_fields_set}
        )
    return IndicatorFigure(**given)


def _same(built: IndicatorFigure, validated: IndicatorFigure) -> None:
    assert built == validated
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_fields_set == validated.model_fields_set
    assert [type(v) for v in built.__dict__.values()] == [
        type(v) for v in validated.__dict__.values()
    ]
    assert list(built.__dict__) == list(validated.__dict__)
    if validated.interval is not None:
        assert built.interval is not None
        assert built.interval.model_fields_set == validated.interval.model_fields_set
        assert built.interval.__dict__ == validated.interval.__dict__
        assert [type(v) for v in built.interval.__dict__.values()] == [
            type(v) for v in validated.interval.__dict__.values()
        ]


@pytest.mark.parametrize("form", FORMS, ids=[form.version for form in FORMS])
def test_figures_built_without_validation_equal_validated_figures(form):
    rng = random.Random(form.version)
    for _ in range(200):
        tally: dict[str, dict[str, int]] = {}
        for item in form.items:
            if item.scale_min is not None and item.scale_max is not None and rng.random() < 0.8:
                values = range(item.scale_min, item.scale_max + 1)
                size = rng.choice([1, 2, 5, 400])
                tally[item.id] = {
                    str(v): rng.randint(0, size) for v in values if rng.random() < 0.7
                }
            elif item.options and rng.random() < 0.8:
                tally[item.id] = {o.value: rng.randint(0, 30) for o in item.options}
        tally[domain.RESPONSES_ITEM] = {"1": rng.randint(0, 500)}
        cohort = domain.cohort_of(rng.randint(0, 900), rng.randint(0, 900))
        for figure in domain.figures(tally, invitations=cohort, questionnaire=form, now=NOW):
            _same(figure, _validated(figure))


def test_a_label_validation_would_refuse_is_refused():
    with pytest.raises(ValueError):
        domain._figure("x", "bad\x00label", "percent", value=None, sample_size=0,
                       interval=None, counts={})  # fmt: skip
    with pytest.raises(ValueError):
        domain._figure("x", "ok", "percent", value=None, sample_size=-1, interval=None,
                       counts={})  # fmt: skip
    assert domain._figure("x", "  padded ", "percent", value=None, sample_size=0,
                          interval=None, counts={}).label == "padded"  # fmt: skip


@pytest.mark.parametrize("counts", [(0, 0, 0), (7, 2, 0), (7, 2, 3), (0, 5, 1)])
def test_the_observed_fcr_is_the_validated_figure(counts):
    resolved, repeated, pending = counts
    n = resolved + repeated
    validated = IndicatorFigure(
        indicator="fcr_observed", label="Résolution dès le premier contact (observée)",
        value=resolved / n * 100 if n else None, unit="percent", sample_size=n,
        interval=domain.wilson_interval(resolved, n),
        counts={"resolved": resolved, "repeated": repeated, "pending": pending},
        provisional=pending > 0,
    )  # fmt: skip
    built = domain.observed_fcr(*counts)
    _same(built, validated)
    assert built.provisional is (pending > 0)


def test_a_period_s_figures_are_the_validated_model():
    form = questionnaire.load()
    tally = {domain.RESPONSES_ITEM: {"1": 40}, "recommandation": {"9": 30, "3": 10}}
    open_cohort = domain.cohort_of(50, 40, open_until=NOW.replace(year=2027))
    for period in domain.periods(NOW.date()):
        built = domain.period_figures(period, tally, invitations=open_cohort,
                                      questionnaire=form, fcr=(3, 1, 1), now=NOW)  # fmt: skip
        validated = PeriodFigures(period=period.id, start=period.start, end=period.end,
                                  figures=[_validated(f) for f in built.figures])  # fmt: skip
        assert built == validated
        assert built.model_dump_json() == validated.model_dump_json()
        assert built.model_fields_set == validated.model_fields_set
        assert list(built.__dict__) == list(validated.__dict__)
        rate = next(f for f in built.figures if f.indicator == "response_rate")
        assert rate.provisional and "provisional" in rate.model_fields_set


def test_periods_are_a_fresh_list_each_time():
    """Worked out once a day, but a caller's list is its own."""
    first = domain.periods(NOW.date())
    first.clear()
    assert len(domain.periods(NOW.date())) == 8


def test_each_questionnaire_object_is_read_for_its_own_items():
    """The items `figures` reads are looked up once per questionnaire object, never by its
    version text: a version rebuilt without an item has no indicator for it."""
    form = questionnaire.load()
    without_nps = form.model_copy(
        update={"items": tuple(item for item in form.items if item.id != "recommandation")}
    )
    tally = {domain.RESPONSES_ITEM: {"1": 3}, "recommandation": {"10": 3}}
    for _ in range(2):  # interleaved: neither answer is the other's cached one
        with_it = domain.figures(tally, invitations=3, questionnaire=form)
        without = domain.figures(tally, invitations=3, questionnaire=without_nps)
        assert "nps" in {figure.indicator for figure in with_it}
        assert "nps" not in {figure.indicator for figure in without}
