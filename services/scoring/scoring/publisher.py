"""Publishes each changed site's indicators to the compacted topic, at most once per interval."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Histogram

from contracts import questionnaire
from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import SiteIndicatorsUpdated
from contracts.topics import SITE_INDICATORS, SITE_INDICATORS_UPDATED
from plumbing.db import Connection
from plumbing.outbox import enqueue
from scoring import domain, repository
from scoring.settings import ScoringSettings

SOURCE = "/scoring"


class IndicatorsPublisher:
    def __init__(
        self, *, settings: ScoringSettings, pool: asyncpg.Pool, registry: CollectorRegistry
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.zone = ZoneInfo(settings.reporting_timezone)
        self.published = Counter(
            "scoring_indicator_events_total", "Site indicators events emitted", registry=registry
        )
        # Event time, not processing time: a late event (answered days ago) lands in +Inf,
        # which is honest about what the screens showed.
        self.submitted_to_published = Histogram(
            "scoring_response_to_indicators_seconds",
            "Time from a response's submission (event time) to the indicators event that "
            "includes it, for the oldest response of each published site",
            buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300),
            registry=registry,
        )

    async def run(self) -> None:
        while True:
            if not await self.publish_due():
                await asyncio.sleep(self.settings.publisher_poll_seconds)

    async def publish_due(self, limit: int = 20) -> int:
        now = utc_now()
        older_than = now - timedelta(seconds=self.settings.publish_interval_seconds)
        async with self.pool.acquire() as conn, conn.transaction():
            sites = await repository.lock_sites_due(conn, older_than=older_than, limit=limit)
            for site in sites:
                event = await self.site_event(
                    conn, site["site_id"], site["network"], site["site_name"], now
                )
                await enqueue(conn, topic=SITE_INDICATORS.name, key=site["site_id"], event=event)
                await repository.mark_published(conn, site_id=site["site_id"], at=now)
        self.published.inc(len(sites))
        self._observe_latency(sites)
        return len(sites)

    def _observe_latency(self, sites: list[asyncpg.Record]) -> None:
        # Observed after the commit: the outbox row exists, the relay sends it within ms.
        emitted = utc_now()
        for site in sites:
            if site["pending_since"] is not None:
                waited = (emitted - site["pending_since"]).total_seconds()
                self.submitted_to_published.observe(max(0.0, waited))

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), self.zone)

    async def site_event(
        self,
        conn: Connection,
        site_id: str,
        network: str,
        site_name: str | None,
        now: datetime,
    ) -> CloudEvent[SiteIndicatorsUpdated]:
        form = questionnaire.load()
        windows = domain.periods(now.astimezone(self.zone).date())
        days = [(period.start, period.end) for period in windows]
        tallies = await repository.tallies_for_periods(conn, site_id=site_id, periods=days)
        invitations = await repository.invitations_for_periods(conn, site_id=site_id, periods=days)
        periods = []
        for period, tally, invited in zip(windows, tallies, invitations, strict=True):
            fcr = await repository.fcr_counts(
                conn, site_id=site_id, start=self._midnight(period.start),
                end=self._midnight(period.end + timedelta(days=1)),
                window_days=self.settings.fcr_window_days, as_of=now,
            )  # fmt: skip
            periods.append(
                domain.period_figures(
                    period, tally, invitations=invited, questionnaire=form, fcr=fcr
                )
            )
        data = SiteIndicatorsUpdated(
            site_id=site_id, site_name=site_name, network=network, computed_at=now, periods=periods
        )
        return CloudEvent[SiteIndicatorsUpdated](
            id=new_event_id(), source=SOURCE, type=SITE_INDICATORS_UPDATED.type, time=now,
            subject=site_id, data=data,
        )  # fmt: skip
