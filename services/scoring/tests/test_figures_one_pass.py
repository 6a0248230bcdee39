"""`domain.figures` computes a scale item's ratings, their number, sum and sum of squares in one
pass and shares them between the item's share and mean (issue #14): each figure must be the
one the published formulas give from the item's ratings taken the plain way, to the last bit,
whatever texts the tally holds (a zero count, "08" beside "8", a text that is no rating)."""

from __future__ import annotations

import json
import random

import pytest
from scoring import domain

from contracts import questionnaire

pytestmark = pytest.mark.unit

FORMS = list(questionnaire.load_all().values())


def _plain_ratings(values: dict[str, int]) -> dict[int, int]:
    ratings: dict[int, int] = {}
    for text, count in values.items():
        try:
            rating = int(text)
        except ValueError:
            continue
        if count:
            ratings[rating] = ratings.get(rating, 0) + count
    return ratings


def _odd_values(rng: random.Random, low: int, high: int) -> dict[str, int]:
    values = {
        str(v): rng.choice([0, 1, 2, 7, 300]) for v in range(low, high + 1) if rng.random() < 0.8
    }
    if rng.random() < 0.3:
        values[f"0{rng.randint(low, high)}"] = rng.randint(1, 5)  # the same rating, another text
    if rng.random() < 0.2:
        values["autre"] = rng.randint(1, 5)  # no rating: skipped
    return values


def _expected(figure, ratings: dict[int, int], item):  # type: ignore[no-untyped-def]
    n = sum(ratings.values())
    if figure.indicator == "nps":
        promoters = sum(c for v, c in ratings.items() if v >= domain.PROMOTER_MIN)
        detractors = sum(c for v, c in ratings.items() if v <= domain.DETRACTOR_MAX)
        value = (promoters - detractors) / n * 100 if n else None
        counts = {"promoters": promoters, "passives": n - promoters - detractors,
                  "detractors": detractors}  # fmt: skip
        return value, domain.nps_interval(promoters, detractors, n), n, counts
    if figure.unit == "percent":
        threshold = domain.CES_AGREE_MIN if figure.indicator == "ces" else domain.SATISFIED_MIN
        k = sum(c for v, c in ratings.items() if v >= threshold)
        name = "agree" if figure.indicator == "ces" else "satisfied"
        return (k / n * 100 if n else None), domain.wilson_interval(k, n), n, {name: k, "total": n}
    bounds = (float(item.scale_min), float(item.scale_max))
    value, interval = domain.mean_interval(ratings, bounds=bounds)
    return value, interval, n, {str(v): c for v, c in sorted(ratings.items())}


@pytest.mark.parametrize("form", FORMS, ids=[form.version for form in FORMS])
def test_scale_figures_equal_the_formulas_on_plainly_parsed_ratings(form):
    rng = random.Random(form.version)
    scales = [item for item in form.items if item.kind is questionnaire.ItemKind.SCALE]
    by_indicator = {}
    for item in scales:
        for indicator in (item.id, f"{item.id}_share"):
            by_indicator[indicator] = item
    named = {"recommandation": ["nps"], "effort": ["ces", "ces_mean"],
             "satisfaction_globale": ["satisfaction", "satisfaction_mean"]}  # fmt: skip
    for item_id, shares in named.items():
        for indicator in shares:
            by_indicator[indicator] = next((i for i in scales if i.id == item_id), None)
    checked = 0
    for _ in range(200):
        tally = {
            item.id: _odd_values(rng, item.scale_min, item.scale_max)
            for item in scales
            if rng.random() < 0.9 and item.scale_min is not None and item.scale_max is not None
        }
        tally[domain.RESPONSES_ITEM] = {"1": 500}
        for figure in domain.figures(tally, invitations=600, questionnaire=form):
            item = by_indicator.get(figure.indicator)
            if item is None:
                continue
            value, interval, n, counts = _expected(
                figure, _plain_ratings(tally.get(item.id, {})), item
            )
            assert (figure.value, figure.interval, figure.sample_size, figure.counts) == (
                value, interval, n, counts
            ), figure.indicator  # fmt: skip
            assert json.dumps(figure.model_dump(mode="json")["counts"]) == json.dumps(counts)
            checked += 1
    assert checked > 500
