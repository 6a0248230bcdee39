"""The one rounding and the change-vs-noise rule (contracts.figures), against published examples."""

from decimal import Decimal

import pytest

from contracts import figures
from contracts.figures import (
    STABLE_TEXT,
    compare,
    french_number,
    newcombe_difference,
    nps_difference,
    round_half_away,
    t_quantile_975,
    welch_difference,
)

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------- rounding


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (42.5, 0, "43"),  # half to even would give 42
        (47.5, 0, "48"),
        (62.5, 0, "63"),  # half to even would give 62
        (0.5, 0, "1"),
        (1.5, 0, "2"),
        (2.5, 0, "3"),
        (-2.5, 0, "-3"),  # away from zero, not up
        (-42.5, 0, "-43"),
        (2.675, 2, "2.68"),  # binary 2.67499999999999982...: round(2.675, 2) is 2.67
        (1.005, 2, "1.01"),  # binary 1.00499999999999989...
        (0.125, 2, "0.13"),
        (8.25, 1, "8.3"),
        (8.35, 1, "8.4"),  # binary 8.3499999999999996...
        (17 / 40 * 100, 0, "43"),  # computes as 42.49999999999999
        (7 / 8 * 100 - 50, 0, "38"),  # 37.5
        (-0.4, 0, "0"),  # no « −0 »
        (42.4999, 0, "42"),
    ],
)
def test_rounding_is_half_away_from_zero_on_the_decimal_writing(value, decimals, expected):
    assert round_half_away(value, decimals) == Decimal(expected)
    assert str(round_half_away(value, decimals)) == expected


def test_french_number_uses_the_one_rounding_a_comma_and_the_minus_sign():
    assert french_number(42.5, signed=True) == "+43"
    assert french_number(-42.5, signed=True) == "\u221243"
    assert french_number(62.5) == "63"
    assert french_number(8.25, 1) == "8,3"
    assert french_number(-0.4, signed=True) == "0"
    assert french_number(0.0, 1) == "0,0"


def test_rounding_refuses_what_is_not_a_number():
    with pytest.raises(ValueError):
        round_half_away(float("nan"))


# --------------------------------------------------------------------------- intervals


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score, no
# continuity correction), examples (a) to (h), to the 4 decimals published.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_TABLE_II, ids=lambda v: str(v))
def test_share_difference_matches_newcombe_1998_worked_examples(counts, expected):
    low, high = newcombe_difference(*counts)
    assert (round(low, 4), round(high, 4)) == expected


def test_nps_difference_is_the_difference_of_the_adjusted_wald_estimates():
    # Hand computation: period 1, 40 promoters and 10 detractors of 80; period 2, 30 and 20 of 80.
    # n' = 83; s'1 = (40.75 - 10.75)/83, s'2 = (30.75 - 20.75)/83;
    # var = (p' + d' - s'^2)/n' each; half = 1.96 * sqrt(var1 + var2).
    p1, d1, p2, d2 = 40.75 / 83, 10.75 / 83, 30.75 / 83, 20.75 / 83
    s1, s2 = p1 - d1, p2 - d2
    var = (p1 + d1 - s1 * s1) / 83 + (p2 + d2 - s2 * s2) / 83
    half = figures.Z_95 * var**0.5
    low, high = nps_difference(40, 10, 80, 30, 20, 80)
    assert low == pytest.approx(s1 - s2 - half, abs=1e-12)
    assert high == pytest.approx(s1 - s2 + half, abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.0158, 0.4662)  # by hand: 0.24096 ± 0.22520


@pytest.mark.parametrize(
    ("df", "exact"),
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281), (30, 2.0423)],
)
def test_t_quantile_is_within_a_thousandth_of_the_tables(df, exact):
    assert t_quantile_975(df) == pytest.approx(exact, abs=1e-3)


def test_welch_difference_of_two_rating_distributions():
    # 8,8,9,9 (mean 8.5, s² 1/3) vs 6,7,8 (mean 7, s² 1): se² = 1/12 + 1/3 = 5/12,
    # ν = (5/12)² / ((1/12)²/3 + (1/3)²/2) = 2.9605... -> the df = 2 quantile 4.303 (wider).
    low, high = welch_difference({8: 2, 9: 2}, {6: 1, 7: 1, 8: 1})
    half = 4.302652729749464 * (5 / 12) ** 0.5
    assert low == pytest.approx(1.5 - half, abs=1e-6)
    assert high == pytest.approx(1.5 + half, abs=1e-6)
    assert welch_difference({8: 1}, {6: 3}) is None  # one rating: no variance, no verdict


# --------------------------------------------------------------------------- changes


def _share(value_k: int, n: int) -> dict:
    return {"unit": "percent", "value": value_k / n * 100, "sample_size": n, "counts": {}}


def test_the_issue_example_a_five_point_drop_on_45_answers_is_stable():
    # 30/45 (66.7 %) against 32/45 (71.1 %): « en baisse de 4,4 points » was printed before.
    change = compare(_share(30, 45), _share(32, 45))
    assert change is not None and not change.distinguishable
    assert change.text == STABLE_TEXT
    assert change.low < 0 < change.high


def test_a_real_drop_says_by_how_many_points_rounded_half_away():
    change = compare(_share(400, 1000), _share(475, 1000))  # −7.5 points
    assert change is not None and change.distinguishable
    assert change.text == "en baisse de 8 points"
    assert change.as_json()["direction"] == "baisse"
    assert change.as_json()["interval"]["method"] == "newcombe_hybrid_score"


def test_nps_change_uses_counts_and_says_points():
    now = {"unit": "score", "value": 37.5, "sample_size": 80,
           "counts": {"promoters": 40, "passives": 30, "detractors": 10}}  # fmt: skip
    before = {"unit": "score", "value": 12.5, "sample_size": 80,
              "counts": {"promoters": 30, "passives": 30, "detractors": 20}}  # fmt: skip
    change = compare(now, before)
    assert change is not None and change.distinguishable
    assert change.text == "en hausse de 25 points"
    small = compare({**now, "sample_size": 8, "value": 37.5,
                     "counts": {"promoters": 4, "passives": 3, "detractors": 1}},
                    {**before, "sample_size": 8, "value": 12.5,
                     "counts": {"promoters": 3, "passives": 3, "detractors": 2}})  # fmt: skip
    assert small is not None and small.text == STABLE_TEXT


def test_mean_change_speaks_in_tenths_of_a_point():
    now = {"unit": "mean_1_10", "value": 8.5, "sample_size": 200, "counts": {"8": 100, "9": 100}}
    before = {"unit": "mean_1_10", "value": 7.5, "sample_size": 200,
              "counts": {"7": 100, "8": 100}}  # fmt: skip
    change = compare(now, before)
    assert change is not None and change.text == "en hausse de 1,0 point"


def test_no_comparison_without_both_figures():
    assert compare(_share(3, 10), {"unit": "percent", "value": None, "sample_size": 0}) is None
    withheld = {"unit": "score", "value": 10.0, "sample_size": 40, "counts": {}}
    assert compare(withheld, withheld) is None
    assert compare(_share(3, 10), {**_share(3, 10), "unit": "score"}) is None


def test_a_one_promoter_nps_lies_outside_its_own_interval_and_its_centre_inside():
    low, high = -48.5, 98.5  # the adjusted-Wald interval of one promoter out of one
    assert not figures.inside_interval(100.0, low, high)
    assert figures.inside_interval(figures.centre(low, high), low, high)
    assert figures.centre(low, high) == 25.0
