"""Pure: a batch of tallied responses folded into count vectors, one per breakdown key and one
per site and day (migration 0151). No I/O.

A vector's element p-1 counts the cell (item, value) at position p of `tally_cells`; a vector
ends at its last non-zero count, so adding vectors of the same responses in any split and
order gives the same array (the rebuild compares them as they are).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

Cell = tuple[str, str]
"""(item id, value as text), as `domain.tally_rows` gives them."""
BreakdownKey = tuple[str, str, str, str, str, str]
"""site, day (ISO date), channel, motif, nature, profile."""
SiteDay = tuple[str, str]
K = TypeVar("K", BreakdownKey, SiteDay)
TalliedResponse = tuple[str, str, str, str, str, str, dict[str, str]]
"""One response: its breakdown key and its cells {item: value as text}."""


def cells_of(responses: Iterable[TalliedResponse]) -> set[Cell]:
    return {cell for response in responses for cell in response[6].items()}


def fold(
    responses: Sequence[TalliedResponse], positions: Mapping[Cell, int]
) -> tuple[dict[BreakdownKey, list[int]], dict[SiteDay, list[int]]]:
    """+1 per cell of each response, summed per breakdown key and per site and day.
    `positions` must hold every cell of the batch (1-based positions)."""
    breakdown: dict[BreakdownKey, list[int]] = {}
    site_days: dict[SiteDay, list[int]] = {}
    for site, day, channel, motif, nature, profile, cells in responses:
        spots = [positions[cell] for cell in cells.items()]
        if not spots:
            continue
        top = max(spots)
        _add(breakdown, (site, day, channel, motif, nature, profile), spots, top)
        _add(site_days, (site, day), spots, top)
    return breakdown, site_days


def _add(vectors: dict[K, list[int]], key: K, spots: list[int], top: int) -> None:
    vector = vectors.get(key)
    if vector is None:
        vector = vectors[key] = [0] * top
    elif len(vector) < top:
        vector.extend([0] * (top - len(vector)))
    for spot in spots:
        vector[spot - 1] += 1


def literal(vector: Sequence[int]) -> str:
    """PostgreSQL's text form of an integer[] (cast with ::integer[] in SQL)."""
    return "{" + ",".join(map(str, vector)) + "}"


def cells_from_vector(vector: Sequence[int], cells: Mapping[int, Cell]) -> dict[Cell, int]:
    """The non-zero counts of a vector, by cell (`cells`: position -> cell)."""
    return {cells[spot]: n for spot, n in enumerate(vector, start=1) if n}
