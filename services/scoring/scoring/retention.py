"""Scoring keeps no row longer than it needs (issue #12):

- contacts: the FCR window plus `contacts_retention_days` (a contact is classified once its
  window has passed; the margin covers late events and the reporting of the last weeks);
- verbatims and alerts: `verbatims_retention_days` and `alerts_retention_days`;
- the inbox: an event id is kept `inbox_margin_days` beyond its topic's retention (the broker
  cannot redeliver an event older than that, so its id is no longer needed to de-duplicate).

Tallies are anonymous counts: they stay. The purge runs at start and every
`purge_interval_seconds`, in one short transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from contracts.envelope import utc_now
from contracts.topics import Topic
from scoring import repository
from scoring.settings import ScoringSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cutoffs:
    """The oldest moment (or day) kept, per table; the inbox's per topic."""

    contacts_before: datetime
    verbatims_before: date
    alerts_before: datetime
    inbox_before: Mapping[str, datetime]


class Purger:
    def __init__(
        self,
        *,
        settings: ScoringSettings,
        pool: asyncpg.Pool,
        topics: Sequence[Topic],
        registry: CollectorRegistry,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.topics = topics
        self.purged = Counter(
            "scoring_purged_rows_total", "Rows deleted past their retention", ["table"],
            registry=registry,
        )  # fmt: skip

    def cutoffs(self, now: datetime) -> Cutoffs:
        settings = self.settings
        day = timedelta(days=1)
        margin = settings.inbox_margin_days * day
        return Cutoffs(
            contacts_before=now
            - (settings.fcr_window_days + settings.contacts_retention_days) * day,
            verbatims_before=(now - settings.verbatims_retention_days * day).date(),
            alerts_before=now - settings.alerts_retention_days * day,
            inbox_before={
                topic.name: now - timedelta(milliseconds=topic.retention_ms) - margin
                for topic in self.topics
                if topic.retention_ms is not None  # kept for ever: its ids too
            },
        )

    async def purge_once(self, now: datetime | None = None) -> dict[str, int]:
        cut = self.cutoffs(now or utc_now())
        async with self.pool.acquire() as conn, conn.transaction():
            deleted = await repository.purge(
                conn, contacts_before=cut.contacts_before, verbatims_before=cut.verbatims_before,
                alerts_before=cut.alerts_before, inbox_before=cut.inbox_before,
            )  # fmt: skip
        for table, count in deleted.items():
            self.purged.labels(table).inc(count)
        if any(deleted.values()):
            log.info("retention purge", extra={"deleted": deleted})
        return deleted

    async def run(self) -> None:
        while True:
            await self.purge_once()
            await asyncio.sleep(self.settings.purge_interval_seconds)
