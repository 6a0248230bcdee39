"""Pure scoring rules: tallies, periods, indicators with their 95 % intervals, réitération, alerts.

No I/O and no clock here: the caller passes `as_of` / `now`. Every indicator is a function of
additive tallies (question id -> answer value as text -> count of responses), so any window is
the sum of its days and a replay that keeps the tallies exact keeps the figures exact.

Definitions (DESIGN.md, "Domain facts to honour"):
- NPS: % promoters (9-10) - % detractors (0-6) over those who answered `recommandation`.
- CES: share agreeing (5-7 of 7) on `effort`, and the mean.
- FCR declared: share answering "non" to `plusieurs_contacts`.
- FCR observed (réitération, CNAV practice): share of closed contacts not followed by another
  contact of the same user on the same motif within N days.
- Satisfaction: share rating `satisfaction_globale` >= 8/10, and the mean; the same per theme.
- Response rate: responses / invitations sent, by cohort (`cohort_response_rate`): the
  invitations sent in a period, and the answers to those invitations whenever they came; the
  figure is provisional while a link of the cohort has not expired (answers may still come).
  Never max(invitations, responses): that counted this week's answers to last week's
  invitations and hid the current week's answers still to come, so the current week read low.
Denominators count only those who answered the item.

A figure inside its own interval (`manager_value`): at very small n the adjusted-Wald interval of
an NPS can exclude the NPS itself (one promoter: +100, interval -48.5 to 98.5); a view that shows
a figure with its interval shows the interval's centre then, and says so.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from statistics import NormalDist
from typing import TypeAlias, TypeVar

from pydantic import BaseModel

from contracts.events import DetractorReason, IndicatorFigure, Interval, PeriodFigures
from contracts.figures import centre, inside_interval
from contracts.floors import floored, may_show
from contracts.questionnaire import Item, ItemKind, Questionnaire

Tally: TypeAlias = Mapping[str, Mapping[str, int]]
"""Question id -> answer value as text -> count of responses."""

RESPONSES_ITEM = "__responses__"
"""Pseudo-item counting responses: tally[RESPONSES_ITEM]["1"] is the number of responses."""

VERSION_ITEM = "__version__"
"""Pseudo-item counting responses by questionnaire version: tally[VERSION_ITEM][version]."""

PRESENT = "present"
"""The only value tallied for a free-text item: the text itself never enters the tallies."""

DEFAULT_FREE_TEXT_ITEMS: frozenset[str] = frozenset({"suggestion"})

Z_95 = 1.959963984540054
"""Standard normal quantile for a two-sided 95 % interval."""

WILSON = "wilson"
ADJUSTED_WALD = "adjusted_wald"
STUDENT_T = "student_t"

# Thresholds fixed by the indicator definitions, whatever the questionnaire version.
PROMOTER_MIN = 9
DETRACTOR_MAX = 6
CES_AGREE_MIN = 5
SATISFIED_MIN = 8
FCR_DECLARED_YES = "non"  # "non" to "did you have to contact us several times?"

THEMES_GROUP = "themes"


# --------------------------------------------------------------------------- tallies


def tally_cells(
    answers: Mapping[str, int | str],
    *,
    free_text: Collection[str] = DEFAULT_FREE_TEXT_ITEMS,
    version: str | None = None,
) -> dict[str, str]:
    """The cells to add +1 each for one response: {item id: value as text}.

    Always holds (RESPONSES_ITEM, "1"), and (VERSION_ITEM, version) when the response's
    questionnaire version is given (`questionnaire_of`); an answer under one of those two ids
    is not a question of any questionnaire and is left out, so it cannot change the count of
    responses. A free-text item only adds (item id, "present") when it is not blank: free text
    is never published, and tallying it would leak it and blow up the number of tally rows.
    Pass `free_text=free_text_items(questionnaire)` for a questionnaire whose free-text items
    are not the default `suggestion`.
    """
    cells = {RESPONSES_ITEM: "1"}
    if version is not None:
        cells[VERSION_ITEM] = version
    for item_id, value in answers.items():
        if item_id in _MARKER_ITEMS:
            continue
        if item_id in free_text:
            if str(value).strip():
                cells[item_id] = PRESENT
        else:
            cells[item_id] = value if value.__class__ is str else str(value)
    return cells


_MARKER_ITEMS = frozenset({RESPONSES_ITEM, VERSION_ITEM})


def tally_rows(
    answers: Mapping[str, int | str],
    *,
    free_text: Collection[str] = DEFAULT_FREE_TEXT_ITEMS,
    version: str | None = None,
) -> list[tuple[str, str]]:
    """`tally_cells` as (item id, value as text) pairs."""
    return list(tally_cells(answers, free_text=free_text, version=version).items())


def free_text_items(questionnaire: Questionnaire) -> frozenset[str]:
    return frozenset(item.id for item in questionnaire.items if item.kind is ItemKind.TEXT)


def merge(tallies: Iterable[Tally]) -> dict[str, dict[str, int]]:
    """Additive sum of tallies (e.g. the days of a period)."""
    total: dict[str, dict[str, int]] = {}
    for tally in tallies:
        for item_id, values in tally.items():
            counts = total.setdefault(item_id, {})
            for value, count in values.items():
                counts[value] = counts.get(value, 0) + count
    return total


def response_count(tally: Tally) -> int:
    return sum(tally.get(RESPONSES_ITEM, {}).values())


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    id: str
    start: date
    end: date  # inclusive

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def periods(as_of: date) -> list[Period]:
    """Every reporting window for the day `as_of`.

    ISO weeks are full weeks, Monday to Sunday (so a week's figures keep the same window all
    week long); months are calendar months; rolling windows are the N days ending `as_of`
    inclusive; `previous_rolling_90d` is the 90 days just before `rolling_90d`.
    """
    return list(_periods_of(as_of))


@lru_cache(maxsize=64)
def _periods_of(as_of: date) -> tuple[Period, ...]:
    """`periods`, worked out once a day (a publish asks it for every site)."""
    monday = as_of - timedelta(days=as_of.weekday())
    month_start = as_of.replace(day=1)
    previous_month_end = month_start - timedelta(days=1)
    rolling_90 = _rolling("rolling_90d", as_of, 90)
    return (
        Period("iso_week", monday, monday + timedelta(days=6)),
        Period("previous_iso_week", monday - timedelta(days=7), monday - timedelta(days=1)),
        Period("month", month_start, _month_end(month_start)),
        Period("previous_month", previous_month_end.replace(day=1), previous_month_end),
        _rolling("rolling_30d", as_of, 30),
        rolling_90,
        _rolling("previous_rolling_90d", rolling_90.start - timedelta(days=1), 90),
        Period("year_to_date", date(as_of.year, 1, 1), as_of),
    )


def _rolling(period_id: str, last_day: date, length: int) -> Period:
    return Period(period_id, last_day - timedelta(days=length - 1), last_day)


def _month_end(month_start: date) -> date:
    next_month = (month_start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return next_month - timedelta(days=1)


# --------------------------------------------------------------------------- statistics


def wilson_interval(successes: int, n: int, z: float = Z_95) -> Interval | None:
    """Wilson score interval for the share successes/n, in percent; None when n == 0.

    With p = k/n:  centre = (p + z²/2n) / (1 + z²/n)
                   half   = z / (1 + z²/n) · sqrt(p(1 - p)/n + z²/4n²)
    Unlike the plain Wald interval it stays inside [0, 100] and is not degenerate at 0 or n.
    """
    if n <= 0:
        return None
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return _interval(centre - half, centre + half, 0.0, 1.0, scale=100.0, method=WILSON)


def nps_interval(promoters: int, detractors: int, n: int, z: float = Z_95) -> Interval | None:
    """Adjusted-Wald interval for the NPS (Rocks 2016), on the -100..100 scale.

    Add 3/4 to promoters and to detractors (and 3/2 to passives), so n' = n + 3:
        p' = (P + 3/4) / n',  d' = (D + 3/4) / n',  nps' = p' - d'
        var = (p' + d' - (p' - d')²) / n'
        interval = nps' ± z · sqrt(var), clamped to [-1, 1], times 100.
    The adjustment keeps the interval honest at small n and at 100 % promoters.
    """
    if n <= 0:
        return None
    adjusted_n = n + 3
    p = (promoters + 0.75) / adjusted_n
    d = (detractors + 0.75) / adjusted_n
    centre = p - d
    half = z * math.sqrt((p + d - centre * centre) / adjusted_n)
    return _interval(centre - half, centre + half, -1.0, 1.0, scale=100.0, method=ADJUSTED_WALD)


def mean_interval(
    distribution: Mapping[int, int], *, bounds: tuple[float, float] | None = None
) -> tuple[float | None, Interval | None]:
    """Mean of a distribution (value -> count) and its Student t 95 % interval.

    mean ± t(0.975, n - 1) · s / sqrt(n), with s² the sample variance (divisor n - 1), computed
    from exact integer sums: s² = (n·Σv² - (Σv)²) / (n(n - 1)). None when n == 0 (no mean) or
    n == 1 (no interval). `bounds`, the ends of the rating scale, clamp the interval: a mean
    of ratings cannot leave the scale.
    """
    return _mean_interval(*_moments(distribution), bounds)


def _moments(distribution: Mapping[int, int]) -> tuple[int, int, int]:
    """n, Σv and Σv² of a distribution (value -> count): exact integers, in one pass."""
    n = total = squares = 0
    for value, count in distribution.items():
        n += count
        total += value * count
        squares += value * value * count
    return n, total, squares


def _mean_interval(
    n: int, total: int, squares: int, bounds: tuple[float, float] | None
) -> tuple[float | None, Interval | None]:
    """`mean_interval` from the distribution's `_moments`."""
    if n == 0:
        return None, None
    mean = total / n
    if n == 1:
        return mean, None
    variance = (n * squares - total * total) / (n * (n - 1))
    half = student_t_quantile(0.975, n - 1) * math.sqrt(variance / n)
    low_bound, high_bound = bounds if bounds is not None else (-math.inf, math.inf)
    return mean, _interval(mean - half, mean + half, low_bound, high_bound, method=STUDENT_T)


def _interval(
    low: float, high: float, floor: float, ceiling: float, *, scale: float = 1.0, method: str
) -> Interval:
    low = floor if floor > low else low  # max(low, floor), min(high, ceiling), inlined
    high = ceiling if ceiling < high else high
    return _trusted(
        Interval, {"low": low * scale, "high": high * scale, "level": 0.95, "method": method},
        _INTERVAL_SET,
    )  # fmt: skip


@lru_cache(maxsize=4096)
def student_t_quantile(probability: float, df: int) -> float:
    """Quantile of Student's t with `df` degrees of freedom, for 0.5 <= probability < 1.

    scipy is not available, so: for t > 0, P(|T| > t) = I_x(df/2, 1/2) with x = df/(df + t²)
    (I the regularized incomplete beta function). Newton's method on t of that tail, from the
    Cornish-Fisher expansion around the normal quantile: the tail is convex and decreasing
    for t > 0, so after the first step every iterate stays below the root and climbs to it
    (quadratically). Two or three tail evaluations instead of the ~90 of a bisection: a
    publish computes dozens of means whose n changes with every new answer, so the cache
    rarely helps. When df is so large that the expansion's first omitted term is below 1e-14
    of t, the expansion is the answer (it is then more exact than the incomplete beta, whose
    log-gamma terms lose digits). Exact to about 1e-13 (relative); a bracket guards Newton.
    """
    if df < 1:
        raise ValueError("df must be at least 1")
    if not 0.5 <= probability < 1:
        raise ValueError("probability must be in [0.5, 1)")
    two_sided_tail = 2 * (1 - probability)
    if two_sided_tail >= 1:
        return 0.0
    log_density_scale = (
        math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    )

    def excess(t: float) -> float:  # P(|T| > t) - target: decreasing and convex in t > 0
        return _regularized_incomplete_beta(df / (df + t * t), df / 2, 0.5) - two_sided_tail

    def slope(t: float) -> float:  # d/dt P(|T| > t) = -2 · density(t)
        return -2 * math.exp(log_density_scale - (df + 1) / 2 * math.log1p(t * t / df))

    t, omitted = _cornish_fisher_t(NormalDist().inv_cdf(probability), df)
    if omitted < 1e-14 * t:
        return t
    low, high = 0.0, math.inf  # excess(low) > 0 >= excess(high)
    for _ in range(200):
        value = excess(t)
        if value == 0:
            return t
        if value > 0:
            low = t
        else:
            high = t
        following = t - value / slope(t)
        if low < following < high:
            if abs(following - t) <= 1e-10 * t:  # quadratic: the next step would be ~1e-20
                return following
        else:  # a step out of the bracket (rounding near the root, or a far start): bisect
            following = (low + high) / 2 if high < math.inf else 2 * t
            if abs(following - t) <= 1e-14 * t:
                return following
        t = following
    raise ArithmeticError(f"t quantile did not converge (probability={probability}, df={df})")


def _cornish_fisher_t(z: float, df: int) -> tuple[float, float]:
    """t ≈ z + g1/ν + g2/ν² + ... + g5/ν⁵ (Abramowitz-Stegun 26.7.5), and the size of the last
    term, an upper bound of the truncation error once ν is large."""
    z2 = z * z
    g1 = (z2 + 1) * z / 4
    g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
    g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
    g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
    g5 = (((((27 * z2 + 339) * z2 + 930) * z2 - 1782) * z2 - 765) * z2 + 17955) * z / 368640
    last = g5 / df**5
    guess = z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4 + last
    return (guess, abs(last)) if guess > 0 else (z, math.inf)


def _regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) by its continued fraction (Numerical Recipes, `betai`)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The fraction converges quickly only on this side of the mean; use symmetry otherwise.
    if x < (a + 1) / (a + b + 2):
        return front * _beta_continued_fraction(x, a, b) / a
    return 1 - front * _beta_continued_fraction(1 - x, b, a) / b


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    """Modified Lentz evaluation of the incomplete beta continued fraction."""
    tiny = 1e-300

    def guard(value: float) -> float:
        return value if abs(value) >= tiny else tiny

    c = 1.0
    d = 1 / guard(1 - (a + b) * x / (a + 1))
    result = d
    # Iterations needed grow like sqrt(max(a, b)); the bound only stops a runaway loop.
    for m in range(1, 10_000 + 10 * int(math.sqrt(a + b))):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1 / guard(1 + even * d)
        c = guard(1 + even / c)
        result *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1 / guard(1 + odd * d)
        c = guard(1 + odd / c)
        step = d * c
        result *= step
        if abs(step - 1) < 1e-15:
            return result
    raise ArithmeticError(f"incomplete beta did not converge (x={x}, a={a}, b={b})")


# --------------------------------------------------------------------------- indicators


Reusable: TypeAlias = tuple[Tally, Sequence[IndicatorFigure]]
"""A tally and its figures under the same questionnaire (`figures`' `since`)."""


def figures(
    tally: Tally, *, invitations: int | Cohort, questionnaire: Questionnaire,
    now: datetime | None = None, since: Reusable | None = None,
) -> list[IndicatorFigure]:  # fmt: skip
    """One figure per indicator for the tallied responses of one period and scope.

    An indicator whose item the questionnaire version does not have is left out rather than
    shown as "nobody answered": a network may drop items.

    The response rate is the cohort's (`cohort_response_rate`): the services pass the period's
    invitation `Cohort` and `now` (to tell whether it is still open). A bare number of
    invitations is a closed cohort whose answers are the tallied responses, at most one per
    invitation (tests and tools).

    `since`: an earlier tally of the same scope and its figures under the same questionnaire;
    an indicator whose item's counts are the same in both is that figure again (a pure
    function of them), not computed again: a new answer changes few items of a small period.
    """
    earlier, known = since if since is not None else ({}, ())
    was = {figure.indicator: figure for figure in known}

    def kept(item_id: str, *indicators: str) -> list[IndicatorFigure] | None:
        if since is None or tally.get(item_id) != earlier.get(item_id):
            return None
        found = [was[indicator] for indicator in indicators if indicator in was]
        return found if len(found) == len(indicators) else None

    def share_then_mean(
        item: Item, share: tuple[str, str, int, str], mean: tuple[str, str]
    ) -> list[IndicatorFigure]:
        """The item's share at or above a rating (indicator, label, least rating, count name)
        and its mean (indicator, label): both kept, or both from one pass over its ratings."""
        if (same := kept(item.id, share[0], mean[0])) is not None:
            return same
        rated = _rated(tally, item.id)
        return [_share_at_least(*share[:2], rated, *share[2:]), _mean(*mean, rated, item)]

    layout = _layout(_Same(questionnaire))
    result: list[IndicatorFigure] = []
    if (item := layout.recommandation) is not None:
        result += kept(item.id, "nps") or [_nps(_ratings(tally, item.id))]
    if (item := layout.effort) is not None:
        result += share_then_mean(
            item, ("ces", "Effort (part d'accord)", CES_AGREE_MIN, "agree"),
            ("ces_mean", "Effort (moyenne sur 7)"),
        )  # fmt: skip
    if layout.asks_fcr:
        result += kept("plusieurs_contacts", "fcr_declared") or [
            _fcr_declared(tally.get("plusieurs_contacts", {}))
        ]
    if (item := layout.satisfaction) is not None:
        result += share_then_mean(
            item, ("satisfaction", "Satisfaction globale (8 à 10 sur 10)", SATISFIED_MIN,
                   "satisfied"), ("satisfaction_mean", "Satisfaction globale (moyenne sur 10)"),
        )  # fmt: skip
    for item, share_indicator, share_label, mean_label in layout.themes:
        if (same := kept(item.id, item.id, share_indicator)) is not None:
            result += same
            continue
        rated = _rated(tally, item.id)
        result += [
            _mean(item.id, mean_label, rated, item),
            _share_at_least(share_indicator, share_label, rated, SATISFIED_MIN, "satisfied"),
        ]
    if not isinstance(invitations, Cohort):
        invitations = cohort_of(invitations, response_count(tally))
    result.append(cohort_response_rate(invitations, now=now))
    return result


class _Same:
    """A questionnaire compared by identity: hashing a version by its value costs ~40 µs, and
    `figures` meets the same few version objects (`questionnaire.load_all`) again and again."""

    __slots__ = ("form",)

    def __init__(self, form: Questionnaire) -> None:
        self.form = form

    def __hash__(self) -> int:
        return id(self.form)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.form is self.form


@dataclass(frozen=True)
class _Layout:
    """The items `figures` reads in a questionnaire version, and each theme's share indicator,
    share label and mean label."""

    recommandation: Item | None
    effort: Item | None
    asks_fcr: bool
    satisfaction: Item | None
    themes: tuple[tuple[Item, str, str, str], ...]


@lru_cache(maxsize=64)
def _layout(same: _Same) -> _Layout:
    """Looked up once per version object (a cached key holds its object: no id is reused)."""
    form = same.form
    return _Layout(
        recommandation=_scale_item(form, "recommandation"),
        effort=_scale_item(form, "effort"),
        asks_fcr=_find_item(form, "plusieurs_contacts") is not None,
        satisfaction=_scale_item(form, "satisfaction_globale"),
        themes=tuple(_theme_texts(item) for item in theme_items(form)),
    )


def _theme_texts(item: Item) -> tuple[Item, str, str, str]:
    """A theme, its share indicator, share label and mean label (`_Layout.themes`)."""
    question, top = item.question, item.scale_max
    return (item, f"{item.id}_share", f"{question} ({SATISFIED_MIN} à {top} sur {top})",
            f"{question} (moyenne sur {top})")  # fmt: skip


def theme_items(questionnaire: Questionnaire) -> list[Item]:
    return [
        item
        for item in questionnaire.items
        if item.group == THEMES_GROUP and item.kind is ItemKind.SCALE
    ]


def supported_indicators(questionnaire: Questionnaire) -> frozenset[str]:
    """The indicators `figures` computes for a version's responses: those whose items the
    version asks (the short SMS questionnaire has no NPS and no themes), and the response
    rate. `fcr_observed` comes from the contacts, not the questionnaire."""
    return frozenset(
        figure.indicator for figure in figures({}, invitations=0, questionnaire=questionnaire)
    )


def tallied_versions(tally: Tally, *, untagged: str) -> dict[str, int]:
    """Responses by questionnaire version. Responses tallied before their version was
    (no VERSION_ITEM cell) count as `untagged`: the one version there was then."""
    versions = {version: n for version, n in tally.get(VERSION_ITEM, {}).items() if n > 0}
    rest = response_count(tally) - sum(versions.values())
    if rest > 0:
        versions[untagged] = versions.get(untagged, 0) + rest
    return versions


def questionnaire_of(
    tallies: Iterable[Tally], forms: Mapping[str, Questionnaire], *, fallback: Questionnaire
) -> Questionnaire:
    """What the tallied responses were asked: the items of every version they carry (in the
    order of `forms`), so `figures` computes each indicator from the responses whose version
    asks its items, and leaves out an indicator no tallied version asks, rather than showing
    it as "nobody answered". Versions answer a shared item id alike (contracts'
    `incompatibilities`), so their counts add up. `fallback` when nothing is tallied;
    untagged responses count as `forms`' first version (the default)."""
    default = next(iter(forms), fallback.version)
    seen: set[str] = set()
    for tally in tallies:
        seen |= tallied_versions(tally, untagged=default).keys()
    versions = [version for version in forms if version in seen]
    if not versions:
        return fallback
    if len(versions) == 1:
        return forms[versions[0]]
    items: dict[str, Item] = {}
    for version in versions:
        for item in forms[version].items:
            items.setdefault(item.id, item)
    first = forms[versions[0]]
    return Questionnaire.model_construct(
        version="+".join(versions), title=first.title, intro=first.intro,
        items=tuple(items.values()),
    )  # fmt: skip


def observed_fcr(resolved: int, repeated: int, pending: int) -> IndicatorFigure:
    """Observed first-contact resolution: resolved / (resolved + repeated), Wilson interval.

    Pending contacts (window not yet passed) are left out of the denominator, and the figure is
    marked provisional while there are any: it may still go down.
    """
    n = resolved + repeated
    return _share_figure(
        "fcr_observed",
        "Résolution dès le premier contact (observée)",
        resolved,
        n,
        counts={"resolved": resolved, "repeated": repeated, "pending": pending},
        provisional=pending > 0,
    )


def period_figures(
    period: Period,
    tally: Tally,
    *,
    invitations: int | Cohort,
    questionnaire: Questionnaire,
    fcr: tuple[int, int, int] | None = None,
    now: datetime | None = None,
    since: Reusable | None = None,
) -> PeriodFigures:
    """The figures of one period; `fcr` is (resolved, repeated, pending) when known; the
    response rate is the `invitations` cohort's, and `since` what may be reused (see
    `figures`)."""
    result = figures(
        tally, invitations=invitations, questionnaire=questionnaire, now=now, since=since
    )
    if fcr is not None:
        result.append(observed_fcr(*fcr))
    # Valid by construction (a period of `periods`, figures of `figures`): not validated again.
    return _trusted(
        PeriodFigures,
        {"period": period.id, "start": period.start, "end": period.end, "figures": result},
        _PERIOD_FIGURES_SET,
    )


def _nps(ratings: Mapping[int, int]) -> IndicatorFigure:
    n = promoters = detractors = 0
    for value, count in ratings.items():  # one pass
        n += count
        if value >= PROMOTER_MIN:
            promoters += count
        elif value <= DETRACTOR_MAX:
            detractors += count
    return _figure(
        "nps", "Recommandation (NPS)", "score",
        value=(promoters - detractors) / n * 100 if n else None, sample_size=n,
        interval=nps_interval(promoters, detractors, n),
        counts={"promoters": promoters, "passives": n - promoters - detractors,
                "detractors": detractors},
    )  # fmt: skip


_Rated: TypeAlias = tuple[dict[int, int], int, int, int]
"""An item's `_ratings` and their `_moments` (n, Σv, Σv²)."""


def _rated(tally: Tally, item_id: str) -> _Rated:
    """`_ratings` and their `_moments`, in the same pass."""
    ratings: dict[int, int] = {}
    n = total = squares = 0
    for value, count in tally.get(item_id, {}).items():
        if count and (rating := _RATINGS.get(value) or _rating(value)) is not None:
            ratings[rating] = ratings.get(rating, 0) + count
            n += count
            total += rating * count
            squares += rating * rating * count
    return ratings, n, total, squares


def _share_at_least(
    indicator: str, label: str, rated: _Rated, threshold: int, counted_as: str
) -> IndicatorFigure:
    """Share of ratings >= threshold; counts name the numerator `counted_as`."""
    ratings, n = rated[0], rated[1]
    k = sum(count for value, count in ratings.items() if value >= threshold)
    return _share_figure(indicator, label, k, n, counts={counted_as: k, "total": n})


def _fcr_declared(answers: Mapping[str, int]) -> IndicatorFigure:
    n = sum(answers.values())
    k = answers.get(FCR_DECLARED_YES, 0)
    return _share_figure(
        "fcr_declared",
        "Résolution dès le premier contact (déclarée)",
        k,
        n,
        counts={"non": k, "oui": answers.get("oui", 0), "total": n},
    )


@dataclass(frozen=True)
class Cohort:
    """The invitations sent in a period and what became of them.

    `answered` counts the answers to those invitations, whenever they came (not the answers
    received during the period, some of which answer older invitations); `open_until` is when
    the cohort's last link expires (None: no invitation).
    """

    invited: int
    answered: int
    open_until: datetime | None = None

    def still_open(self, now: datetime | None) -> bool:
        """True while a link of the cohort can still be answered: the rate may still go up.
        A cohort with an expiry needs `now`: whether it is open is never guessed."""
        if self.open_until is None:
            return False
        if now is None:
            raise ValueError("an open cohort's rate needs the time it is told at")
        return now < self.open_until


def cohort_of(invited: int, answered: int, open_until: datetime | None = None) -> Cohort:
    """A cohort from scoring's counts. Answers may outnumber the invitations counted so far: a
    response can reach scoring before its invitation, and a response without `invited_at`
    (events older than the field) is counted on its answer day. Those answers wait for their
    invitations: at most one answer per invitation is counted, so never more than 100 %."""
    return Cohort(invited=invited, answered=min(answered, invited), open_until=open_until)


def cohort_response_rate(cohort: Cohort, *, now: datetime | None) -> IndicatorFigure:
    """The response rate of a cohort of invitations: answers to them / invitations, Wilson
    interval, provisional while the cohort is open. No `max(invitations, responses)`: an answer
    is counted with its own invitation, so the rate never exceeds 100 % and is not biased low
    in the current week. An answer without its invitation in the cohort is a caller's error."""
    if cohort.answered > cohort.invited or cohort.answered < 0:
        raise ValueError("a cohort's answers are answers to its own invitations")
    return _share_figure(
        "response_rate",
        "Taux de réponse",
        cohort.answered,
        cohort.invited,
        counts={"responses": cohort.answered, "invitations": cohort.invited},
        provisional=cohort.still_open(now),
    )


def manager_value(figure: IndicatorFigure) -> tuple[float | None, bool]:
    """The value a view shows beside the figure's interval, and whether it was adjusted: the
    figure itself, or the interval's centre when the figure lies outside its own interval."""
    interval = figure.interval
    if figure.value is None or interval is None:
        return figure.value, False
    if inside_interval(figure.value, interval.low, interval.high):
        return figure.value, False
    return centre(interval.low, interval.high), True


def _share_figure(
    indicator: str, label: str, k: int, n: int, *, counts: dict[str, int],
    provisional: bool | None = None,
) -> IndicatorFigure:  # fmt: skip
    return _figure(
        indicator, label, "percent", value=_percent(k, n), sample_size=n,
        interval=wilson_interval(k, n), counts=counts, provisional=provisional,
    )  # fmt: skip


def _mean(indicator: str, label: str, rated: _Rated, item: Item) -> IndicatorFigure:
    ratings, n, total, squares = rated
    value, interval = _mean_interval(n, total, squares, _scale_bounds(item))
    return _figure(
        indicator, label, _mean_unit(item.scale_min, item.scale_max), value=value,
        sample_size=n, interval=interval,
        counts={_RATING_TEXT.get(value) or str(value): count
                for value, count in sorted(ratings.items())},
    )  # fmt: skip


_RATING_TEXT = {rating: str(rating) for rating in range(-1, 101)}  # str() of common ratings
_RATINGS = {text: rating for rating, text in _RATING_TEXT.items()}  # and back (`_rating`)


@lru_cache(maxsize=256)
def _mean_unit(scale_min: int | None, scale_max: int | None) -> str:
    return f"mean_{scale_min}_{scale_max}"


_FIGURE_SET = frozenset(
    ("indicator", "label", "value", "unit", "sample_size", "interval", "counts")
)
_PROVISIONAL_FIGURE_SET = _FIGURE_SET | {"provisional"}
_INTERVAL_SET = frozenset(("low", "high", "method"))
_PERIOD_FIGURES_SET = frozenset(("period", "start", "end", "figures"))
_Model = TypeVar("_Model", bound=BaseModel)


def _figure(
    indicator: str, label: str, unit: str, *, value: float | None, sample_size: int,
    interval: Interval | None, counts: dict[str, int], provisional: bool | None = None,
) -> IndicatorFigure:  # fmt: skip
    """`IndicatorFigure(indicator=..., ..., counts=...)` without validating again what is
    valid by construction: a publish builds hundreds of figures, and validating a mean's
    counts (a pattern per key) cost three times building the figure. The texts, which come
    from a questionnaire, are validated once each (`_checked_texts`); the value and interval
    are floats or None, the counts integers under rating or constant keys, and a negative
    sample size is refused as validation would. test_fast_figures checks the result equals
    the validated model, field for field, for every questionnaire version. `provisional`:
    given (True or False) or left to its default, as a caller of the model would."""
    if sample_size < 0:
        raise ValueError("a sample size cannot be negative")
    indicator, label, unit = _checked_texts(indicator, label, unit)
    return _trusted(
        IndicatorFigure,
        {"indicator": indicator, "label": label, "value": value, "unit": unit,
         "sample_size": sample_size, "interval": interval, "counts": counts,
         "provisional": bool(provisional)},
        _FIGURE_SET if provisional is None else _PROVISIONAL_FIGURE_SET,
    )  # fmt: skip


@lru_cache(maxsize=4096)
def _checked_texts(indicator: str, label: str, unit: str) -> tuple[str, str, str]:
    """The indicator, label and unit as `IndicatorFigure` validates them (stripped; an
    invalid one raises as validation does), once per distinct triple."""
    figure = IndicatorFigure(indicator=indicator, label=label, value=None, unit=unit,
                             sample_size=0)  # fmt: skip
    return figure.indicator, figure.label, figure.unit


def _trusted(model: type[_Model], values: dict[str, object], given: frozenset[str]) -> _Model:
    """What `model.model_construct(**given values)` builds (every field in `values`, `given`
    the ones a caller passed): pydantic 2.13's model_construct cost six times validating, this
    a third of it. Only for values already valid (a test compares with validated models)."""
    built = _new(model)
    _set(built, "__dict__", values)
    _set_fields_set(built, set(given))  # BaseModel's slots, set through their descriptors
    _set_extra(built, None)
    _set_private(built, None)
    return built


_new, _set = object.__new__, object.__setattr__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _percent(k: int, n: int) -> float | None:
    return k / n * 100 if n else None


def _ratings(tally: Tally, item_id: str) -> dict[int, int]:
    """The tallied ratings of a scale item as {rating: count}.

    A key that is not an integer cannot be a rating (it could only come from another
    questionnaire version reusing the id for a choice): it is skipped, not counted.
    """
    ratings: dict[int, int] = {}
    for value, count in tally.get(item_id, {}).items():
        if count and (rating := _rating(value)) is not None:
            ratings[rating] = ratings.get(rating, 0) + count
    return ratings


@lru_cache(maxsize=4096)
def _rating(value: str) -> int | None:
    """`int(value)`, None when it is no integer: parsed once per distinct text."""
    try:
        return int(value)
    except ValueError:
        return None


def _find_item(questionnaire: Questionnaire, item_id: str) -> Item | None:
    return next((item for item in questionnaire.items if item.id == item_id), None)


def _scale_item(questionnaire: Questionnaire, item_id: str) -> Item | None:
    item = _find_item(questionnaire, item_id)
    return item if item is not None and item.kind is ItemKind.SCALE else None


def _scale_bounds(item: Item) -> tuple[float, float] | None:
    if item.scale_min is None or item.scale_max is None:
        return None
    return float(item.scale_min), float(item.scale_max)


# --------------------------------------------------------------------------- réitération


@dataclass(frozen=True)
class ContactSeen:
    contact_id: str
    user: str  # pseudonymous user id
    motif: str
    closed_at: datetime  # aware


RESOLVED = "resolved"
REPEATED = "repeated"
PENDING = "pending"


def classify_contacts(
    contacts: Sequence[ContactSeen], *, window_days: int, as_of: datetime
) -> dict[str, str]:
    """contact id -> "resolved" | "repeated" | "pending" (réitération, CNAV practice).

    Repeated: the same user has another contact on the same motif closed strictly later and at
    most `window_days` after it (on any site or channel: they are not part of the key).
    Resolved: no such contact and the window has passed (as_of >= closed_at + window).
    Pending: no such contact yet, but the window is still open.
    A contact id seen twice counts once, with its first occurrence (as the contacts table).
    """
    window = timedelta(days=window_days)
    by_user_motif: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    unique = _unique_contacts(contacts)
    for contact in unique:
        by_user_motif[(contact.user, contact.motif)].append(contact.closed_at)
    for times in by_user_motif.values():
        times.sort()

    status: dict[str, str] = {}
    for contact in unique:
        times = by_user_motif[(contact.user, contact.motif)]
        next_index = bisect_right(times, contact.closed_at)  # first contact strictly later
        if next_index < len(times) and times[next_index] <= contact.closed_at + window:
            status[contact.contact_id] = REPEATED
        elif as_of >= contact.closed_at + window:
            status[contact.contact_id] = RESOLVED
        else:
            status[contact.contact_id] = PENDING
    return status


def contact_distributions(contacts: Sequence[ContactSeen]) -> dict[str, dict[str, int]]:
    """Contacts by motif, and users by number of contacts ("1" .. "4", then "5+")."""
    unique = _unique_contacts(contacts)
    by_motif = Counter(contact.motif for contact in unique)
    per_user = Counter(contact.user for contact in unique)
    buckets = {"1": 0, "2": 0, "3": 0, "4": 0, "5+": 0}
    for count in per_user.values():
        buckets["5+" if count >= 5 else str(count)] += 1
    return {"by_motif": dict(sorted(by_motif.items())), "users_by_contact_count": buckets}


def _unique_contacts(contacts: Sequence[ContactSeen]) -> list[ContactSeen]:
    first: dict[str, ContactSeen] = {}
    for contact in contacts:
        first.setdefault(contact.contact_id, contact)
    return list(first.values())


# --------------------------------------------------------------------------- detractor alerts


@dataclass(frozen=True)
class DetractorRule:
    """Per-network rule for raising a detractor alert (URSSAF: « cotisants détracteurs »)."""

    max_recommendation: int = 6
    max_satisfaction: int = 4
    repeat_with_suggestion: bool = True


def detractor_reasons(
    answers: Mapping[str, int | str], rule: DetractorRule = DetractorRule()
) -> list[DetractorReason]:
    """Why this response calls for a call-back; empty when it does not."""
    reasons: list[DetractorReason] = []
    recommendation = _as_int(answers.get("recommandation"))
    if recommendation is not None and recommendation <= rule.max_recommendation:
        reasons.append(DetractorReason.LOW_RECOMMENDATION)
    satisfaction = _as_int(answers.get("satisfaction_globale"))
    if satisfaction is not None and satisfaction <= rule.max_satisfaction:
        reasons.append(DetractorReason.LOW_SATISFACTION)
    if (
        rule.repeat_with_suggestion
        and answers.get("plusieurs_contacts") == "oui"
        and str(answers.get("suggestion", "")).strip()
    ):
        reasons.append(DetractorReason.REPEAT_CONTACT_WITH_SUGGESTION)
    return reasons


RECONTACT_ITEM = "recontact"
RECONTACT_YES = "oui"
CHOICE_CODE = re.compile(r"^[A-Za-z0-9._:@/-]{1,120}$")
"""What a choice code looks like (contracts.events.Identifier); free text does not."""


def consents_to_call_back(answers: Mapping[str, int | str]) -> bool:
    """Only a user who answered « oui » to `recontact` may be called back: the others' answers
    count in every figure, but raise no alert."""
    return answers.get(RECONTACT_ITEM) == RECONTACT_YES


# --------------------------------------------------------------------------- detractor rules


@dataclass(frozen=True)
class DetractorRules:
    """The detractor rule of each network that has one set (admin API), the default for the
    others: a snapshot the handler reads per response, replaced whole when a rule changes."""

    by_network: Mapping[str, DetractorRule]
    default: DetractorRule = DetractorRule()

    def __call__(self, network: str) -> DetractorRule:
        return self.by_network.get(network, self.default)


def detractor_rule_of(stored: Mapping[str, object]) -> DetractorRule:
    """A stored rule (the admin API's JSON); keys it lacks keep the default, others refused."""
    allowed = {"max_recommendation", "max_satisfaction", "repeat_with_suggestion"}
    unknown = set(stored) - allowed
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    rule = DetractorRule()
    recommendation = stored.get("max_recommendation", rule.max_recommendation)
    satisfaction = stored.get("max_satisfaction", rule.max_satisfaction)
    repeat = stored.get("repeat_with_suggestion", rule.repeat_with_suggestion)
    if not (isinstance(recommendation, int) and not isinstance(recommendation, bool)
            and -1 <= recommendation <= 10):  # fmt: skip
        raise ValueError("max_recommendation must be an integer from -1 (never) to 10")
    if not (isinstance(satisfaction, int) and not isinstance(satisfaction, bool)
            and 0 <= satisfaction <= 10):  # fmt: skip
        raise ValueError("max_satisfaction must be an integer from 0 (never) to 10")
    if not isinstance(repeat, bool):
        raise ValueError("repeat_with_suggestion must be true or false")
    return DetractorRule(recommendation, satisfaction, repeat)


# --------------------------------------------------------------------------- call-backs

HANDLED_FAST = timedelta(hours=48)
HANDLED_IN_A_WEEK = timedelta(days=7)
COMPLETION_CLOCK_SKEW = timedelta(minutes=5)
"""A CRM's clock may run a little behind ours; a call-back reported earlier than that before
its alert was raised is refused (sent to the DLQ), not counted as handled in no time."""


@dataclass(frozen=True)
class AlertState:
    raised_at: datetime
    handled_at: datetime | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class CallbackWeek:
    """The call-backs of the alerts a site raised in one week, as of an instant."""

    raised: int
    handled: int
    handled_within_48h: int
    handled_within_7d: int
    open: int
    outcomes: dict[str, int]


def callback_week(alerts: Iterable[AlertState], *, as_of: datetime) -> CallbackWeek:
    """Count a week's alerts: handled (by `as_of`), within 48 h and 7 days of being raised, by
    outcome, and still open. A completion after `as_of` has not happened yet."""
    raised = handled = fast = in_a_week = 0
    outcomes: Counter[str] = Counter()
    for alert in alerts:
        raised += 1
        if alert.handled_at is None or alert.handled_at > as_of:
            continue
        handled += 1
        delay = alert.handled_at - alert.raised_at
        fast += delay <= HANDLED_FAST
        in_a_week += delay <= HANDLED_IN_A_WEEK
        if alert.outcome is not None:
            outcomes[alert.outcome] += 1
    return CallbackWeek(raised, handled, fast, in_a_week, raised - handled, dict(outcomes))


def open_age_days(raised_at: datetime, as_of: datetime) -> int:
    """Whole days an open alert has waited (0 on its first day)."""
    return max(0, (as_of - raised_at) // timedelta(days=1))


def overdue(raised_at: datetime, as_of: datetime, *, threshold_days: int) -> bool:
    """An open alert older than the threshold: it raises the Prometheus alert."""
    return as_of - raised_at > timedelta(days=threshold_days)


def completion_problem(
    *, raised_at: datetime, completed_at: datetime, site_id: str, alert_site_id: str
) -> str | None:
    """Why a call-back report cannot be recorded against its alert; None when it can."""
    if site_id != alert_site_id:
        return f"call-back for site {site_id} but its alert belongs to site {alert_site_id}"
    if completed_at < raised_at - COMPLETION_CLOCK_SKEW:
        return "call-back completed before its alert was raised"
    return None


def alert_answers(
    answers: Mapping[str, int | str], *, free_text: Collection[str] = DEFAULT_FREE_TEXT_ITEMS
) -> dict[str, int | str]:
    """The answers an alert may carry: ratings and choice codes, never free text (the free-text
    items are left out, and so is any string that is not a choice code)."""
    kept: dict[str, int | str] = {}
    for item_id, value in answers.items():
        if item_id in free_text or isinstance(value, bool):
            continue
        if isinstance(value, int) or CHOICE_CODE.fullmatch(value):
            kept[item_id] = value
    return kept


def _as_int(value: int | str | None) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except ValueError:
        return None


# --------------------------------------------------------------------------- breakdowns


@dataclass(frozen=True)
class BreakdownCell:
    """The figures of one cell of a breakdown (one channel, motif, nature or profile).

    `figures` is None when the cell is withheld: fewer answers than the anonymity floor.
    """

    value: str
    responses: int
    figures: list[IndicatorFigure] | None


def breakdown_cells(
    tallies: Mapping[str, Tally],
    *,
    invitations: Mapping[str, int | Cohort],
    fcr: Mapping[str, tuple[int, int, int]],
    questionnaire: Questionnaire,
    floor: int,
    now: datetime | None = None,
    forms: Mapping[str, Questionnaire] | None = None,
) -> list[BreakdownCell]:
    """Figures per cell for the managers' view, honouring the anonymity floor.

    A cell with fewer than `floor` responses is withheld whole; inside a shown cell, a figure
    answered by fewer than `floor` people is blanked (value, interval and counts removed), since
    a mean of two answers could point at the two users. With `forms` (the known questionnaire
    versions), each cell shows the indicators of the versions its own responses carry
    (`questionnaire_of`, `questionnaire` when the cell has none).
    """
    cells = []
    for value in sorted(set(tallies) | set(invitations) | set(fcr)):
        tally = tallies.get(value, {})
        responses = response_count(tally)
        if not may_show(responses, floor):
            cells.append(BreakdownCell(value, responses, None))
            continue
        form = (
            questionnaire
            if forms is None
            else questionnaire_of([tally], forms, fallback=questionnaire)
        )
        shown = figures(tally, invitations=invitations.get(value, 0), questionnaire=form, now=now)
        if value in fcr:
            shown.append(observed_fcr(*fcr[value]))
        cells.append(BreakdownCell(value, responses, [floored(f, floor) for f in shown]))
    return cells


# --------------------------------------------------------------------------- #15 extras

ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def iso_week_period(text: str) -> Period | None:
    """The ISO week named `2026-W47` (Monday to Sunday), or None when it is no such week."""
    found = ISO_WEEK.match(text)
    if found is None:
        return None
    try:
        monday = date.fromisocalendar(int(found[1]), int(found[2]), 1)
    except ValueError:
        return None
    return Period(text, monday, monday + timedelta(days=6))


@dataclass(frozen=True)
class SurveyChannelRow:
    """One survey channel's invitations (e-mail or SMS) and what became of them; `figures` is
    None when fewer answers than the anonymity floor came (the row is withheld whole)."""

    survey_channel: str
    invitations: int
    answered: int
    figures: list[IndicatorFigure] | None


def survey_channel_rows(
    counts: Mapping[str, tuple[int, int, int, int, int]], *, floor: int
) -> list[SurveyChannelRow]:
    """Per survey channel, from (sent, reminded, answered, answered before any reminder,
    answered after the reminder): the response rate, the rate before any reminder, the share
    of reminded invitations answered after their reminder, and the share of answers that came
    after a reminder. An answer after the reminder is one whose instant follows the
    invitation's `InvitationReminded.reminded_at`: the reminder's effect as the events tell it,
    not a causal estimate. Every figure goes through the one floor function."""
    rows = []
    for channel, (sent, reminded, answered, before, after) in sorted(counts.items()):
        answered = min(answered, sent)  # an answer whose invitation was not seen is not counted
        if not may_show(answered, floor):
            rows.append(SurveyChannelRow(channel, sent, answered, None))
            continue
        shown = [
            _share_figure("response_rate", "Taux de réponse", answered, sent,
                          counts={"responses": answered, "invitations": sent}),
            _share_figure("response_rate_before_reminder", "Taux de réponse avant la relance",
                          min(before, sent), sent,
                          counts={"responses": min(before, sent), "invitations": sent}),
            _share_figure("reminded_answered", "Relancés ayant répondu après la relance",
                          min(after, reminded), reminded,
                          counts={"responses": min(after, reminded), "reminded": reminded}),
            _share_figure("answers_after_reminder", "Part des réponses venues après la relance",
                          min(after, answered), answered,
                          counts={"after": min(after, answered), "total": answered}),
        ]  # fmt: skip
        rows.append(SurveyChannelRow(channel, sent, answered, [floored(f, floor) for f in shown]))
    return rows


EXPORT_COLUMNS = (
    "site", "periode", "date_debut", "date_fin", "section", "dimension", "cellule", "indicateur",
    "libelle", "valeur", "unite", "nombre_reponses", "ic95_borne_basse", "ic95_borne_haute",
    "texte", "themes", "ton",
)  # fmt: skip
ExportVerbatim = (
    tuple[date, str, str, int | None] | tuple[date, str, str, int | None, str, str]
)  # day, channel, text, satisfaction[, themes, tone] (French words, issue #17)


def export_rows(
    *, site_id: str, period: Period, breakdowns: Mapping[str, Sequence[BreakdownCell]],
    verbatims: Iterable[ExportVerbatim], responses: int, floor: int,
) -> list[dict[str, str]]:  # fmt: skip
    """The manager's CSV of a site and period: one row per breakdown cell and figure (a withheld
    cell is one row without figures), then the verbatims (day, channel, text, satisfaction, and
    their themes and tone when given), only when the period's answers reach the anonymity
    floor, as in the weekly e-mail. Text cells are made spreadsheet-safe by the caller's writer
    (`contracts.spreadsheet`)."""
    base = {"site": site_id, "periode": period.id, "date_debut": period.start.isoformat(),
            "date_fin": period.end.isoformat()}  # fmt: skip
    rows: list[dict[str, str]] = []
    for dimension, cells in breakdowns.items():
        for cell in cells:
            where = {**base, "section": "ventilation", "dimension": dimension,
                     "cellule": cell.value}  # fmt: skip
            if cell.figures is None:
                rows.append({**where, "libelle": "moins de réponses que le seuil d'anonymat"})
                continue
            for figure in cell.figures:
                value, _ = manager_value(figure)
                rows.append({
                    **where, "indicateur": figure.indicator, "libelle": figure.label,
                    "valeur": _number(value), "unite": figure.unit,
                    "nombre_reponses": str(figure.sample_size),
                    "ic95_borne_basse": _number(figure.interval.low if figure.interval else None),
                    "ic95_borne_haute": _number(figure.interval.high if figure.interval else None),
                })  # fmt: skip
    if may_show(responses, floor):
        for verbatim in verbatims:
            day, channel, text, satisfaction = verbatim[:4]
            tags = {"themes": verbatim[4], "ton": verbatim[5]} if len(verbatim) == 6 else {}
            rows.append({**base, "section": "verbatim", "dimension": "channel",
                         "cellule": channel, "date_debut": day.isoformat(),
                         "date_fin": day.isoformat(), "indicateur": "satisfaction_globale",
                         "valeur": "" if satisfaction is None else str(satisfaction),
                         "texte": text, **tags})  # fmt: skip
    return rows


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
