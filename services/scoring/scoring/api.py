"""Managers' JSON views: figures per breakdown and the CNAV contact distributions.

Manager views use the anonymity floor (settings.anonymity_floor, default 5 answers): a cell
below it is listed without figures. Never any individual agent: the tallies have no agent.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request

from contracts import questionnaire
from contracts.envelope import utc_now
from scoring import domain, repository
from scoring.settings import ScoringSettings

Dimension = Literal["channel", "motif", "nature", "profile"]


def manager_router(settings: ScoringSettings) -> APIRouter:
    router = APIRouter(prefix="/v1/sites", tags=["managers"])
    zone = ZoneInfo(settings.reporting_timezone)

    def period_named(name: str) -> domain.Period:
        for period in domain.periods(utc_now().astimezone(zone).date()):
            if period.id == name:
                return period
        raise HTTPException(422, f"unknown period {name!r}")

    def instants(period: domain.Period) -> tuple[datetime, datetime]:
        return _midnight(period.start, zone), _midnight(period.end + timedelta(days=1), zone)

    @router.get("/{site_id}/breakdown")
    async def breakdown(
        request: Request,
        site_id: str,
        dimension: Dimension,
        period: Annotated[str, Query()] = "rolling_90d",
    ) -> dict[str, Any]:
        chosen = period_named(period)
        start, end = instants(chosen)
        async with request.app.state.runtime.db_pool.acquire() as conn:
            tallies = await repository.tally_by(
                conn, site_id=site_id, start=chosen.start, end=chosen.end, dimension=dimension
            )
            invitations = await repository.invitations_by(
                conn, site_id=site_id, start=chosen.start, end=chosen.end, dimension=dimension
            )
            fcr = await repository.fcr_counts_by(
                conn, site_id=site_id, start=start, end=end, window_days=settings.fcr_window_days,
                as_of=utc_now(), dimension=dimension,
            )  # fmt: skip
        cells = domain.breakdown_cells(
            tallies, invitations=invitations, fcr=fcr,
            questionnaire=questionnaire.load(), floor=settings.anonymity_floor,
        )  # fmt: skip
        return {
            "site_id": site_id, "dimension": dimension, **_period_json(chosen),
            "anonymity_floor": settings.anonymity_floor,
            "cells": [_cell_json(cell) for cell in cells],
        }  # fmt: skip

    @router.get("/{site_id}/contacts")
    async def contacts(
        request: Request, site_id: str, period: Annotated[str, Query()] = "rolling_90d"
    ) -> dict[str, Any]:
        chosen = period_named(period)
        start, end = instants(chosen)
        async with request.app.state.runtime.db_pool.acquire() as conn:
            distributions = await repository.contact_distributions(
                conn, site_id=site_id, start=start, end=end
            )
        return {"site_id": site_id, **_period_json(chosen), **distributions}

    return router


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, zone)


def _period_json(period: domain.Period) -> dict[str, str]:
    return {"period": period.id, "start": period.start.isoformat(), "end": period.end.isoformat()}


def _cell_json(cell: domain.BreakdownCell) -> dict[str, Any]:
    if cell.figures is None:
        return {"value": cell.value, "withheld": True, "reason": "below the anonymity floor"}
    return {
        "value": cell.value,
        "withheld": False,
        "responses": cell.responses,
        "figures": [figure.model_dump(mode="json") for figure in cell.figures],
    }
