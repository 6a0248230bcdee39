"""The scheduled purge: personal data lives only until the invitation expires."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from contracts.envelope import utc_now
from survey_dispatch import repository


class Purge:
    def __init__(
        self, *, pool: asyncpg.Pool, every_seconds: float, registry: CollectorRegistry
    ) -> None:
        self.pool = pool
        self.every_seconds = every_seconds
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
        self.purged.inc(count)
        return count
