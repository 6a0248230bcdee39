"""The publisher's sums of a site's days, made cheaper for issue #14, give what the plain loops
gave: a summed vector read as a tally, and the moved sums when several days moved at once."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from scoring import tally_vectors

pytestmark = pytest.mark.unit


def _plain_tally_of(vector: list[int], cells: dict[int, tuple[str, str]]) -> dict:  # type: ignore[type-arg]
    tally: dict[str, dict[str, int]] = {}
    for spot, n in enumerate(vector, start=1):
        if n:
            item, value = cells[spot]
            tally.setdefault(item, {})[value] = n
    return tally


def test_tally_of_a_vector_names_its_non_zero_counts_only() -> None:
    rng = random.Random(14)
    for _ in range(300):
        width = rng.randint(0, 40)
        cells = {p: (f"item-{p % 7}", str(p)) for p in range(1, width + 1)}
        vector = [rng.choice([0, 0, 1, 5, -2]) for _ in range(width)]
        for spot in [p for p in cells if vector[p - 1] == 0 and rng.random() < 0.3]:
            del cells[spot]  # a position counting nothing needs no name
        tally = tally_vectors.tally_of(vector, tally_vectors.cell_list(cells))
        assert tally == _plain_tally_of(vector, cells)
        assert [list(values.items()) for values in tally.values()] == [
            list(values.items()) for values in _plain_tally_of(vector, cells).values()
        ]


def test_tally_of_a_count_without_its_cell_raises_key_error() -> None:
    # The publisher reads the cells again on KeyError (a cell committed after its vectors).
    with pytest.raises(KeyError):  # beyond the last known position
        tally_vectors.tally_of([1, 0, 2], tally_vectors.cell_list({1: ("a", "1")}))
    with pytest.raises(KeyError):  # in a gap of the positions (a cell not committed yet)
        tally_vectors.tally_of([1, 2, 3], tally_vectors.cell_list({1: ("a", "1"), 3: ("b", "1")}))
    names = tally_vectors.cell_list({1: ("a", "1"), 3: ("b", "1")})
    assert tally_vectors.tally_of([1, 0, 3], names) == {"a": {"1": 1}, "b": {"1": 3}}


def test_moved_sums_with_several_days_moved_in_shared_periods_equal_the_sums_read_again() -> None:
    rng = random.Random(41)
    first = date(2026, 9, 1)
    for _ in range(200):
        days = sorted(rng.sample(range(90), rng.randint(1, 40)))
        before = {first + timedelta(d): [rng.randint(0, 3) for _ in range(rng.randint(0, 9))]
                  for d in days}  # fmt: skip
        after = dict(before)
        for day in rng.sample(sorted(before), min(len(before), rng.randint(1, 8))):
            after[day] = [n + rng.randint(0, 2) for n in before[day]] + [1] * rng.randint(0, 3)
        spans = ((0, 89), (0, 89), (60, 29), (75, 6), (rng.randint(0, 80), 9))
        periods = [(first + timedelta(a), first + timedelta(a + n)) for a, n in spans]
        held = tally_vectors.period_sums(sorted(before.items()), periods)
        moved = tally_vectors.moved_period_sums(held, before, after, periods)
        assert moved == tally_vectors.period_sums(sorted(after.items()), periods)
