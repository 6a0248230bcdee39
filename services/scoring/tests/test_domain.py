"""Unit tests of the scoring formulas: hand-computed cases, then a brute-force recomputation."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring.domain import (
    RESPONSES_ITEM,
    ContactSeen,
    DetractorRule,
    Period,
    Tally,
    alert_answers,
    classify_contacts,
    consents_to_call_back,
    contact_distributions,
    detractor_reasons,
    figures,
    free_text_items,
    mean_interval,
    merge,
    nps_interval,
    observed_fcr,
    period_figures,
    periods,
    student_t_quantile,
    tally_rows,
    wilson_interval,
)

from contracts.events import DetractorReason, IndicatorFigure
from contracts.questionnaire import Questionnaire, load

pytestmark = pytest.mark.unit

Z = 1.959963984540054
QUESTIONNAIRE = load("urssaf-chaud-2024-v1")
THEMES = [item.id for item in QUESTIONNAIRE.items if item.group == "themes"]


def tally_of(responses: list[Mapping[str, int | str]]) -> dict[str, dict[str, int]]:
    """The tally the service would build: +1 per row of each response, summed."""
    per_response: list[Tally] = []
    for answers in responses:
        one: dict[str, dict[str, int]] = {}
        for item_id, value in tally_rows(answers):
            one.setdefault(item_id, {})[value] = one.get(item_id, {}).get(value, 0) + 1
        per_response.append(one)
    return merge(per_response)


def by_id(result: list[IndicatorFigure]) -> dict[str, IndicatorFigure]:
    return {figure.indicator: figure for figure in result}


def compute(
    responses: list[Mapping[str, int | str]], invitations: int = 0
) -> dict[str, IndicatorFigure]:
    return by_id(figures(tally_of(responses), invitations=invitations, questionnaire=QUESTIONNAIRE))


# --------------------------------------------------------------------------- tallies


def test_tally_rows_counts_the_response_and_each_answer_as_text() -> None:
    rows = tally_rows({"recommandation": 9, "plusieurs_contacts": "non"})
    assert sorted(rows) == [
        (RESPONSES_ITEM, "1"),
        ("plusieurs_contacts", "non"),
        ("recommandation", "9"),
    ]


ITEMS_AND_MARKERS = ["recommandation", "effort", "suggestion", "canal", "theme_delais",
                     RESPONSES_ITEM, "__version__"]  # fmt: skip


@given(
    answers=st.dictionaries(
        st.sampled_from(ITEMS_AND_MARKERS),
        st.one_of(st.integers(min_value=-3, max_value=12), st.text(max_size=8)),
    ),
    version=st.one_of(st.none(), st.just("urssaf-chaud-2024-v1")),
)
def test_a_response_counts_once_whatever_its_answers_are_called(answers, version) -> None:
    """Each answer as text, free text only as present, and the response counted once with its
    version: an answer under the count's or the version's own id (hostile, no questionnaire
    has it) changes neither."""
    from scoring import domain

    expected = {RESPONSES_ITEM: "1"} | ({"__version__": version} if version else {})
    for item, value in answers.items():
        if item in (RESPONSES_ITEM, "__version__"):
            continue
        if item == "suggestion":
            if str(value).strip():
                expected[item] = "present"
        else:
            expected[item] = str(value)
    cells = domain.tally_cells(answers, version=version)
    assert cells == expected and next(iter(cells)) == RESPONSES_ITEM
    assert tally_rows(answers, version=version) == list(cells.items())


def test_free_text_is_never_tallied_only_its_presence() -> None:
    assert ("suggestion", "present") in tally_rows({"suggestion": "Plus d'horaires le samedi"})
    assert tally_rows({"suggestion": "   "}) == [(RESPONSES_ITEM, "1")]
    assert tally_rows({"remarque": "texte"}, free_text={"remarque"}) == [
        (RESPONSES_ITEM, "1"),
        ("remarque", "present"),
    ]
    assert free_text_items(QUESTIONNAIRE) == {"suggestion"}


def test_merge_is_an_additive_sum() -> None:
    merged = merge([{"a": {"1": 2}}, {"a": {"1": 3, "2": 1}, "b": {"x": 1}}, {}])
    assert merged == {"a": {"1": 5, "2": 1}, "b": {"x": 1}}


# --------------------------------------------------------------------------- periods


def period_map(as_of: date) -> dict[str, Period]:
    return {period.id: period for period in periods(as_of)}


def test_iso_week_across_a_year_boundary() -> None:
    found = period_map(date(2026, 1, 1))  # Thursday of ISO week 2026-W01
    assert (found["iso_week"].start, found["iso_week"].end) == (
        date(2025, 12, 29),
        date(2026, 1, 4),
    )
    assert (found["previous_iso_week"].start, found["previous_iso_week"].end) == (
        date(2025, 12, 22),
        date(2025, 12, 28),
    )
    assert (found["month"].start, found["month"].end) == (date(2026, 1, 1), date(2026, 1, 31))
    assert (found["previous_month"].start, found["previous_month"].end) == (
        date(2025, 12, 1),
        date(2025, 12, 31),
    )
    assert (found["year_to_date"].start, found["year_to_date"].end) == (
        date(2026, 1, 1),
        date(2026, 1, 1),
    )


def test_february_of_a_leap_year() -> None:
    assert period_map(date(2024, 2, 15))["month"].end == date(2024, 2, 29)
    previous = period_map(date(2024, 3, 10))["previous_month"]
    assert (previous.start, previous.end) == (date(2024, 2, 1), date(2024, 2, 29))
    assert period_map(date(2023, 2, 1))["month"].end == date(2023, 2, 28)


def test_rolling_windows() -> None:
    found = period_map(date(2025, 6, 30))
    assert found["rolling_30d"] == Period("rolling_30d", date(2025, 6, 1), date(2025, 6, 30))
    assert found["rolling_90d"].days == 90 and found["rolling_90d"].end == date(2025, 6, 30)
    assert found["previous_rolling_90d"].days == 90
    assert found["previous_rolling_90d"].end == found["rolling_90d"].start - timedelta(days=1)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_periods_are_consistent_for_any_day(as_of: date) -> None:
    found = period_map(as_of)
    assert list(found) == [
        "iso_week", "previous_iso_week", "month", "previous_month",
        "rolling_30d", "rolling_90d", "previous_rolling_90d", "year_to_date",
    ]  # fmt: skip
    for period_id in ("iso_week", "month", "rolling_30d", "rolling_90d", "year_to_date"):
        assert found[period_id].contains(as_of)
    week = found["iso_week"]
    assert week.start.isoweekday() == 1 and week.days == 7
    assert week.start.isocalendar()[:2] == as_of.isocalendar()[:2]
    assert found["previous_iso_week"].end == week.start - timedelta(days=1)
    month = found["month"]
    assert month.start.day == 1 and (month.end + timedelta(days=1)).day == 1
    assert found["previous_month"].end == month.start - timedelta(days=1)
    assert found["rolling_30d"].days == 30


# --------------------------------------------------------------------------- statistics


def test_student_t_quantiles_match_the_tables() -> None:
    table = {1: 12.706, 2: 4.303, 5: 2.571, 10: 2.228, 30: 2.042, 100: 1.984}
    for df, expected in table.items():
        assert student_t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)
    # More digits (R: qt(0.975, df)), and the normal limit.
    assert student_t_quantile(0.975, 1) == pytest.approx(12.7062047361747, rel=1e-9)
    assert student_t_quantile(0.975, 4) == pytest.approx(2.77644510519779, rel=1e-9)
    assert student_t_quantile(0.975, 1000) == pytest.approx(1.96233908082641, rel=1e-9)
    assert student_t_quantile(0.975, 10**6) == pytest.approx(Z, rel=1e-5)
    assert student_t_quantile(0.995, 1) == pytest.approx(63.6567411628715, rel=1e-9)
    assert student_t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-9)


def test_student_t_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        student_t_quantile(0.975, 0)
    with pytest.raises(ValueError):
        student_t_quantile(1.0, 3)


@given(st.integers(min_value=1, max_value=5000))
def test_student_t_is_above_normal_and_decreasing(df: int) -> None:
    assert Z < student_t_quantile(0.975, df + 1) < student_t_quantile(0.975, df)


def test_wilson_hand_cases() -> None:
    # 8/10: p = 0.8, z² = 3.8415, 1 + z²/n = 1.38415
    # centre = (0.8 + 0.19207) / 1.38415 = 0.71674
    # half   = 1.95996 / 1.38415 · sqrt(0.016 + 0.0096037) = 1.41600 · 0.16001 = 0.22658
    interval = wilson_interval(8, 10)
    assert interval is not None and interval.method == "wilson"
    assert (interval.low, interval.high) == (
        pytest.approx(49.02, abs=0.01),
        pytest.approx(94.33, abs=0.01),
    )
    # 0/10: centre = half = 0.13876, so the interval is [0, 27.75], not the degenerate [0, 0].
    zero = wilson_interval(0, 10)
    assert zero is not None
    assert (zero.low, zero.high) == (pytest.approx(0.0, abs=1e-9), pytest.approx(27.75, abs=0.01))
    full = wilson_interval(10, 10)
    assert (
        full is not None
        and full.high == pytest.approx(100.0)
        and full.low == pytest.approx(72.25, abs=0.01)
    )
    assert wilson_interval(0, 0) is None


@given(st.integers(min_value=1, max_value=10_000), st.data())
def test_wilson_contains_the_share_and_stays_in_range(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=0, max_value=n))
    interval = wilson_interval(k, n)
    assert interval is not None
    assert 0 <= interval.low <= k / n * 100 + 1e-9
    assert k / n * 100 - 1e-9 <= interval.high <= 100


def test_nps_adjusted_wald_hand_case() -> None:
    # P = 5, D = 3, n = 10 -> n' = 13, p' = 5.75/13 = 0.442308, d' = 3.75/13 = 0.288462
    # nps' = 2/13 = 0.153846; var = (9.5/13 - (2/13)²) / 13 = (0.730769 - 0.023669) / 13
    #      = 0.054392; z·sqrt(var) = 1.959964 · 0.233222 = 0.457106
    # interval = (0.153846 ∓ 0.457106) · 100 = (-30.33, 61.10)
    interval = nps_interval(5, 3, 10)
    assert interval is not None and interval.method == "adjusted_wald"
    half = Z * math.sqrt((9.5 / 13 - (2 / 13) ** 2) / 13)
    assert interval.low == pytest.approx((2 / 13 - half) * 100)
    assert interval.high == pytest.approx((2 / 13 + half) * 100)
    assert (interval.low, interval.high) == (
        pytest.approx(-30.33, abs=0.01),
        pytest.approx(61.10, abs=0.01),
    )
    assert nps_interval(0, 0, 0) is None


def test_mean_interval_hand_case() -> None:
    # [8, 9, 10, 7, 6]: mean 8, s² = (0 + 1 + 4 + 1 + 4) / 4 = 2.5, se = sqrt(2.5 / 5) = 0.70711
    # t(0.975, 4) = 2.776445 -> half = 1.963243 -> (6.036757, 9.963243)
    mean, interval = mean_interval({6: 1, 7: 1, 8: 1, 9: 1, 10: 1}, bounds=(1, 10))
    assert mean == 8
    assert interval is not None and interval.method == "student_t"
    assert (interval.low, interval.high) == (
        pytest.approx(6.036757, abs=1e-6),
        pytest.approx(9.963243, abs=1e-6),
    )
    assert mean_interval({}) == (None, None)
    assert mean_interval({7: 1}) == (7, None)  # one answer: a mean, no interval
    # Two answers spread widely: t(1) = 12.7 would leave the 1..10 scale; the scale clamps it.
    _, wide = mean_interval({1: 1, 10: 1}, bounds=(1, 10))
    assert wide is not None and (wide.low, wide.high) == (1, 10)


# --------------------------------------------------------------------------- indicators


def test_figures_hand_computed_table() -> None:
    recommendations = [10, 10, 9, 8, 7, 6, 5, 0, 9, 10]
    efforts = [7, 6, 5, 5, 4, 3, 7, 1, None, None]  # two skipped the item
    satisfactions = [8, 9, 10, 7, 6, 8, 9, 10, 3, 2]
    several = ["non", "non", "oui", "non", None, "non", "oui", "non", "non", "non"]
    responses: list[Mapping[str, int | str]] = []
    for rec, eff, sat, sev in zip(recommendations, efforts, satisfactions, several, strict=True):
        answers: dict[str, int | str] = {"recommandation": rec, "satisfaction_globale": sat}
        if eff is not None:
            answers["effort"] = eff
        if sev is not None:
            answers["plusieurs_contacts"] = sev
        responses.append(answers)
    result = compute(responses, invitations=40)

    nps = result["nps"]
    assert (nps.value, nps.unit, nps.sample_size) == (20.0, "score", 10)
    assert nps.counts == {"promoters": 5, "passives": 2, "detractors": 3}
    assert nps.interval is not None
    assert (nps.interval.low, nps.interval.high) == (
        pytest.approx(-30.33, abs=0.01),
        pytest.approx(61.10, abs=0.01),
    )
    assert nps.label == "Recommandation (NPS)"

    ces = result["ces"]  # 5 of the 8 who answered agree (7, 6, 5, 5, 7)
    assert (ces.value, ces.unit, ces.sample_size) == (62.5, "percent", 8)
    assert ces.counts == {"agree": 5, "total": 8}
    assert ces.label == "Effort (part d'accord)"
    ces_mean = result["ces_mean"]  # (7+6+5+5+4+3+7+1)/8 = 38/8
    assert (ces_mean.value, ces_mean.unit, ces_mean.sample_size) == (4.75, "mean_1_7", 8)
    assert ces_mean.interval is not None and ces_mean.interval.method == "student_t"

    fcr = result["fcr_declared"]  # 7 "non" of 9 answers
    assert fcr.value == pytest.approx(700 / 9) and fcr.sample_size == 9
    assert fcr.counts == {"non": 7, "oui": 2, "total": 9}
    assert fcr.label == "Résolution dès le premier contact (déclarée)"

    satisfaction = result["satisfaction"]  # 8, 9, 10, 8, 9, 10 -> 6 of 10
    assert (satisfaction.value, satisfaction.sample_size) == (60.0, 10)
    assert satisfaction.label == "Satisfaction globale (8 à 10 sur 10)"
    assert result["satisfaction_mean"].value == pytest.approx(7.2)
    assert result["satisfaction_mean"].unit == "mean_1_10"

    rate = result["response_rate"]
    assert (rate.value, rate.sample_size, rate.label) == (25.0, 40, "Taux de réponse")
    assert rate.counts == {"responses": 10, "invitations": 40}


def test_indicator_ids_for_the_reference_questionnaire() -> None:
    ids = [figure.indicator for figure in figures({}, invitations=0, questionnaire=QUESTIONNAIRE)]
    themes = [name for theme in THEMES for name in (theme, f"{theme}_share")]
    assert ids == [
        "nps", "ces", "ces_mean", "fcr_declared", "satisfaction", "satisfaction_mean",
        *themes, "response_rate",
    ]  # fmt: skip


def test_no_answers_gives_no_values() -> None:
    for figure in figures({}, invitations=0, questionnaire=QUESTIONNAIRE):
        assert figure.value is None and figure.interval is None and figure.sample_size == 0


def test_all_promoters() -> None:
    # n' = 13, p' = 10.75/13, d' = 0.75/13, nps' = 0.769231, z·sqrt(var) = 0.294195
    # -> (47.50, 106.34), clamped at 100.
    nps = compute([{"recommandation": 10}] * 10)["nps"]
    assert nps.value == 100.0
    assert nps.interval is not None
    assert nps.interval.low == pytest.approx(47.50, abs=0.01)
    assert nps.interval.high == 100.0


def test_one_answer() -> None:
    result = compute([{"recommandation": 10, "satisfaction_globale": 9, "effort": 6}])
    # n' = 4, p' = 0.4375, d' = 0.1875, var = (0.625 - 0.0625)/4 = 0.140625 -> ± 0.734986
    nps = result["nps"]
    assert nps.value == 100.0 and nps.interval is not None
    assert (nps.interval.low, nps.interval.high) == (
        pytest.approx(-48.50, abs=0.01),
        pytest.approx(98.50, abs=0.01),
    )
    mean = result["satisfaction_mean"]
    assert (mean.value, mean.sample_size, mean.interval) == (9.0, 1, None)
    assert result["satisfaction"].interval is not None  # Wilson exists from n = 1


def test_a_skipped_item_is_not_in_the_denominator() -> None:
    result = compute([
        {"recommandation": 10, "theme_clarte": 9},
        {"recommandation": 3},
        {"recommandation": 8, "theme_clarte": 4},
    ])  # fmt: skip
    assert result["nps"].sample_size == 3
    assert result["theme_clarte"].sample_size == 2
    assert result["theme_clarte"].value == 6.5
    assert result["theme_clarte_share"].value == 50.0
    assert result["theme_clarte"].label == "Clarté de la réponse (moyenne sur 10)"
    assert result["theme_clarte_share"].label == "Clarté de la réponse (8 à 10 sur 10)"
    assert result["theme_courtoisie"].value is None and result["theme_courtoisie"].sample_size == 0
    assert result["ces"].value is None


def test_response_rate_edges() -> None:
    assert compute([{"recommandation": 9}] * 3, invitations=0)["response_rate"].value is None
    # Responses to invitations scoring has not seen yet wait for them: never above 100 %, and
    # the denominator stays the invitations (issue #18: no max(invitations, responses)).
    ahead = compute([{"recommandation": 9}] * 12, invitations=10)["response_rate"]
    assert (ahead.value, ahead.sample_size) == (100.0, 10)


def test_items_the_questionnaire_dropped_are_left_out() -> None:
    kept = tuple(item for item in QUESTIONNAIRE.items if item.id not in {"effort", "theme_delais"})
    smaller = Questionnaire(version="v2", title="t", intro="i", items=kept)
    ids = {figure.indicator for figure in figures({}, invitations=0, questionnaire=smaller)}
    assert {"ces", "ces_mean", "theme_delais", "theme_delais_share"}.isdisjoint(ids)
    assert {"nps", "satisfaction", "theme_clarte", "response_rate"} <= ids


def test_observed_fcr() -> None:
    final = observed_fcr(8, 2, 0)
    assert (final.indicator, final.value, final.sample_size, final.provisional) == (
        "fcr_observed", 80.0, 10, False,
    )  # fmt: skip
    assert final.counts == {"resolved": 8, "repeated": 2, "pending": 0}
    assert final.interval is not None and final.interval.low == pytest.approx(49.02, abs=0.01)
    assert observed_fcr(8, 2, 3).provisional
    empty = observed_fcr(0, 0, 4)
    assert empty.value is None and empty.interval is None and empty.provisional


def test_period_figures() -> None:
    period = Period("month", date(2025, 3, 1), date(2025, 3, 31))
    tally = tally_of([{"recommandation": 10}])
    result = period_figures(
        period, tally, invitations=2, questionnaire=QUESTIONNAIRE, fcr=(1, 1, 0)
    )
    assert (result.period, result.start, result.end) == (
        "month",
        date(2025, 3, 1),
        date(2025, 3, 31),
    )
    assert result.figures[-1].indicator == "fcr_observed"
    without = period_figures(period, tally, invitations=2, questionnaire=QUESTIONNAIRE)
    assert "fcr_observed" not in {figure.indicator for figure in without.figures}


# --------------------------------------------------------------------------- brute force


def scale(low: int, high: int) -> st.SearchStrategy[int | None]:
    return st.none() | st.integers(min_value=low, max_value=high)


@st.composite
def answer_dicts(draw: st.DrawFn) -> dict[str, int | str]:
    drawn: dict[str, int | str | None] = {
        "recommandation": draw(scale(0, 10)),
        "satisfaction_globale": draw(scale(1, 10)),
        "effort": draw(scale(1, 7)),
        "plusieurs_contacts": draw(st.none() | st.sampled_from(["oui", "non"])),
        "canal": draw(st.none() | st.sampled_from(["telephone", "courriel"])),
        "suggestion": draw(st.none() | st.text(max_size=20)),
    }
    for theme in THEMES:
        drawn[theme] = draw(scale(1, 10))
    return {key: value for key, value in drawn.items() if value is not None}


def ratings_of(responses: list[dict[str, int | str]], item_id: str) -> list[int]:
    return [int(answers[item_id]) for answers in responses if item_id in answers]


def assert_mean_figure(figure: IndicatorFigure, values: list[int], high: int) -> None:
    assert figure.sample_size == len(values)
    if not values:
        assert figure.value is None
        return
    assert figure.value == pytest.approx(statistics.fmean(values))
    if len(values) == 1:
        assert figure.interval is None
        return
    half = (
        student_t_quantile(0.975, len(values) - 1)
        * statistics.stdev(values)
        / math.sqrt(len(values))
    )
    mean = statistics.fmean(values)
    assert figure.interval is not None
    assert figure.interval.low == pytest.approx(max(mean - half, 1), abs=1e-9)  # scales start at 1
    assert figure.interval.high == pytest.approx(min(mean + half, high), abs=1e-9)


def assert_share_figure(figure: IndicatorFigure, values: list[int], keep: int) -> None:
    assert figure.sample_size == len(values)
    if not values:
        assert figure.value is None and figure.interval is None
        return
    assert figure.value == pytest.approx(keep / len(values) * 100)
    assert figure.interval == wilson_interval(keep, len(values))
    assert figure.interval is not None and figure.value is not None
    assert figure.interval.low - 1e-9 <= figure.value <= figure.interval.high + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(answer_dicts(), max_size=40), st.integers(min_value=0, max_value=60))
def test_figures_equal_a_brute_force_recomputation(
    responses: list[dict[str, int | str]], invitations: int
) -> None:
    result = compute(list(responses), invitations=invitations)

    recommendations = ratings_of(responses, "recommandation")
    promoters = sum(1 for value in recommendations if value >= 9)
    detractors = sum(1 for value in recommendations if value <= 6)
    nps = result["nps"]
    assert nps.sample_size == len(recommendations)
    assert nps.counts == {
        "promoters": promoters,
        "passives": len(recommendations) - promoters - detractors,
        "detractors": detractors,
    }
    if recommendations:
        assert nps.value == pytest.approx((promoters - detractors) / len(recommendations) * 100)
        assert nps.interval is not None and -100 <= nps.interval.low <= nps.interval.high <= 100
    else:
        assert nps.value is None

    efforts = ratings_of(responses, "effort")
    assert_share_figure(result["ces"], efforts, sum(1 for value in efforts if value >= 5))
    assert_mean_figure(result["ces_mean"], efforts, 7)

    satisfactions = ratings_of(responses, "satisfaction_globale")
    assert_share_figure(
        result["satisfaction"], satisfactions, sum(1 for v in satisfactions if v >= 8)
    )
    assert_mean_figure(result["satisfaction_mean"], satisfactions, 10)

    for theme in THEMES:
        values = ratings_of(responses, theme)
        assert_mean_figure(result[theme], values, 10)
        assert_share_figure(result[f"{theme}_share"], values, sum(1 for v in values if v >= 8))

    several = [
        answers["plusieurs_contacts"] for answers in responses if "plusieurs_contacts" in answers
    ]
    fcr = result["fcr_declared"]
    assert fcr.sample_size == len(several)
    if several:
        assert fcr.value == pytest.approx(several.count("non") / len(several) * 100)
    else:
        assert fcr.value is None

    rate = result["response_rate"]
    if invitations == 0:
        assert rate.value is None
    else:
        # Issue #18: the invitations' cohort, at most one answer per invitation (no max()).
        assert rate.sample_size == invitations
        assert rate.value == pytest.approx(min(invitations, len(responses)) / invitations * 100)


@given(st.lists(answer_dicts(), max_size=30), st.integers(min_value=0, max_value=30))
def test_tallies_are_additive_across_any_split(
    responses: list[dict[str, int | str]], cut: int
) -> None:
    whole = tally_of(list(responses))
    assert merge([tally_of(list(responses[:cut])), tally_of(list(responses[cut:]))]) == whole


# --------------------------------------------------------------------------- réitération

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def contact(
    contact_id: str, days: float, *, user: str = "u1", motif: str = "cotisations"
) -> ContactSeen:
    return ContactSeen(contact_id, user, motif, T0 + timedelta(days=days))


def test_classify_contacts_hand_cases() -> None:
    contacts = [
        contact("a1", 0), contact("a2", 7),                      # a2 exactly 7 days later
        contact("b1", 0, user="u2"), contact("b2", 8, user="u2"),  # 8 days later: too late
        contact("c1", 0, user="u3"), contact("c2", 3, user="u3", motif="retraite"),
        contact("d1", 40, user="u4"),                             # window not yet passed
    ]  # fmt: skip
    status = classify_contacts(contacts, window_days=7, as_of=T0 + timedelta(days=45))
    assert status == {
        "a1": "repeated", "a2": "resolved",
        "b1": "resolved", "b2": "resolved",
        "c1": "resolved", "c2": "resolved",
        "d1": "pending",
    }  # fmt: skip


def test_the_site_is_not_part_of_the_key_and_the_window_is_configurable() -> None:
    # ContactSeen carries no site: a repeat at another site is a repeat.
    contacts = [contact("x", 0), contact("y", 10)]
    assert (
        classify_contacts(contacts, window_days=7, as_of=T0 + timedelta(days=30))["x"] == "resolved"
    )
    assert (
        classify_contacts(contacts, window_days=14, as_of=T0 + timedelta(days=30))["x"]
        == "repeated"
    )


def test_a_contact_is_pending_until_its_window_passes_then_resolved() -> None:
    contacts = [contact("p", 0)]
    assert (
        classify_contacts(contacts, window_days=7, as_of=T0 + timedelta(days=6))["p"] == "pending"
    )
    assert (
        classify_contacts(contacts, window_days=7, as_of=T0 + timedelta(days=7))["p"] == "resolved"
    )
    # A repeat is known as soon as it is seen, before the window passes.
    early = classify_contacts(
        [contact("p", 0), contact("q", 1)], window_days=7, as_of=T0 + timedelta(days=1)
    )
    assert early == {"p": "repeated", "q": "pending"}


def test_simultaneous_and_duplicate_contacts_are_not_repeats() -> None:
    same_time = [contact("s1", 0), contact("s2", 0)]
    assert set(
        classify_contacts(same_time, window_days=7, as_of=T0 + timedelta(days=8)).values()
    ) == {"resolved"}
    replayed = [contact("r", 0), contact("r", 0)]
    assert classify_contacts(replayed, window_days=7, as_of=T0 + timedelta(days=8)) == {
        "r": "resolved"
    }


@given(
    st.lists(
        st.tuples(st.sampled_from(["u1", "u2"]), st.sampled_from(["m1", "m2"]), st.integers(0, 30)),
        max_size=25,
    ),
    st.integers(min_value=0, max_value=40),
)
def test_classify_contacts_equals_brute_force(
    rows: list[tuple[str, str, int]], as_of_day: int
) -> None:
    contacts = [
        contact(f"c{i}", day, user=user, motif=motif) for i, (user, motif, day) in enumerate(rows)
    ]
    as_of = T0 + timedelta(days=as_of_day)
    status = classify_contacts(contacts, window_days=7, as_of=as_of)
    for one in contacts:
        repeated = any(
            other.user == one.user
            and other.motif == one.motif
            and one.closed_at < other.closed_at <= one.closed_at + timedelta(days=7)
            for other in contacts
        )
        expected = (
            "repeated"
            if repeated
            else "resolved"
            if as_of >= one.closed_at + timedelta(days=7)
            else "pending"
        )
        assert status[one.contact_id] == expected


def test_contact_distributions() -> None:
    contacts = [
        contact("1", 0), contact("2", 1), contact("2", 1),  # the duplicate counts once
        contact("3", 2, user="u2", motif="retraite"),
        *[contact(f"many{i}", i, user="u3") for i in range(6)],
    ]  # fmt: skip
    assert contact_distributions(contacts) == {
        "by_motif": {"cotisations": 8, "retraite": 1},
        "users_by_contact_count": {"1": 1, "2": 1, "3": 0, "4": 0, "5+": 1},
    }


# --------------------------------------------------------------------------- detractor alerts


def test_detractor_reasons() -> None:
    assert detractor_reasons({"recommandation": 6, "satisfaction_globale": 8}) == [
        DetractorReason.LOW_RECOMMENDATION
    ]
    assert detractor_reasons({"recommandation": 7, "satisfaction_globale": 5}) == []
    assert detractor_reasons({"recommandation": 0, "satisfaction_globale": 4}) == [
        DetractorReason.LOW_RECOMMENDATION,
        DetractorReason.LOW_SATISFACTION,
    ]
    repeat = {"recommandation": 9, "plusieurs_contacts": "oui", "suggestion": "Rappelez-moi"}
    assert detractor_reasons(repeat) == [DetractorReason.REPEAT_CONTACT_WITH_SUGGESTION]
    assert detractor_reasons({**repeat, "suggestion": "  "}) == []
    assert detractor_reasons({**repeat, "plusieurs_contacts": "non"}) == []
    assert detractor_reasons({}) == []  # skipped items raise nothing


def test_detractor_rule_is_configurable() -> None:
    strict = DetractorRule(max_recommendation=4, max_satisfaction=2, repeat_with_suggestion=False)
    answers = {
        "recommandation": 5,
        "satisfaction_globale": 3,
        "plusieurs_contacts": "oui",
        "suggestion": "x",
    }
    assert detractor_reasons(answers, strict) == []
    assert detractor_reasons({"recommandation": 4, "satisfaction_globale": 2}, strict) == [
        DetractorReason.LOW_RECOMMENDATION,
        DetractorReason.LOW_SATISFACTION,
    ]


def test_only_a_user_who_said_oui_to_recontact_may_be_called_back() -> None:
    low = {"recommandation": 0}
    assert detractor_reasons(low)  # a detractor all the same ...
    assert not consents_to_call_back(low)  # ... but nobody asked to be called back
    assert not consents_to_call_back({**low, "recontact": "non"})
    assert consents_to_call_back({**low, "recontact": "oui"})


def test_an_alert_keeps_ratings_and_choice_codes_only() -> None:
    answers: dict[str, int | str] = {
        "recommandation": 2, "plusieurs_contacts": "oui", "recontact": "oui",
        "suggestion": "code", "nature_demande": "texte libre égaré", "effort": 3,
    }  # fmt: skip
    assert alert_answers(answers) == {
        "recommandation": 2, "plusieurs_contacts": "oui", "recontact": "oui", "effort": 3,
    }  # fmt: skip
