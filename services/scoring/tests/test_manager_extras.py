"""Issue #15, what managers also expect: pure parts (past ISO weeks, survey-channel rates and
the reminder's effect, the CSV export and its neutralised cells)."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from scoring import domain
from scoring.extras import render_csv

from contracts.questionnaire import load

pytestmark = pytest.mark.unit


def test_a_past_iso_week_is_monday_to_sunday_and_a_bad_one_is_none() -> None:
    week = domain.iso_week_period("2026-W01")
    assert week == domain.Period("2026-W01", date(2025, 12, 29), date(2026, 1, 4))
    assert domain.iso_week_period("2020-W53") is not None  # a 53-week year
    for bad in ("2026-W54", "2026-W00", "2026-53", "26-W01", "2026-W1"):
        assert domain.iso_week_period(bad) is None


def test_survey_channel_rates_and_the_reminders_effect_go_through_the_floor() -> None:
    rows = domain.survey_channel_rows(
        {"email": (20, 10, 12, 8, 4), "sms": (9, 0, 4, 4, 0)}, floor=5
    )
    email, sms = rows
    assert (sms.survey_channel, sms.invitations, sms.answered, sms.figures) == ("sms", 9, 4, None)
    assert email.figures is not None
    figures = {figure.indicator: figure for figure in email.figures}
    assert figures["response_rate"].value == 60.0
    assert figures["response_rate_before_reminder"].value == 40.0
    assert figures["reminded_answered"].value == 40.0  # 4 of the 10 reminded
    assert figures["answers_after_reminder"].counts == {"after": 4, "total": 12}
    assert all(figure.interval is not None for figure in email.figures)


def test_a_reminder_figure_below_the_floor_is_blanked_inside_a_shown_row() -> None:
    [row] = domain.survey_channel_rows({"email": (10, 3, 6, 4, 2)}, floor=5)
    assert row.figures is not None
    reminded = {figure.indicator: figure for figure in row.figures}["reminded_answered"]
    assert (reminded.sample_size, reminded.value, reminded.counts) == (3, None, {})


def cell(value: str, responses: int, **items: dict[str, int]) -> domain.BreakdownCell:
    tally = {domain.RESPONSES_ITEM: {"1": responses}, **items}
    [shown] = domain.breakdown_cells(
        {value: tally}, invitations={}, fcr={}, questionnaire=load(), floor=5
    )
    return shown


def test_the_export_has_every_cell_and_verbatims_only_above_the_floor() -> None:
    week = domain.Period("2026-W10", date(2026, 3, 2), date(2026, 3, 8))
    breakdowns = {"channel": [cell("telephone", 6, recommandation={"9": 6}), cell("sms", 2)]}
    verbatims = [(date(2026, 3, 3), "telephone", "=1+1 merci", 9)]
    rows = domain.export_rows(
        site_id="s1", period=week, breakdowns=breakdowns, verbatims=verbatims, responses=8,
        floor=5,
    )  # fmt: skip
    withheld = [row for row in rows if row["cellule"] == "sms"]
    assert withheld == [{
        "site": "s1", "periode": "2026-W10", "date_debut": "2026-03-02",
        "date_fin": "2026-03-08", "section": "ventilation", "dimension": "channel",
        "cellule": "sms", "libelle": "moins de réponses que le seuil d'anonymat",
    }]  # fmt: skip
    nps = next(row for row in rows if row.get("indicateur") == "nps")
    assert (nps["valeur"], nps["nombre_reponses"]) == ("100.0", "6")
    parsed = list(csv.DictReader(io.StringIO(render_csv(rows)), delimiter=";"))
    [verbatim] = [row for row in parsed if row["section"] == "verbatim"]
    assert verbatim["texte"] == "'=1+1 merci"  # a formula becomes text
    assert verbatim["valeur"] == "9"
    few = domain.export_rows(
        site_id="s1", period=week, breakdowns=breakdowns, verbatims=verbatims, responses=4,
        floor=5,
    )  # fmt: skip
    assert not any(row["section"] == "verbatim" for row in few)


def test_the_export_neutralises_a_formula_in_any_cell_a_crm_can_name() -> None:
    week = domain.Period("2026-W10", date(2026, 3, 2), date(2026, 3, 8))
    rows = domain.export_rows(
        site_id="s1", period=week, breakdowns={"motif": [cell("-cmd|calc", 1)]}, verbatims=[],
        responses=1, floor=5,
    )  # fmt: skip
    [row] = list(csv.DictReader(io.StringIO(render_csv(rows)), delimiter=";"))
    assert row["cellule"] == "'-cmd|calc"
