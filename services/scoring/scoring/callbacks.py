"""Call-backs that close (issue #15): the CRMs report each detractor alert's call-back on
crm.callback.completed.v1, scoring records it, and the managers see per site and week what was
raised, handled within 48 h and 7 days, the outcomes and the alerts still open with their age.

Decisions:
- A report whose alert scoring does not hold (a wrong id, an alert of another deployment, or one
  past its retention) is refused to the topic's DLQ with the reason, not kept pending: scoring
  writes an alert in the same transaction as the event that announces it, so a CRM can never
  learn of an alert before scoring holds it; waiting would only hide a CRM's bug. So is a report
  naming another site than its alert's, or completed before the alert was raised.
- Every report is stored once (callback_id; the inbox also drops a redelivered event). An alert
  keeps its EARLIEST completion (by completed_at): « handled within 48 h » is the delay to the
  first call-back, and a report that arrives late, or a second call-back, does not change it.
- The rule that makes a detractor is set per network through the audited admin API
  (/admin/v1/networks/{network}/detractor-rule, network administrators only). Every replica
  holds the rules in a `RuleBook` (one entry per network that has a rule: bounded by the table,
  never by what events say), loaded at start and reloaded on each change's NOTIFY and after its
  LISTEN connection comes back.

The call-back topic is consumed by scoring's one consumer (one group, the ACLs the registry
gives scoring): `by_topic` hands its batches to `CallbacksHandler`, the others to ScoringHandler.
"""

# No `from __future__ import annotations`: FastAPI must see the local `Admin` alias as an object.

import asyncio
import logging
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from prometheus_client import CollectorRegistry, Gauge

from contracts.envelope import CloudEvent, utc_now
from contracts.events import CALLBACK_OUTCOME_LABELS, CallbackCompleted
from plumbing.auth import NETWORK_ADMIN, AdminAuth, Principal
from plumbing.consumer import BatchHandler
from plumbing.db import Connection
from scoring import domain, repository
from scoring.api import ERRORS, SiteId, authorize, site_clock
from scoring.settings import ScoringSettings

log = logging.getLogger(__name__)
WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class CallbackRefused(Exception):
    """A call-back report scoring cannot record: the consumer sends it to the DLQ with this."""


def by_topic(handlers: Mapping[str, BatchHandler], default: BatchHandler) -> BatchHandler:
    """One batch handler for one consumer: each topic's batches to its own handler."""

    async def handle(
        conn: Connection, topic: str, events: list[CloudEvent[Any]]
    ) -> Collection[str] | None:
        return await handlers.get(topic, default)(conn, topic, events)

    return handle


class CallbacksHandler:
    """Records call-back reports and marks their alerts handled, in the consumer's transaction."""

    async def __call__(self, conn: Connection, topic: str, events: list[CloudEvent[Any]]) -> None:
        reports: list[CallbackCompleted] = [event.data for event in events]
        if not reports:
            return
        alerts = await repository.alerts_by_id(
            conn, alert_ids=[report.alert_id for report in reports]
        )
        for report in reports:  # one bad report fails the batch; the consumer retries one by one
            known = alerts.get(report.alert_id)
            if known is None:
                raise CallbackRefused(
                    f"unknown alert {report.alert_id}: scoring holds no such alert (never raised "
                    "here, or past its retention)"
                )
            problem = domain.completion_problem(
                raised_at=known[1], completed_at=report.completed_at, site_id=report.site_id,
                alert_site_id=known[0],
            )  # fmt: skip
            if problem is not None:
                raise CallbackRefused(f"alert {report.alert_id}: {problem}")
        new = await repository.record_callbacks(
            conn,
            rows=[
                (r.callback_id, r.alert_id, r.site_id, r.outcome.value, r.team, r.completed_at)
                for r in reports
            ],
        )
        earliest: dict[str, CallbackCompleted] = {}
        for report in reports:
            if report.callback_id not in new:
                continue  # the same call-back reported again: already counted
            first = earliest.get(report.alert_id)
            if first is None or report.completed_at < first.completed_at:
                earliest[report.alert_id] = report
        completed = await repository.complete_alerts(
            conn,
            rows=[
                (r.alert_id, r.callback_id, r.outcome.value, r.team, r.completed_at)
                for r in earliest.values()
            ],
        )
        log.info(
            "call-backs recorded",
            extra={"reports": len(reports), "new": len(new), "alerts_completed": completed},
        )


class RuleBook:
    """Each network's detractor rule, as the admin API stored it; the handler calls it per
    response (no query), and a change reloads it on every replica (NOTIFY)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.rules = domain.DetractorRules(by_network={})
        self._reloading: set[asyncio.Task[None]] = set()

    def __call__(self, network: str) -> domain.DetractorRule:
        return self.rules(network)

    async def load(self) -> None:
        async with self.pool.acquire() as conn:
            stored = await repository.detractor_rules(conn)
        rules = {}
        for network, rule in stored.items():
            try:
                rules[network] = domain.detractor_rule_of(rule)
            except ValueError as error:  # the API refuses these: a hand edit; keep the default
                log.error(
                    "stored detractor rule ignored", extra={"network": network, "error": str(error)}
                )
        self.rules = domain.DetractorRules(by_network=rules)

    def reload_soon(self, *_: object) -> None:
        """The NOTIFY callback (and the listener's catch-up after a reconnect)."""
        task = asyncio.get_running_loop().create_task(self._reload())
        self._reloading.add(task)
        task.add_done_callback(self._reloading.discard)

    async def _reload(self) -> None:
        try:
            await self.load()
        except Exception:  # the next change or reconnect reloads; the old rules stay meanwhile
            log.exception("detractor rules not reloaded")


class OpenAlertGauges:
    """Open alerts per site, those older than the threshold (the Prometheus alert watches it)
    and the oldest one's age. Labels: the site id only."""

    def __init__(
        self, settings: ScoringSettings, pool: asyncpg.Pool, registry: CollectorRegistry
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.open = Gauge(
            "scoring_open_alerts", "Detractor alerts nobody has called back yet",
            ["site_id"], registry=registry,
        )  # fmt: skip
        self.overdue = Gauge(
            "scoring_open_alerts_overdue",
            "Open detractor alerts older than the threshold (scoring_open_alert_threshold_days)",
            ["site_id"], registry=registry,
        )  # fmt: skip
        self.oldest = Gauge(
            "scoring_oldest_open_alert_age_seconds", "Age of the site's oldest open alert",
            ["site_id"], registry=registry,
        )  # fmt: skip
        threshold = Gauge(
            "scoring_open_alert_threshold_days", "Days after which an open alert is overdue",
            registry=registry,
        )  # fmt: skip
        threshold.set(settings.open_alert_threshold_days)

    async def refresh(self, now: datetime | None = None) -> None:
        at = now or utc_now()
        limit = at - timedelta(days=self.settings.open_alert_threshold_days)
        async with self.pool.acquire() as conn:
            rows = await repository.open_alerts_by_site(conn, older_than=limit)
        for gauge in (self.open, self.overdue, self.oldest):
            gauge.clear()  # a site with no open alert left has no series
        for row in rows:
            site = row["site_id"]
            self.open.labels(site).set(row["open"])
            self.overdue.labels(site).set(row["overdue"])
            self.oldest.labels(site).set(max(0.0, (at - row["oldest"]).total_seconds()))

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.settings.open_alerts_poll_seconds)


# --------------------------------------------------------------------------- managers' API


def week_bounds(week: str) -> tuple[date, date]:
    """Monday and Sunday of an ISO week written '2026-W47'; ValueError when it is not one."""
    match = WEEK.fullmatch(week)
    if match is None:
        raise ValueError(week)
    monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    return monday, monday + timedelta(days=6)


def current_week(today: date) -> str:
    year, number, _ = today.isocalendar()
    return f"{year}-W{number:02d}"


async def site_week(
    conn: Connection, *, site_id: str, start: date, end: date, zone: ZoneInfo, as_of: datetime
) -> dict[str, Any]:
    """The call-backs of the site's alerts raised in the week, and its open alerts with age."""
    raised = await repository.alerts_raised_between(
        conn, site_id=site_id, start=datetime.combine(start, time.min, zone),
        end=datetime.combine(end + timedelta(days=1), time.min, zone),
    )  # fmt: skip
    summary = domain.callback_week(
        [domain.AlertState(r["raised_at"], r["handled_at"], r["outcome"]) for r in raised],
        as_of=as_of,
    )
    still_open = await repository.open_alerts(conn, site_id=site_id)
    return {
        "raised": summary.raised,
        "handled": summary.handled,
        "handled_within_48h": summary.handled_within_48h,
        "handled_within_7d": summary.handled_within_7d,
        "open": summary.open,
        "outcomes": [
            {"outcome": code, "label": label, "count": summary.outcomes.get(code, 0)}
            for code, label in CALLBACK_OUTCOME_LABELS.items()
        ],
        "open_alerts": [
            {
                "alert_id": row["alert_id"],
                "raised_at": row["raised_at"].isoformat(),
                "age_days": domain.open_age_days(row["raised_at"], as_of),
                "reasons": list(row["reasons"]),
            }
            for row in still_open
        ],
    }


def default_week(now: datetime, site_zone: ZoneInfo) -> str:
    """The call-back board's week when none is asked: the ISO week of today on the site's own
    clock (issue #15), not the reporting zone's (Sunday 23:30 in Guadeloupe is Monday in Paris)."""
    return current_week(now.astimezone(site_zone).date())


def callbacks_router(settings: ScoringSettings, auth: AdminAuth) -> APIRouter:
    router = APIRouter(tags=["managers"])
    Admin = Annotated[Principal, Depends(auth)]
    Network = Annotated[str, Path(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9._:@/-]+$")]

    @router.get("/v1/sites/{site_id}/callbacks", responses=ERRORS)
    async def callbacks(
        request: Request,
        site_id: SiteId,
        principal: Admin,
        week: Annotated[str | None, Query(max_length=10, description="ISO week, 2026-W47")] = None,
    ) -> dict[str, Any]:
        """Per site and ISO week of raising: alerts raised, handled within 48 h and 7 days,
        outcomes; and every alert of the site still open, with its age in days."""
        now = utc_now()
        try:
            if week is not None:
                week_bounds(week)
        except ValueError:
            raise HTTPException(422, "semaine invalide : attendu AAAA-Wnn, ex. 2026-W47") from None
        async with request.app.state.runtime.db_pool.acquire() as conn:
            await authorize(conn, principal, site_id)
            here = await site_clock(conn, site_id, default=settings.reporting_timezone)
            chosen = week or default_week(now, here)  # today's week on the site's clock
            start, end = week_bounds(chosen)
            counts = await site_week(  # the week's bounds on the site's own clock (issue #15)
                conn, site_id=site_id, start=start, end=end, zone=here, as_of=now
            )
        return {
            "site_id": site_id, "week": chosen, "start": start.isoformat(),
            "end": end.isoformat(), "open_alert_threshold_days": settings.open_alert_threshold_days,
            **counts,
        }  # fmt: skip

    @router.get("/admin/v1/networks/{network}/detractor-rule", tags=["admin"], responses=ERRORS)
    async def detractor_rule(request: Request, network: Network, caller: Admin) -> dict[str, Any]:
        _require_network_admin(caller, network)
        return await _read_rule(request.app.state.runtime.db_pool, network)

    @router.put("/admin/v1/networks/{network}/detractor-rule", tags=["admin"], responses=ERRORS)
    async def put_detractor_rule(
        request: Request, network: Network, caller: Admin,
        rule: Annotated[dict[str, Any], Body(examples=[{"max_recommendation": 5}])],
    ) -> dict[str, Any]:  # fmt: skip
        """Set the network's rule: `max_recommendation` (-1..10, -1: never), `max_satisfaction`
        (0..10, 0: never), `repeat_with_suggestion` (bool); keys left out keep the default.
        Audited (who, when, before, after); every replica applies it at once."""
        _require_network_admin(caller, network)
        try:
            domain.detractor_rule_of(rule)
        except ValueError as error:
            raise HTTPException(422, f"règle invalide : {error}") from None
        return await _write_rule(request, network, rule, caller)

    @router.delete("/admin/v1/networks/{network}/detractor-rule", tags=["admin"], responses=ERRORS)
    async def delete_detractor_rule(
        request: Request, network: Network, caller: Admin
    ) -> dict[str, Any]:
        """Back to the default rule (audited)."""
        _require_network_admin(caller, network)
        return await _write_rule(request, network, None, caller)

    return router


def _require_network_admin(caller: Principal, network: str) -> None:
    if NETWORK_ADMIN not in caller.roles or caller.network != network:
        raise HTTPException(403, "réservé aux administrateurs de ce réseau")


async def _write_rule(
    request: Request, network: str, rule: dict[str, Any] | None, caller: Principal
) -> dict[str, Any]:
    pool = request.app.state.runtime.db_pool
    async with pool.acquire() as conn, conn.transaction():
        await repository.set_detractor_rule(
            conn, network=network, rule=rule, changed_by=caller.subject
        )
    log.info("detractor rule changed", extra={"network": network, "changed_by": caller.subject})
    rules: RuleBook | None = getattr(request.app.state, "detractor_rules", None)
    if rules is not None:  # this replica at once; the others on the NOTIFY
        await rules.load()
    return await _read_rule(pool, network)


async def _read_rule(pool: asyncpg.Pool, network: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await repository.detractor_rule_row(conn, network=network)
        audit = await repository.detractor_rules_audit(conn, network=network)
    try:  # a row edited by hand may not be a rule: say so, no 500 (the handler uses the default)
        effective: domain.DetractorRule | None = (
            domain.detractor_rule_of(row["rule"]) if row else domain.DetractorRule()
        )
        problem = None
    except ValueError as error:
        effective, problem = None, f"règle ignorée, la règle par défaut s'applique : {error}"
    return {
        "network": network,
        "rule": row["rule"] if row else {},
        "effective": None
        if effective is None
        else {
            "max_recommendation": effective.max_recommendation,
            "max_satisfaction": effective.max_satisfaction,
            "repeat_with_suggestion": effective.repeat_with_suggestion,
        },
        "problem": problem,
        "updated_at": row["updated_at"].isoformat() if row else None,
        "updated_by": row["updated_by"] if row else None,
        "audit": [
            {**dict(entry), "changed_at": entry["changed_at"].isoformat()} for entry in audit
        ],
    }
