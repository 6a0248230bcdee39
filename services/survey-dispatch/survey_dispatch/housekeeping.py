"""The scheduled purge: personal data lives only until the invitation expires, and the inbox
forgets event ids once no copy of them can be delivered again."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from contracts.envelope import utc_now
from plumbing.db import prune_inbox
from survey_dispatch import repository


class Purge:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        every_seconds: float,
        registry: CollectorRegistry,
        inbox_retention: timedelta = timedelta(days=35),
    ) -> None:
        self.pool = pool
        self.every_seconds = every_seconds
        self.inbox_retention = inbox_retention
        self.purged = Counter(
            "dispatch_personal_data_purged_total",
            "Invitations whose address and link secret were erased at expiry",
            registry=registry,
        )

    async def run(self) -> None:
        while True:
            await self.purge_once()
            await asyncio.sleep(self.every_seconds)

    async def purge_once(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            count = await repository.purge_expired(conn, now=utc_now())
            await prune_inbox(conn, older_than=self.inbox_retention)
            await repository.prune_ingested(conn, older_than=self.inbox_retention)
        self.purged.inc(count)
        return count
