"""The managers' breakdown: figures per cell, and the anonymity floor."""

from __future__ import annotations

import pytest
from scoring.domain import RESPONSES_ITEM, breakdown_cells

from contracts.questionnaire import load

pytestmark = pytest.mark.unit


def tally(responses: int, **items: dict[str, int]) -> dict[str, dict[str, int]]:
    return {RESPONSES_ITEM: {"1": responses}, **items}


def test_a_cell_below_the_floor_is_withheld_whole() -> None:
    cells = breakdown_cells(
        {"courriel": tally(4, recommandation={"10": 4}), "telephone": tally(5)},
        invitations={}, fcr={}, questionnaire=load(), floor=5,
    )  # fmt: skip
    assert [(c.value, c.responses, c.figures is None) for c in cells] == [
        ("courriel", 4, True), ("telephone", 5, False),
    ]  # fmt: skip


def test_a_figure_answered_by_too_few_is_blanked_inside_a_shown_cell() -> None:
    cell = breakdown_cells(
        {"telephone": tally(6, recommandation={"9": 3, "3": 3}, effort={"7": 2})},
        invitations={"telephone": 12}, fcr={"telephone": (3, 1, 2)},
        questionnaire=load(), floor=5,
    )[0]  # fmt: skip
    assert cell.figures is not None
    figures = {figure.indicator: figure for figure in cell.figures}
    assert figures["nps"].value == 0 and figures["nps"].sample_size == 6
    assert figures["ces"].sample_size == 2
    assert figures["ces"].value is None and figures["ces"].counts == {}
    assert figures["ces"].interval is None
    assert figures["response_rate"].value == 50
    assert figures["fcr_observed"].provisional is True
    assert figures["satisfaction"].sample_size == 0  # nobody answered: nothing to blank


def test_cells_known_only_from_invitations_or_contacts_are_listed_withheld() -> None:
    cells = breakdown_cells(
        {}, invitations={"sms": 3}, fcr={"chat": (1, 0, 0)}, questionnaire=load(), floor=5
    )
    assert [(c.value, c.responses, c.figures) for c in cells] == [
        ("chat", 0, None),
        ("sms", 0, None),
    ]
