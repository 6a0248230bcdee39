"""The count vectors (migration 0151) hold exactly the tally rows they replace, and adding the
vectors of any split of the responses gives the very arrays of the whole (the rebuild compares
arrays as they are)."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import count

from hypothesis import given
from hypothesis import strategies as st
from scoring import domain, repository, tally_vectors

ITEMS = {"recommandation": [str(n) for n in range(11)], "effort": ["1", "5", "7"],
         "plusieurs_contacts": ["oui", "non"], "suggestion": ["du texte", "  "]}  # fmt: skip

answers = st.fixed_dictionaries(
    {}, optional={item: st.sampled_from(values) for item, values in ITEMS.items()}
)
responses = st.lists(
    st.tuples(
        st.sampled_from(["s1", "s2"]),
        st.sampled_from(["2026-01-01", "2026-01-02"]),
        st.sampled_from(["telephone", "courriel"]),
        st.just("declaration"),
        st.sampled_from(["", "information"]),
        st.just(""),
        answers,
    ),
    max_size=40,
)


def tallied(
    raw: list[tuple[str, str, str, str, str, str, dict[str, str]]],
) -> list[tally_vectors.TalliedResponse]:
    return [(*key, dict(domain.tally_rows(a))) for *key, a in raw]  # type: ignore[misc]


def layout(batch: list[tally_vectors.TalliedResponse]) -> dict[tally_vectors.Cell, int]:
    position = count(1)
    return {cell: next(position) for cell in sorted(tally_vectors.cells_of(batch), reverse=True)}


def as_rows(
    vectors: dict[tuple[str, ...], list[int]], cells: dict[int, tally_vectors.Cell]
) -> Counter[tuple[str, ...]]:
    return Counter(
        {
            (*key, *cell): n
            for key, vector in vectors.items()
            for cell, n in tally_vectors.cells_from_vector(vector, cells).items()
        }
    )


def add(a: list[int], b: list[int]) -> list[int]:
    """What the upsert's element-wise sum does (the shorter padded with zeros)."""
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    return [x + (shorter[n] if n < len(shorter) else 0) for n, x in enumerate(longer)]


@given(responses)
def test_vectors_hold_exactly_the_tally_rows(raw):
    batch = tallied(raw)
    positions = layout(batch)
    site_days = tally_vectors.fold(batch, positions)
    cells = {spot: cell for cell, spot in positions.items()}
    by_site_day: Counter[tuple[str, ...]] = Counter()
    for site, day, _channel, _motif, _nature, _profile, response_cells in batch:
        for item, value in response_cells.items():
            by_site_day[(site, day, item, value)] += 1
    assert as_rows(site_days, cells) == by_site_day  # type: ignore[arg-type]
    for vector in site_days.values():
        assert vector and vector[-1] > 0  # ends at its last non-zero count


@given(responses, st.integers(min_value=0, max_value=40))
def test_the_vectors_of_any_split_add_up_to_the_same_arrays(raw, cut):
    batch = tallied(raw)
    positions = layout(batch)
    whole = tally_vectors.fold(batch, positions)
    summed = tally_vectors.fold(batch[:cut], positions)
    for key, vector in tally_vectors.fold(batch[cut:], positions).items():
        summed[key] = add(summed[key], vector) if key in summed else vector
    assert summed == whole


def test_array_literal():
    assert tally_vectors.literal([3, 0, 12]) == "{3, 0, 12}"
    assert tally_vectors.literal((3,)) == "{03}"
    assert tally_vectors.literal([1, 0, 9]) == "{01,00,09}"
    assert tally_vectors.literal([1, 0, 300]) == "{1, 0, 300}"
    assert tally_vectors.literal([]) == "{}"


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=120))
def test_an_array_literal_holds_the_vectors_counts_in_order(vector):
    """What PostgreSQL's array input reads: the counts, in order, as decimal integers
    (leading zeros allowed); test_counted_once has PostgreSQL read them."""
    text = tally_vectors.literal(vector)
    assert text[0] == "{" and text[-1] == "}"
    assert [int(part) for part in text[1:-1].split(",") if part.strip()] == vector


days = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40).map(lambda n: date(2026, 1, 1) + timedelta(n)),
        st.lists(st.integers(min_value=0, max_value=5), max_size=6),
    ),
    max_size=12,
    unique_by=lambda day: day[0],
).map(sorted)
spans = st.lists(
    st.tuples(st.integers(min_value=-3, max_value=45), st.integers(min_value=0, max_value=50)).map(
        lambda s: (date(2026, 1, 1) + timedelta(s[0]), date(2026, 1, 1) + timedelta(s[0] + s[1]))
    ),
    max_size=8,
)


@given(days, spans)
def test_period_sums_are_the_sums_of_the_days_in_each_period(day_vectors, periods):
    """What the publisher's tallies are made of: the summed vector of each period names the
    same counts as adding, day by day, the vectors of the days inside it."""
    names = tally_vectors.cell_list({spot: ("item", str(spot)) for spot in range(1, 7)})
    for (start, end), summed in zip(
        periods, tally_vectors.period_sums(day_vectors, periods), strict=True
    ):
        expected = [0] * 6
        for day, vector in day_vectors:
            if start <= day <= end:
                expected = add(expected, vector)
        assert tally_vectors.tally_of(summed, names) == tally_vectors.tally_of(expected, names)
        assert sum(summed) == sum(expected)


@given(days, spans)
def test_period_cohorts_sum_invitations_and_answers_and_keep_the_last_expiry(day_vectors, periods):
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    cohort_days = [
        (day, sum(v), len(v), moment + timedelta(hours=sum(v)) if v else None)
        for day, v in day_vectors
    ]
    for (start, end), cohort in zip(
        periods, tally_vectors.period_cohorts(cohort_days, periods), strict=True
    ):
        inside = [day for day in cohort_days if start <= day[0] <= end]
        expiries = [day[3] for day in inside if day[3] is not None]
        assert cohort == (
            sum(day[1] for day in inside),
            sum(day[2] for day in inside),
            max(expiries) if expiries else None,
        )


def test_the_json_documents_are_what_json_dumps_wrote():
    rows = [
        ["rsp-1", "inv-1", None, "site-é", "2026-03-01", "2026-03-01T10:00:00+01:00", "telephone",
         "déclaration", "", "employeur", {"suggestion": "present", "canal": "accueil « physique »",
                                          "note": 'a "quoted" \\ back\tslash\n'}],
        ["site-1", "2026-03-01", "{0, 1, 0, 2}"],
    ]  # fmt: skip
    document = repository.json_document(rows)
    assert isinstance(document, str)
    assert json.loads(document) == json.loads(json.dumps(rows, ensure_ascii=False, default=str))


def test_period_sums_moved_by_the_changed_days_equal_the_sums_read_again() -> None:
    """The publisher adds the days a batch changed to the sums it holds (issue #14): the same
    lists as summing every day again, for changed, new, removed, wider and narrower days."""
    for seed in range(300):
        _check_moved_sums(random.Random(seed))


def _check_moved_sums(rng: random.Random) -> None:
    first = date(2026, 9, 1)

    def vector() -> list[int]:
        width = rng.randint(0, 12)
        return [rng.randint(0, 3) for _ in range(width - 1)] + [rng.randint(1, 3)] * (width > 0)

    days = sorted(rng.sample(range(90), rng.randint(0, 30)))
    before = {first + timedelta(days=d): vector() for d in days}
    after = dict(before)
    for day in list(after):
        roll = rng.random()
        if roll < 0.15:
            del after[day]
        elif roll < 0.4:
            after[day] = vector()
    for d in rng.sample(range(90), rng.randint(0, 5)):
        after.setdefault(first + timedelta(days=d), vector())
    after = dict(sorted(after.items()))
    periods = [
        (first + timedelta(days=a), first + timedelta(days=a + rng.randint(0, 40)))
        for a in (rng.randint(-5, 95) for _ in range(8))
    ]
    held = tally_vectors.period_sums(sorted(before.items()), periods)
    moved = tally_vectors.moved_period_sums(held, before, after, periods)
    assert moved == tally_vectors.period_sums(sorted(after.items()), periods)
