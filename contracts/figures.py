"""How a figure is told to a person: the one rounding, and the one rule that says whether a change
from a previous period is more than noise. Every output a person reads (the screen, the feed's
texts, the weekly e-mail, the boards) goes through these functions, in every service.

Rounding (`round_half_away`): half away from zero, as French readers expect (42,5 → 43,
47,5 → 48, −2,5 → −3, 62,5 % → 63 %). A float is first written as a decimal with 12 significant
digits, then rounded: 2.675 is the binary 2.67499999999999982236431605997495353221893310546875,
and 17/40·100 computes as 42.49999999999999; both are the decimals 2.675 and 42.5 their authors
meant. Twelve digits are far more than any survey count makes meaningful and far fewer than the
~16 where binary noise starts.

Change from a previous period (`compare`): a change is « distinguishable from noise » when the
95 % interval of the difference (current − previous) excludes 0. The interval depends on the
figure's unit:

- shares (unit `percent`): Newcombe's hybrid score interval (Newcombe 1998, « Interval estimation
  for the difference between independent proportions: comparison of eleven methods », Statistics
  in Medicine 17:873-890, method 10), built from the two Wilson intervals (l₁, u₁), (l₂, u₂):
      low  = d − sqrt((p₁ − l₁)² + (u₂ − p₂)²)
      high = d + sqrt((u₁ − p₁)² + (p₂ − l₂)²)          with d = p₁ − p₂;
- NPS (unit `score`): the difference of the two adjusted-Wald estimates (Rocks 2016, « Interval
  estimation for the Net Promoter Score », The American Statistician 70:4; Lewis & Sauro's
  two-sample test): with n' = n + 3, p' = (P + ¾)/n', d' = (D + ¾)/n', s' = p' − d' and
  var = (p' + d' − s'²)/n' for each period, interval = (s'₁ − s'₂) ± z·sqrt(var₁ + var₂);
- means (unit `mean_<min>_<max>`): Welch's interval, (m₁ − m₂) ± t(0.975, ν)·sqrt(s₁²/n₁ + s₂²/n₂)
  with the Welch-Satterthwaite ν (t by the Cornish-Fisher expansion, A&S 26.7.5, within 10⁻³
  of the exact quantile from ν = 3; exact below); no verdict when a period has fewer than 2 ratings.

The amount told (« en baisse de 5 points ») is the difference of the two figures as published;
a change whose interval straddles 0 reads « stable (écart dans la marge d'incertitude) ». No
comparison at all (None) when either period has no figure. Percentages and NPS differ in
points; a mean in tenths of a point.

A figure inside its own interval (`inside_interval`, `centre`): at very small n the adjusted-Wald
interval of an NPS can exclude the NPS itself (one promoter: +100, interval −48,5 to +98,5). A
view that shows such a figure with its interval shows the interval's centre, flagged.

Pure: the standard library only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from statistics import NormalDist
from typing import Any

Z_95 = 1.959963984540054
"""Standard normal quantile for a two-sided 95 % interval."""

SIGNIFICANT_DIGITS = 12
MINUS = "\u2212"  # « − », the typographic minus sign
STABLE_TEXT = "stable (écart dans la marge d'incertitude)"
NEWCOMBE = "newcombe_hybrid_score"
ADJUSTED_WALD_DIFFERENCE = "adjusted_wald_difference"
WELCH = "welch"


# --------------------------------------------------------------------------- rounding


def round_half_away(value: float, decimals: int = 0) -> Decimal:
    """`value` rounded to `decimals` decimals, halves away from zero, from its decimal writing.

    `round_half_away(42.5)` is 43, `round_half_away(-2.5)` is −3, `round_half_away(2.675, 2)` is
    2.68, `round_half_away(17 / 40 * 100)` is 43. A negative result that rounds to zero is 0.
    """
    if not math.isfinite(value):
        raise ValueError("only a finite number can be rounded for a reader")
    written = Decimal(f"{value:.{SIGNIFICANT_DIGITS}g}")
    rounded = written.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return rounded + 0 if rounded.is_zero() else rounded  # -0 becomes 0


def french_number(value: float, decimals: int = 0, *, signed: bool = False) -> str:
    """« 42 », « 8,1 », « −3 », « +43 » (with `signed`): rounded by `round_half_away`, a decimal
    comma and the typographic minus sign."""
    rounded = round_half_away(value, decimals)
    text = f"{abs(rounded):.{decimals}f}".replace(".", ",")
    if rounded < 0:
        return MINUS + text
    return f"+{text}" if signed and rounded > 0 else text


# --------------------------------------------------------------------------- intervals


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of successes/n, as proportions (0..1); n must be positive."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, z: float = Z_95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) of k1/n1 − k2/n2, as proportions."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, z), wilson(k2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high


def nps_difference(
    promoters1: int, detractors1: int, n1: int,
    promoters2: int, detractors2: int, n2: int, z: float = Z_95,
) -> tuple[float, float]:  # fmt: skip
    """Adjusted-Wald interval of NPS₁ − NPS₂, on the −1..1 scale (see the module docstring)."""

    def adjusted(promoters: int, detractors: int, n: int) -> tuple[float, float]:
        n_adjusted = n + 3
        p = (promoters + 0.75) / n_adjusted
        d = (detractors + 0.75) / n_adjusted
        return p - d, (p + d - (p - d) ** 2) / n_adjusted

    score1, variance1 = adjusted(promoters1, detractors1, n1)
    score2, variance2 = adjusted(promoters2, detractors2, n2)
    half = z * math.sqrt(variance1 + variance2)
    return score1 - score2 - half, score1 - score2 + half


def welch_difference(
    ratings1: Mapping[int, int], ratings2: Mapping[int, int]
) -> tuple[float, float] | None:
    """Welch's 95 % interval of mean₁ − mean₂ from two rating distributions (rating -> count);
    None when a distribution has fewer than 2 ratings."""
    stats = [_mean_variance(ratings) for ratings in (ratings1, ratings2)]
    if any(s is None for s in stats):
        return None
    (m1, v1, n1), (m2, v2, n2) = (s for s in stats if s is not None)
    a, b = v1 / n1, v2 / n2
    if a + b == 0:  # both periods unanimous: the difference is what it is
        return m1 - m2, m1 - m2
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    half = t_quantile_975(df) * math.sqrt(a + b)
    return m1 - m2 - half, m1 - m2 + half


def _mean_variance(ratings: Mapping[int, int]) -> tuple[float, float, int] | None:
    n = sum(ratings.values())
    if n < 2:
        return None
    total = sum(value * count for value, count in ratings.items())
    squares = sum(value * value * count for value, count in ratings.items())
    return total / n, max(0.0, (n * squares - total * total) / (n * (n - 1))), n


def t_quantile_975(df: float) -> float:
    """Student's t quantile at 0.975 for `df` degrees of freedom: the Cornish-Fisher expansion
    (A&S 26.7.5) from df = 3 (within 10⁻³), the exact closed forms of df = 1 and 2 below it (a
    fractional df below 3 takes the whole df under it: a wider, never a narrower interval)."""
    if df < 3:
        if df < 2:
            return math.tan(math.pi * 0.475)  # df = 1 (Cauchy): 12.706
        return 0.95 / math.sqrt(2 * 0.975 * 0.025)  # df = 2: (2p − 1)/sqrt(2p(1 − p)) = 4.303
    z = NormalDist().inv_cdf(0.975)
    z2 = z * z
    g1 = (z2 + 1) * z / 4
    g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
    g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
    g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
    g5 = (((((27 * z2 + 339) * z2 + 930) * z2 - 1782) * z2 - 765) * z2 + 17955) * z / 368640
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4 + g5 / df**5


def inside_interval(value: float, low: float, high: float) -> bool:
    """Whether a figure lies inside its own interval (ends included, to a rounding error)."""
    tolerance = 1e-9 * max(1.0, abs(value))
    return low - tolerance <= value <= high + tolerance


def centre(low: float, high: float) -> float:
    """The centre of an interval: what a view shows instead of a figure outside it."""
    return (low + high) / 2


# --------------------------------------------------------------------------- changes


@dataclass(frozen=True)
class Change:
    """A figure's change from the previous period, and whether it is more than noise."""

    difference: float  # current − previous, as published (points, or points of a mean)
    low: float  # the 95 % interval of the difference, same scale
    high: float
    unit: str
    method: str

    @property
    def distinguishable(self) -> bool:
        """True when the 95 % interval of the difference excludes 0 (and agrees in sign)."""
        if self.low > 0:
            return self.difference > 0
        if self.high < 0:
            return self.difference < 0
        return False

    @property
    def direction(self) -> str:
        """« hausse », « baisse » or « stable »."""
        if not self.distinguishable:
            return "stable"
        return "hausse" if self.difference > 0 else "baisse"

    @property
    def text(self) -> str:
        """« stable (écart dans la marge d'incertitude) », « en baisse de 5 points »."""
        if not self.distinguishable:
            return STABLE_TEXT
        decimals = 1 if self.unit.startswith("mean_") else 0
        amount = round_half_away(abs(self.difference), decimals)
        if amount.is_zero():  # a real change smaller than the shown precision
            decimals += 1
            amount = round_half_away(abs(self.difference), decimals)
        points = "point" if amount < 2 else "points"
        return f"en {self.direction} de {french_number(float(amount), decimals)} {points}"

    def as_json(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "interval": {"low": self.low, "high": self.high, "level": 0.95, "method": self.method},
            "distinguishable": self.distinguishable,
            "direction": self.direction,
            "text": self.text,
        }


def compare(current: Mapping[str, Any], previous: Mapping[str, Any]) -> Change | None:
    """The change between two figures of one indicator (mappings with `unit`, `value`,
    `sample_size` and `counts`, as `contracts.events.IndicatorFigure.model_dump()` or a feed's
    snapshot); None when either has no value or the unit has no rule."""
    unit = str(current.get("unit") or "")
    if unit != previous.get("unit"):
        return None
    value1, value2 = current.get("value"), previous.get("value")
    n1, n2 = int(current.get("sample_size") or 0), int(previous.get("sample_size") or 0)
    if value1 is None or value2 is None or n1 <= 0 or n2 <= 0:
        return None
    difference = float(value1) - float(value2)
    counts1: Mapping[str, int] = current.get("counts") or {}
    counts2: Mapping[str, int] = previous.get("counts") or {}
    bounds: tuple[float, float] | None
    if unit == "percent":
        k1, k2 = round(float(value1) * n1 / 100), round(float(value2) * n2 / 100)
        low, high = newcombe_difference(k1, n1, k2, n2)
        bounds, method = (low * 100, high * 100), NEWCOMBE
    elif unit == "score":
        needed = {"promoters", "detractors"}
        if not (needed <= set(counts1) and needed <= set(counts2)):
            return None  # a figure withheld below a floor has no counts
        low, high = nps_difference(
            counts1["promoters"], counts1["detractors"], n1,
            counts2["promoters"], counts2["detractors"], n2,
        )  # fmt: skip
        bounds, method = (low * 100, high * 100), ADJUSTED_WALD_DIFFERENCE
    elif unit.startswith("mean_"):
        bounds, method = welch_difference(_ratings(counts1), _ratings(counts2)), WELCH
    else:
        return None
    if bounds is None:
        return None
    return Change(difference, bounds[0], bounds[1], unit, method)


def _ratings(counts: Mapping[str, int]) -> dict[int, int]:
    ratings: dict[int, int] = {}
    for key, count in counts.items():
        try:
            ratings[int(key)] = ratings.get(int(key), 0) + int(count)
        except ValueError:
            continue
    return ratings
