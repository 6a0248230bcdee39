"""What the public may see: a figure leaves this service only when its sample reaches the floor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

WITHHELD_REASON = "résultats en cours de collecte"
FRENCH_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                 "septembre", "octobre", "novembre", "décembre")  # fmt: skip


@dataclass(frozen=True)
class PublicFigure:
    indicator: str
    label: str
    published: bool
    period: str
    start: date
    end: date
    value: float | None = None
    unit: str | None = None
    sample_size: int | None = None
    interval: Mapping[str, Any] | None = None
    method: str | None = None
    withheld_reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.indicator, "label": self.label, "published": self.published,
            "period": {"id": self.period, "start": self.start.isoformat(), "end": self.end.isoformat()},
        }  # fmt: skip
        if self.published:
            body |= {"value": self.value, "unit": self.unit, "sample_size": self.sample_size,
                     "interval": self.interval, "method": self.method}  # fmt: skip
        else:
            body["withheld_reason"] = self.withheld_reason
        return body


def public_figures(
    period: Mapping[str, Any], chosen: Sequence[str], floor: int
) -> list[PublicFigure]:
    """The chosen indicators of one period; below the floor only the label and reason remain."""
    by_id = {figure["indicator"]: figure for figure in period.get("figures", [])}
    start, end = date.fromisoformat(period["start"]), date.fromisoformat(period["end"])
    result = []
    for indicator in chosen:
        figure = by_id.get(indicator)
        if figure is None:
            continue
        enough = figure["value"] is not None and figure["sample_size"] >= floor
        if enough:
            interval = figure.get("interval")
            result.append(PublicFigure(
                indicator=indicator, label=figure["label"], published=True, period=period["period"],
                start=start, end=end, value=figure["value"], unit=figure["unit"],
                sample_size=figure["sample_size"], interval=interval,
                method=interval["method"] if interval else None,
            ))  # fmt: skip
        else:
            result.append(PublicFigure(
                indicator=indicator, label=figure["label"], published=False, period=period["period"],
                start=start, end=end, withheld_reason=WITHHELD_REASON,
            ))  # fmt: skip
    return result


def french_date(day: date) -> str:
    first = "1er" if day.day == 1 else str(day.day)
    return f"{first} {FRENCH_MONTHS[day.month - 1]} {day.year}"


def sample_sentence(sample_size: int, start: date, end: date) -> str:
    """« Sur 412 réponses, du 1er septembre 2026 au 30 novembre 2026 »."""
    answers = "réponse" if sample_size == 1 else "réponses"
    return f"Sur {sample_size} {answers}, du {french_date(start)} au {french_date(end)}"
