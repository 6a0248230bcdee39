"""Issue #15, what managers also expect: past ISO weeks, team results, the response rate by
survey channel and the reminder's effect, breakdowns by the user's own answers, and the CSV
export. Reads through `repository`, figures through `domain`; every figure through the one
floor function (contracts.floors) at the anonymity floor."""

# No `from __future__ import annotations`: FastAPI reads the aliases below as objects.

import csv
import io
import json
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Query

from contracts import questionnaire
from contracts.envelope import utc_now
from contracts.floors import may_show
from contracts.spreadsheet import spreadsheet_text
from plumbing.db import Connection
from scoring import domain, irritants, repository, themes
from scoring.settings import ScoringSettings

Week = Annotated[
    str | None,
    Query(max_length=8, description="Une semaine ISO passée, « 2026-W47 » (au lieu de period)."),
]
Answers = Annotated[
    Literal["crm", "user"],
    Query(description="« user » : les réponses corrigées par l'usager (canal, nature, profil) "
          "remplacent celles du CRM."),
]  # fmt: skip
Theme = Annotated[
    str | None,
    Query(max_length=40, description="Issue #17 : un thème, « delais », « courtoisie », ..."),
]
Tone = Annotated[
    str | None,
    Query(max_length=20, description="Issue #17 : irritant, satisfaction, suggestion, neutre."),
]
DIMENSIONS = ("channel", "motif", "nature", "profile")


def check_tagging(theme: str | None, tone: str | None) -> None:
    """400 with the expected values, in French, for a theme or tone the tagger never gives."""
    if theme is not None and theme not in themes.THEMES:
        raise HTTPException(400, "thème inconnu ; valeurs possibles : " + ", ".join(themes.THEMES))
    if tone is not None and tone not in themes.TONES:
        raise HTTPException(400, "ton inconnu ; valeurs possibles : " + ", ".join(themes.TONES))


def week_or_422(week: str) -> domain.Period:
    chosen = domain.iso_week_period(week)
    if chosen is None:
        raise HTTPException(422, "semaine ISO invalide (attendu : AAAA-Wnn)")
    return chosen


def _cells(
    tallies: dict[str, dict[str, dict[str, int]]], settings: ScoringSettings, *,
    fcr: dict[str, tuple[int, int, int]] | None = None,
    cohorts: dict[str, repository.Counts] | None = None,
) -> list[domain.BreakdownCell]:  # fmt: skip
    """Each cell: the indicators of the questionnaire versions its responses carry."""
    forms = questionnaire.load_all()
    form = domain.questionnaire_of(tallies.values(), forms, fallback=questionnaire.load())
    return domain.breakdown_cells(
        tallies, fcr=fcr or {}, questionnaire=form, forms=forms, floor=settings.anonymity_floor,
        invitations={cell: domain.cohort_of(*counts) for cell, counts in (cohorts or {}).items()},
        now=utc_now(),
    )  # fmt: skip


async def crm_cells(
    conn: Connection, settings: ScoringSettings, *, site_id: str, period: domain.Period,
    start: datetime, end: datetime, dimension: str,
) -> list[domain.BreakdownCell]:  # fmt: skip
    """The breakdown by what the CRM said: tallies, each cell's invitation cohort (its response
    rate) and observed first-contact resolution."""
    tallies = await repository.tally_by(
        conn, site_id=site_id, start=period.start, end=period.end, dimension=dimension
    )
    cohorts = await repository.cohorts_by(
        conn, site_id=site_id, start=period.start, end=period.end, dimension=dimension
    )
    fcr = await repository.fcr_counts_by(
        conn, site_id=site_id, start=start, end=end, window_days=settings.fcr_window_days,
        as_of=utc_now(), dimension=dimension,
    )  # fmt: skip
    return _cells(tallies, settings, fcr=fcr, cohorts=cohorts)


async def corrected_cells(
    conn: Connection, settings: ScoringSettings, *, site_id: str, period: domain.Period,
    dimension: str,
) -> list[domain.BreakdownCell]:  # fmt: skip
    """The breakdown by the user's own answers (`canal`, `nature_demande`, `profil`) where they
    gave one. No response rate nor observed resolution here: invitations and contacts only
    know the CRM's values."""
    tallies = await repository.corrected_tally_by(
        conn, site_id=site_id, start=period.start, end=period.end, dimension=dimension
    )
    return _cells(tallies, settings)


async def team_cells(
    conn: Connection, settings: ScoringSettings, *, site_id: str, period: domain.Period
) -> list[domain.BreakdownCell]:
    tallies = await repository.team_tally(conn, site_id=site_id, start=period.start, end=period.end)
    return _cells(tallies, settings)


async def survey_channel_rows(
    conn: Connection, settings: ScoringSettings, *, site_id: str, period: domain.Period
) -> list[domain.SurveyChannelRow]:
    counts = await repository.survey_channel_counts(
        conn, site_id=site_id, start=period.start, end=period.end
    )
    return domain.survey_channel_rows(counts, floor=settings.anonymity_floor)


async def export_csv(
    conn: Connection, settings: ScoringSettings, *, site_id: str, period: domain.Period,
    start: datetime, end: datetime, theme: str | None = None, tone: str | None = None,
) -> str:  # fmt: skip
    breakdowns = {
        dimension: await crm_cells(
            conn,
            settings,
            site_id=site_id,
            period=period,
            start=start,
            end=end,
            dimension=dimension,
        )
        for dimension in DIMENSIONS
    }
    tally = await repository.tally_between(
        conn, site_id=site_id, start=period.start, end=period.end
    )
    verbatims = await repository.verbatims_between(
        conn, site_id=site_id, start=period.start, end=period.end, theme=theme, tone=tone
    )
    rows = domain.export_rows(
        site_id=site_id, period=period, breakdowns=breakdowns,
        verbatims=[(r["day"], r["channel"], r["text"], r["satisfaction"],
                    theme_words(r["themes"], r["tone"]), irritants.tone_label(r["tone"]))
                   for r in verbatims],
        responses=domain.response_count(tally), floor=settings.anonymity_floor,
    )  # fmt: skip
    return render_csv(rows)


def theme_words(codes: list[str] | None, tone: str | None) -> str:
    """A verbatim's themes in French; « non classé » before tagging (migration 0240)."""
    if tone is None:
        return irritants.UNTAGGED
    return ", ".join(irritants.theme_label(code) for code in codes or ()) or "aucun thème"


async def period_verbatims(
    conn: Connection, settings: ScoringSettings, *, site_id: str, period: domain.Period,
    theme: str | None, tone: str | None,
) -> tuple[int, list[dict[str, Any]] | None]:  # fmt: skip
    """The period's responses and its verbatims with their themes, tone and trigger words,
    None below the anonymity floor (as the CSV and the weekly e-mail)."""
    tally = await repository.tally_between(
        conn, site_id=site_id, start=period.start, end=period.end
    )
    responses = domain.response_count(tally)
    if not may_show(responses, settings.anonymity_floor):
        return responses, None
    rows = await repository.verbatims_between(
        conn, site_id=site_id, start=period.start, end=period.end, theme=theme, tone=tone
    )
    return responses, [verbatim_json(row) for row in rows]


def verbatim_json(row: Any) -> dict[str, Any]:
    words = row["trigger_words"] or {}
    if isinstance(words, str):  # a connection without plumbing.db's JSON codec
        words = json.loads(words)
    return {
        "day": row["day"].isoformat(), "channel": row["channel"], "motif": row["motif"],
        "text": row["text"], "satisfaction": row["satisfaction"],
        "recommandation": row["recommandation"], "effort": row["effort"],
        "tagged": row["tone"] is not None, "themes": list(row["themes"] or []),
        "theme_labels": theme_words(row["themes"], row["tone"]),
        "tone": row["tone"], "tone_label": irritants.tone_label(row["tone"]),
        "trigger_words": words,
    }  # fmt: skip


async def week_irritants(
    conn: Connection, settings: ScoringSettings, *, site_id: str, monday: date,
    limit: int | None = None,
) -> list[irritants.Irritant] | None:  # fmt: skip
    """The week's top irritant themes with their trend (scoring.irritants), None below the
    anonymity floor; one query for the week and its four previous weeks."""
    weeks = await repository.irritant_weeks(
        conn, site_id=site_id, first_monday=monday - timedelta(weeks=irritants.HISTORY_WEEKS),
        last_monday=monday,
    )  # fmt: skip
    return irritants.weekly_top_irritants(
        {day: irritants.SiteWeek(n, counts) for day, (n, counts) in weeks.items()},
        monday, floor=settings.anonymity_floor, limit=limit,
    )  # fmt: skip


def irritant_json(irritant: irritants.Irritant) -> dict[str, Any]:
    return {
        "theme": irritant.theme, "label": irritant.label, "count": irritant.count,
        "previous_mean": irritant.previous_mean, "trend": irritant.trend,
        "trend_text": irritant.trend_text,
        "change": irritant.change.as_json() if irritant.change else None,
    }  # fmt: skip


def render_csv(rows: list[dict[str, str]]) -> str:
    """`;` and UTF-8 as the open-data CSV; every text cell neutralised (contracts.spreadsheet),
    numbers too (they are written by us, but a cell's origin is not the writer's business)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=domain.EXPORT_COLUMNS, delimiter=";",
                            lineterminator="\r\n", restval="")  # fmt: skip
    writer.writeheader()
    for row in rows:
        writer.writerow({key: spreadsheet_text(value) for key, value in row.items()})
    return text.getvalue()
