"""Managers' JSON views: figures per breakdown and the CNAV contact distributions.

Manager views use the anonymity floor (settings.anonymity_floor, default 5 answers, through
contracts.floors): a cell below it is listed without figures. Never any individual agent: the
tallies have no agent.

Every route needs an admin token (plumbing.auth): a site manager sees only their sites, a network
administrator the sites of their network. A malformed site id is a 422, an unknown site a 404.
"""

# No `from __future__ import annotations`: FastAPI must see the local `Admin` alias as an object.

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from contracts.envelope import utc_now
from contracts.events import IndicatorFigure
from contracts.sites import site_timezone
from plumbing.auth import AdminAuth, Principal, require_site
from plumbing.db import Connection
from scoring import domain, extras, repository
from scoring.settings import ScoringSettings

Dimension = Literal["channel", "motif", "nature", "profile"]
SiteId = Annotated[
    str,
    Path(
        min_length=1, max_length=120, pattern=r"^[A-Za-z0-9._:@/-]+$",
        description="Identifiant du site (contracts.events.Identifier).",
    ),
]  # fmt: skip
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Jeton absent, invalide ou expiré."},
    403: {"description": "Ce site n'est pas le vôtre."},
    404: {"description": "Site inconnu."},
}
TAGGED_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Thème ou ton inconnu (les valeurs possibles sont dans le message)."},
    **ERRORS,
}


async def authorize(conn: Connection, principal: Principal, site_id: str) -> None:
    """404 for a site scoring has never heard of, 403 for a site that is not the caller's."""
    network = await repository.site_network(conn, site_id=site_id)
    if network is None:
        raise HTTPException(404, "site inconnu")
    require_site(principal, site_id=site_id, network=network)


def manager_router(settings: ScoringSettings, auth: AdminAuth) -> APIRouter:
    router = APIRouter(prefix="/v1/sites", tags=["managers"])
    zone = ZoneInfo(settings.reporting_timezone)
    Admin = Annotated[Principal, Depends(auth)]

    def period_named(name: str, site_zone: ZoneInfo | None = None) -> domain.Period:
        """The period as of today on the site's clock (issue #15), its days the site's."""
        for period in domain.periods(utc_now().astimezone(site_zone or zone).date()):
            if period.id == name:
                return period
        raise HTTPException(422, "période inconnue")

    def instants(period: domain.Period, at: ZoneInfo) -> tuple[datetime, datetime]:
        return _midnight(period.start, at), _midnight(period.end + timedelta(days=1), at)

    async def on_site_clock(
        conn: Connection, site_id: str, name: str
    ) -> tuple[domain.Period, datetime, datetime]:
        """The period named, and its first and last instants, on the site's own clock."""
        site_zone = await site_clock(conn, site_id, default=settings.reporting_timezone)
        period = period_named(name, site_zone)
        return (period, *instants(period, site_zone))

    async def chosen_period(
        conn: Connection, site_id: str, period: str, week: str | None
    ) -> tuple[domain.Period, datetime, datetime]:
        """A past ISO week when `week` is given (issue #15), else the period named."""
        if week is None:
            return await on_site_clock(conn, site_id, period)
        chosen = extras.week_or_422(week)
        site_zone = await site_clock(conn, site_id, default=settings.reporting_timezone)
        return (chosen, *instants(chosen, site_zone))

    def check_period(period: str, week: str | None) -> None:
        """422 before anything else."""
        if week is None:
            period_named(period)
        else:
            extras.week_or_422(week)

    @router.get("/{site_id}/breakdown", responses=ERRORS)
    async def breakdown(
        request: Request,
        site_id: SiteId,
        dimension: Dimension,
        principal: Admin,
        period: Annotated[str, Query(max_length=40)] = "rolling_90d",
        week: extras.Week = None,
        answers: extras.Answers = "crm",
    ) -> dict[str, Any]:
        check_period(period, week)
        async with request.app.state.runtime.db_pool.acquire() as conn:
            await authorize(conn, principal, site_id)
            chosen, start, end = await chosen_period(conn, site_id, period, week)
            if answers == "user":  # the user's own answers replace the CRM's (issue #15)
                cells = await extras.corrected_cells(
                    conn, settings, site_id=site_id, period=chosen, dimension=dimension
                )
                return _cells_body(site_id, dimension, chosen, settings, cells, answers="user")
            cells = await extras.crm_cells(
                conn, settings, site_id=site_id, period=chosen, start=start, end=end,
                dimension=dimension,
            )  # fmt: skip
        return _cells_body(site_id, dimension, chosen, settings, cells)

    @router.get("/{site_id}/contacts", responses=ERRORS)
    async def contacts(
        request: Request,
        site_id: SiteId,
        principal: Admin,
        period: Annotated[str, Query(max_length=40)] = "rolling_90d",
    ) -> dict[str, Any]:
        period_named(period)  # 422 before anything else
        async with request.app.state.runtime.db_pool.acquire() as conn:
            await authorize(conn, principal, site_id)
            chosen, start, end = await on_site_clock(conn, site_id, period)
            distributions = await repository.contact_distributions(
                conn, site_id=site_id, start=start, end=end
            )
        return {"site_id": site_id, **_period_json(chosen), **distributions}

    @router.get("/{site_id}/teams", responses=ERRORS)
    async def teams(
        request: Request,
        site_id: SiteId,
        principal: Admin,
        period: Annotated[str, Query(max_length=40)] = "rolling_90d",
        week: extras.Week = None,
    ) -> dict[str, Any]:
        """Issue #15: the results of each team (ContactSeen.team) under the anonymity floor;
        a team at most, never an agent."""
        check_period(period, week)
        async with request.app.state.runtime.db_pool.acquire() as conn:
            await authorize(conn, principal, site_id)
            chosen, _, _ = await chosen_period(conn, site_id, period, week)
            cells = await extras.team_cells(conn, settings, site_id=site_id, period=chosen)
        return _cells_body(site_id, "team", chosen, settings, cells)

    @router.get("/{site_id}/survey-channels", responses=ERRORS)
    async def survey_channels(
        request: Request,
        site_id: SiteId,
        principal: Admin,
        period: Annotated[str, Query(max_length=40)] = "rolling_90d",
        week: extras.Week = None,
    ) -> dict[str, Any]:
        """Issue #15: the response rate of the invitations sent in the period by survey channel
        (e-mail, SMS), and the reminder's effect (answers before and after it)."""
        check_period(period, week)
        async with request.app.state.runtime.db_pool.acquire() as conn:
            await authorize(conn, principal, site_id)
            chosen, _, _ = await chosen_period(conn, site_id, period, week)
            rows = await extras.survey_channel_rows(conn, settings, site_id=site_id, period=chosen)
        return {
            "site_id": site_id, **_period_json(chosen),
            "anonymity_floor": settings.anonymity_floor,
            "survey_channels": [_survey_channel_json(row) for row in rows],
        }  # fmt: skip

    @router.get("/{site_id}/verbatims", responses=TAGGED_ERRORS)
    async def verbatims(
        request: Request,
        site_id: SiteId,
        principal: Admin,
        period: Annotated[str, Query(max_length=40)] = "previous_iso_week",
        week: extras.Week = None,
        theme: extras.Theme = None,
        tone: extras.Tone = None,
    ) -> dict[str, Any]:
        """Issue #17: the period's verbatims (redacted upstream) with their themes, tone and the
        words that triggered them, filtered by `theme` and `tone`; none below the anonymity
        floor. An ISO week (`week`, or the periods `iso_week` and `previous_iso_week`) also
        gets its top irritant themes with their trend against the four previous weeks."""
        check_period(period, week)
        extras.check_tagging(theme, tone)
        async with request.app.state.runtime.db_pool.acquire() as conn:
            await authorize(conn, principal, site_id)
            chosen, _, _ = await chosen_period(conn, site_id, period, week)
            responses, rows = await extras.period_verbatims(
                conn, settings, site_id=site_id, period=chosen, theme=theme, tone=tone
            )
            top = None
            if chosen.start.weekday() == 0 and chosen.end == chosen.start + timedelta(days=6):
                top = await extras.week_irritants(
                    conn, settings, site_id=site_id, monday=chosen.start
                )
        body: dict[str, Any] = {
            "site_id": site_id, **_period_json(chosen), "anonymity_floor": settings.anonymity_floor,
            "theme": theme, "tone": tone,
        }  # fmt: skip
        if rows is None:
            return {**body, "withheld": True, "reason": "below the anonymity floor"}
        return {
            **body, "withheld": False, "responses": responses, "verbatims": rows,
            "top_irritants": None if top is None else [extras.irritant_json(i) for i in top],
        }  # fmt: skip

    @router.get(
        "/{site_id}/export.csv", responses=TAGGED_ERRORS, response_class=Response,
        openapi_extra={"responses": {"200": {"content": {"text/csv": {}}}}},
    )  # fmt: skip
    async def export_csv(
        request: Request,
        site_id: SiteId,
        principal: Admin,
        period: Annotated[str, Query(max_length=40)] = "previous_iso_week",
        week: extras.Week = None,
        theme: extras.Theme = None,
        tone: extras.Tone = None,
    ) -> Response:
        """Issue #15: a site's breakdowns and floored verbatims for its manager, as CSV (`;`,
        UTF-8); text cells a spreadsheet would run as formulas are neutralised. Issue #17: the
        verbatims carry their themes and tone, and `theme` / `tone` keep only those."""
        check_period(period, week)
        extras.check_tagging(theme, tone)
        async with request.app.state.runtime.db_pool.acquire() as conn:
            await authorize(conn, principal, site_id)
            chosen, start, end = await chosen_period(conn, site_id, period, week)
            body = await extras.export_csv(
                conn, settings, site_id=site_id, period=chosen, start=start, end=end,
                theme=theme, tone=tone,
            )  # fmt: skip
        name = f"enquetes-{site_id.replace('/', '_')}-{chosen.id}.csv"
        return Response(
            body, media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )  # fmt: skip

    return router


def _survey_channel_json(row: domain.SurveyChannelRow) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "survey_channel": row.survey_channel, "invitations": row.invitations,
    }  # fmt: skip
    if row.figures is None:
        return {**shown, "withheld": True, "reason": "below the anonymity floor"}
    return {
        **shown, "withheld": False, "responses": row.answered,
        "figures": [_figure_json(figure) for figure in row.figures],
    }  # fmt: skip


async def site_clock(conn: Connection, site_id: str, *, default: str) -> ZoneInfo:
    """A site's own clock (issue #15): as its events told scoring (sites.timezone), else the
    shared default (contracts.sites: the overseas regions), else `default` (metropolitan)."""
    stored = await repository.site_timezone(conn, site_id=site_id)
    network = await repository.site_network(conn, site_id=site_id) or ""
    return ZoneInfo(site_timezone(stored, site_id=site_id, network=network, metropolitan=default))


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, zone)


def _period_json(period: domain.Period) -> dict[str, str]:
    return {"period": period.id, "start": period.start.isoformat(), "end": period.end.isoformat()}


def _cells_body(
    site_id: str, dimension: str, period: domain.Period, settings: ScoringSettings,
    cells: list[domain.BreakdownCell], **extra: str,
) -> dict[str, Any]:  # fmt: skip
    """A breakdown's answer: its cells under the anonymity floor, for one site and period."""
    return {
        "site_id": site_id, "dimension": dimension, **extra, **_period_json(period),
        "anonymity_floor": settings.anonymity_floor,
        "cells": [_cell_json(cell) for cell in cells],
    }  # fmt: skip


def _cell_json(cell: domain.BreakdownCell) -> dict[str, Any]:
    if cell.figures is None:
        return {"value": cell.value, "withheld": True, "reason": "below the anonymity floor"}
    return {
        "value": cell.value,
        "withheld": False,
        "responses": cell.responses,
        "figures": [_figure_json(figure) for figure in cell.figures],
    }


ADJUSTED_NOTE = "centre de l'intervalle : trop peu de réponses"
PROVISIONAL_NOTE = "provisoire : des liens de la période peuvent encore être utilisés"


def _figure_json(figure: IndicatorFigure) -> dict[str, Any]:
    """A figure as managers read it: never a value outside its own interval (issue #18; at a
    manager's floor the one-promoter NPS +100 has the interval -48.5..98.5): `value` is then
    the interval's centre, `adjusted` says so, and `note` in French. A response rate whose
    cohort's links are still open says « provisoire »."""
    shown = figure.model_dump(mode="json")
    value, adjusted = domain.manager_value(figure)
    shown["value"], shown["adjusted"] = value, adjusted
    notes = [ADJUSTED_NOTE] if adjusted else []
    if figure.provisional and figure.indicator == "response_rate":
        notes.append(PROVISIONAL_NOTE)
    if notes:
        shown["note"] = " ; ".join(notes)
    return shown
