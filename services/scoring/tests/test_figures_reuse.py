"""`domain.figures(..., since=...)` reuses the figures of the items whose counts did not change
(issue #14): the result must be exactly what computing every figure again gives."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from scoring import domain

from contracts import questionnaire
from contracts.events import IndicatorFigure

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 3, 10, tzinfo=UTC)
FORMS = list(questionnaire.load_all().values())


def _answers(rng: random.Random, form: questionnaire.Questionnaire) -> dict[str, int | str]:
    answers: dict[str, int | str] = {}
    for item in form.items:
        if rng.random() < 0.5:
            continue
        if item.scale_min is not None and item.scale_max is not None:
            answers[item.id] = rng.randint(item.scale_min, item.scale_max)
        elif item.options:
            answers[item.id] = rng.choice(item.options).value
    return answers


def _tally(responses: list[dict[str, int | str]]) -> dict[str, dict[str, int]]:
    return domain.merge(
        {item: {value: 1} for item, value in domain.tally_rows(answers)} for answers in responses
    )


def _dump(figures: list[IndicatorFigure]) -> str:
    return json.dumps([figure.model_dump(mode="json") for figure in figures])


@pytest.mark.parametrize("form", FORMS, ids=[form.version for form in FORMS])
def test_figures_reused_from_an_earlier_tally_equal_figures_computed_again(form):
    rng = random.Random(form.version)
    for _ in range(150):
        before = [_answers(rng, form) for _ in range(rng.choice([0, 1, 3, 40]))]
        after = before + [_answers(rng, form) for _ in range(rng.choice([0, 1, 2, 5]))]
        old, new = _tally(before), _tally(after)
        cohort = domain.cohort_of(rng.randint(0, 60), rng.randint(0, 60))
        earlier = domain.figures(old, invitations=cohort, questionnaire=form, now=NOW)
        again = domain.figures(new, invitations=cohort, questionnaire=form, now=NOW)
        reused = domain.figures(
            new, invitations=cohort, questionnaire=form, now=NOW, since=(old, earlier)
        )
        assert reused == again
        assert _dump(reused) == _dump(again)
