"""What irritates a site's users most (issue #17): per site and ISO week, the themes of the
verbatims whose tone is « irritant », counted, ranked, with a trend against the previous four
weeks. Pure: no I/O (mypy strict).

The count of a theme is the number of the week's irritant verbatims tagged with it
(scoring.themes, at ingest). The trend compares the week's rate (irritants of the theme per
response) with the rate of the four previous weeks pooled, through the one rule every output uses
for a change (contracts.figures): Newcombe's interval of the difference of two shares. Only when
that 95 % interval excludes 0 is it « en hausse » or « en baisse »; otherwise « stable (écart dans
la marge d'incertitude) » — so 1 complaint after a mean of 0,25 is not called a rise. Rates, not
raw counts: a week with twice the answers is not a rise of its complaints. No previous answers:
« pas d'historique ». The reference shown beside the count is the mean count over the previous
weeks that had answers.

The anonymity floor (contracts.floors.may_show) decides as for the verbatims themselves: a
site-week with fewer responses than the floor shows no ranking at all (None).

The same rule runs in SQL for the boards (migration 0240, reporting_weekly_irritants); the tests
compare the two.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from contracts import figures
from contracts.floors import may_show

HISTORY_WEEKS = 4
THEME_LABELS = {
    "reponse_personnalisee": "Réponse personnalisée",
    "clarte": "Clarté de la réponse",
    "facilite_contact": "Facilité pour nous contacter",
    "comprehension": "Compréhension de la demande",
    "prise_en_charge": "Prise en charge de la demande",
    "delais": "Délais de traitement",
    "courtoisie": "Courtoisie",
    "autre": "Autre",
}
TONE_LABELS = {
    "irritant": "irritant",
    "satisfaction": "satisfaction",
    "suggestion": "suggestion",
    "neutre": "neutre",
}
UNTAGGED = "non classé"  # a verbatim stored before tagging (migration 0240)
NO_HISTORY = "pas d'historique"


@dataclass(frozen=True)
class SiteWeek:
    """A site's ISO week: its responses and, per theme, its irritant verbatims."""

    responses: int
    irritants: Mapping[str, int]


@dataclass(frozen=True)
class Irritant:
    theme: str
    count: int
    previous_mean: float | None  # mean count over the previous weeks with answers; None: none
    change: figures.Change | None  # of the rate per response, in points; None: no history

    @property
    def label(self) -> str:
        return THEME_LABELS.get(self.theme, self.theme)

    @property
    def trend(self) -> str | None:
        """« hausse », « baisse », « stable », or None without history."""
        return None if self.change is None else self.change.direction

    @property
    def trend_text(self) -> str:
        if self.change is None:
            return NO_HISTORY
        if not self.change.distinguishable:
            return figures.STABLE_TEXT
        return f"en {self.change.direction}"


def theme_label(theme: str) -> str:
    return THEME_LABELS.get(theme, theme)


def tone_label(tone: str | None) -> str:
    return UNTAGGED if tone is None else TONE_LABELS.get(tone, tone)


def irritant_counts(verbatims: Iterable[tuple[str | None, Sequence[str] | None]]) -> dict[str, int]:
    """Per theme, how many of these (tone, themes) verbatims are irritants carrying it."""
    counts: Counter[str] = Counter()
    for tone, themes in verbatims:
        if tone == "irritant":
            counts.update(set(themes or ()))
    return dict(counts)


def trend(count: int, responses: int, history: Sequence[tuple[int, int]]) -> figures.Change | None:
    """The change of a theme's irritant rate, this week against the pooled history of
    (irritants, responses) weeks; None when the history has no responses."""
    previous_responses = sum(n for _, n in history)
    if responses <= 0 or previous_responses <= 0:
        return None
    k1 = min(count, responses)
    k2 = min(sum(k for k, _ in history), previous_responses)
    low, high = figures.newcombe_difference(k1, responses, k2, previous_responses)
    difference = (k1 / responses - k2 / previous_responses) * 100
    return figures.Change(difference, low * 100, high * 100, "percent", figures.NEWCOMBE)


def top_irritants(
    week: SiteWeek, history: Sequence[SiteWeek], *, floor: int, limit: int | None = None
) -> list[Irritant] | None:
    """The week's irritant themes, most frequent first (ties: the questionnaire's order), each
    with its trend against `history` (the previous weeks, at most HISTORY_WEEKS used); None
    below the anonymity floor."""
    if not may_show(week.responses, floor):
        return None
    past = [w for w in history[:HISTORY_WEEKS] if w.responses > 0]
    order = list(THEME_LABELS)
    ranked = sorted(
        ((theme, count) for theme, count in week.irritants.items() if count > 0),
        key=lambda item: (-item[1], order.index(item[0]) if item[0] in order else len(order)),
    )
    irritants = [
        Irritant(
            theme=theme,
            count=count,
            previous_mean=sum(w.irritants.get(theme, 0) for w in past) / len(past)
            if past
            else None,
            change=trend(
                count, week.responses, [(w.irritants.get(theme, 0), w.responses) for w in past]
            ),
        )
        for theme, count in ranked
    ]
    return irritants if limit is None else irritants[:limit]


def weekly_top_irritants(
    weeks: Mapping[date, SiteWeek], monday: date, *, floor: int, limit: int | None = None
) -> list[Irritant] | None:
    """`top_irritants` of the week starting `monday`, its history taken from `weeks` (Mondays;
    a missing week had no response)."""
    empty = SiteWeek(0, {})
    history = [
        weeks.get(monday - timedelta(weeks=back), empty) for back in range(1, HISTORY_WEEKS + 1)
    ]
    return top_irritants(weeks.get(monday, empty), history, floor=floor, limit=limit)
