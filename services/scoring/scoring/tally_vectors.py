"""Pure: a batch of tallied responses folded into count vectors, one per site and day
(migrations 0151 and 0270: the breakdowns are read from the responses' facts). No I/O.

A vector's element p-1 counts the cell (item, value) at position p of `tally_cells`; a vector
ends at its last non-zero count, so adding vectors of the same responses in any split and
order gives the same array (the rebuild compares them as they are).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from itertools import accumulate, compress
from operator import add, sub

Cell = tuple[str, str]
"""(item id, value as text), as `domain.tally_rows` gives them."""
SiteDay = tuple[str, str]
TalliedResponse = tuple[str, str, str, str, str, str, dict[str, str]]
"""One response: site, day (ISO date), channel, motif, nature, profile (its fact's breakdown
key), and its cells {item: value as text}."""


def cells_of(responses: Iterable[TalliedResponse]) -> set[Cell]:
    return {cell for response in responses for cell in response[6].items()}


Vectors = dict[SiteDay, list[int]]


def fold(
    responses: Sequence[TalliedResponse], positions: Mapping[Cell, int],
    into: Vectors | None = None,
) -> Vectors:  # fmt: skip
    """+1 per cell of each response, summed per site and day. `positions` must hold every cell
    of the batch (1-based positions). `into`: vectors to add to (changed in place and returned;
    the rebuild folds every batch into one), else new ones. On a missing cell (KeyError),
    `into` may hold part of the batch: check first."""
    site_days: Vectors = into if into is not None else {}
    for site, day, _channel, _motif, _nature, _profile, cells in responses:
        spots = [positions[cell] for cell in cells.items()]
        if not spots:
            continue
        top = max(spots)
        vector = site_days.get((site, day))
        if vector is None:
            vector = site_days[site, day] = [0] * top
        elif len(vector) < top:
            vector.extend([0] * (top - len(vector)))
        for spot in spots:
            vector[spot - 1] += 1
    return site_days


def literal(vector: Sequence[int]) -> str:
    """PostgreSQL's text form of an integer[] (cast with ::integer[] in SQL). Most vectors count
    0 to 9 in every cell (a batch's few responses per site and day): those are written as
    `{00,01,...}` by `bytes.hex` in C, four times a list's repr (array input reads the leading
    zero as a decimal digit); others as a list's repr, with braces (array input allows the
    spaces)."""
    try:
        packed = bytes(vector)  # ValueError outside 0..255
    except ValueError:
        packed = None
    if packed is not None and not packed.translate(None, _DIGITS):  # every count 0..9
        return "{" + packed.hex(",") + "}"
    return "{" + str(vector if isinstance(vector, list) else list(vector))[1:-1] + "}"


_DIGITS = bytes(range(10))


def cells_from_vector(vector: Sequence[int], cells: Mapping[int, Cell]) -> dict[Cell, int]:
    """The non-zero counts of a vector, by cell (`cells`: position -> cell)."""
    return {cells[spot]: n for spot, n in enumerate(vector, start=1) if n}


def period_sums(
    days: Sequence[tuple[date, Sequence[int]]], periods: Sequence[tuple[date, date]]
) -> list[list[int]]:
    """The element-wise sum of the day vectors of each (start, end) period, both days included;
    `days` sorted by day, one vector per day (a site's `site_day_vectors`). Prefix sums: each
    day's vector is added once, each period is then one subtraction, however long."""
    width = max((len(vector) for _, vector in days), default=0)
    zero = [0] * width
    prefix = list(accumulate(
        ([*vector, *zero[len(vector):]] for _, vector in days),
        lambda total, vector: list(map(add, total, vector)), initial=zero,
    ))  # fmt: skip
    moments = [day for day, _ in days]
    sums = []
    for start, end in periods:
        low, high = bisect_left(moments, start), bisect_right(moments, end)
        sums.append(list(map(sub, prefix[high], prefix[low])) if high > low else [])
    return sums


def moved_period_sums(
    sums: Sequence[Sequence[int]], before: Mapping[date, Sequence[int]],
    after: Mapping[date, Sequence[int]], periods: Sequence[tuple[date, date]],
) -> list[list[int]]:  # fmt: skip
    """`period_sums(sorted(after.items()), periods)` from `sums`, the same periods' sums of
    `before`: only the days whose vector changed (a vector that did not change is the same
    object in both) are taken away and added, rather than every day summed again."""
    width = max((len(vector) for vector in after.values()), default=0)
    moments = sorted(after)
    moved = [day for day in before.keys() | after.keys() if before.get(day) is not after.get(day)]
    room = max([width, *(len(vector) for vector in sums), *(len(before.get(d, ())) for d in moved)])
    zero = [0] * room
    deltas = {  # each moved day's change, as long as the longest vector involved
        day: list(map(sub, [*after.get(day, ()), *zero[len(after.get(day, ())) :]],
                      [*before.get(day, ()), *zero[len(before.get(day, ())) :]]))
        for day in moved
    }  # fmt: skip
    result: list[list[int]] = []
    combined: dict[tuple[date, ...], list[int] | None] = {}  # the moved days of a period: their
    for (start, end), summed in zip(periods, sums, strict=True):  # deltas added once, shared
        if bisect_left(moments, start) >= bisect_right(moments, end):
            result.append([])
            continue
        inside = tuple(day for day in deltas if start <= day <= end)
        if inside not in combined:
            combined[inside] = _added([deltas[day] for day in inside])
        delta = combined[inside]
        total = [*summed, *zero[len(summed) :]]
        if delta is not None:
            total = list(map(add, total, delta))
        del total[width:]  # beyond every vector of `after`: zeros
        result.append(total)
    return result


def _added(vectors: Sequence[Sequence[int]]) -> list[int] | None:
    """The element-wise sum of vectors of the same length (None: no vector)."""
    if not vectors:
        return None
    total = list(vectors[0])
    for vector in vectors[1:]:
        total = list(map(add, total, vector))
    return total


def cell_list(cells: Mapping[int, Cell]) -> list[Cell | None]:
    """Position -> cell as a list (element p-1 names position p; None: a gap in the positions,
    a cell whose transaction rolled back or is not committed yet), what `tally_of` reads."""
    names: list[Cell | None] = [None] * max(cells, default=0)
    for position, cell in cells.items():
        names[position - 1] = cell
    return names


def tally_of(vector: Sequence[int], names: Sequence[Cell | None]) -> dict[str, dict[str, int]]:
    """A summed vector as a tally {item: {value: count}} (its non-zero counts only). A count
    whose cell `names` does not know raises KeyError: read the cells again."""
    if len(vector) > len(names):  # zeros past the last cell known need no name
        if any(vector[len(names) :]):
            raise KeyError(len(vector))
        vector = vector[: len(names)]
    tally: dict[str, dict[str, int]] = {}
    # The non-zero counts and their cells, picked in C (`compress`): most cells of a period's
    # vector count something, the `if` per element cost a third of the time.
    for name, n in zip(compress(names, vector), compress(vector, vector), strict=True):
        if name is None:
            raise KeyError(name)
        item, value = name
        counts = tally.get(item)
        if counts is None:
            tally[item] = counts = {}
        counts[value] = n
    return tally


def period_cohorts(
    days: Sequence[tuple[date, int, int, datetime | None]], periods: Sequence[tuple[date, date]]
) -> list[tuple[int, int, datetime | None]]:
    """Each (start, end) period's invitations, answers to them and last expiry (None without
    any), from the cohorts of its send days (`days` sorted by day)."""
    moments = [day[0] for day in days]
    # Prefix sums: each period is then two subtractions; the expiries' maximum in C.
    invited = list(accumulate((day[1] for day in days), initial=0))
    answered = list(accumulate((day[2] for day in days), initial=0))
    expiries = [day[3] for day in days]
    cohorts = []
    for start, end in periods:
        low, high = bisect_left(moments, start), bisect_right(moments, end)
        if high < low:
            high = low
        cohorts.append((invited[high] - invited[low], answered[high] - answered[low],
                        max(filter(None, expiries[low:high]), default=None)))  # fmt: skip
    return cohorts
