"""The one rule that decides what a figure may show, for every output of every service.

A figure computed from fewer answers than a floor is withheld: its value, interval and counts
are removed, its label and sample size stay so the reader knows it is being collected. Public
outputs (screens, open data) use the public floor (default 30 answers); manager outputs (boards,
weekly e-mail, API, CSV) use the anonymity floor (default 5). Services read both from settings
and pass them here; the SQL reporting views apply the same comparison (`n >= floor`).
"""

from __future__ import annotations

from contracts.events import IndicatorFigure

PUBLIC_FLOOR = 30
ANONYMITY_FLOOR = 5


def may_show(sample_size: int, floor: int) -> bool:
    """True when `sample_size` answers are enough to show a figure under `floor`."""
    return sample_size >= floor


def floored(figure: IndicatorFigure, floor: int) -> IndicatorFigure:
    """The figure as it may be shown: below the floor, no value, interval or counts."""
    if may_show(figure.sample_size, floor):
        return figure
    return figure.model_copy(update={"value": None, "interval": None, "counts": {}})
