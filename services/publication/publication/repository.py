"""Plain SQL for publication. Keyword-only functions; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg


async def upsert_site_indicators(
    conn: asyncpg.Connection, *, site_id: str, network: str, site_name: str | None,
    computed_at: datetime, payload: dict[str, Any],
) -> None:  # fmt: skip
    """Keep the newest snapshot: an older one arriving late (replay, reorder) changes nothing."""
    await conn.execute(
        "INSERT INTO site_indicators (site_id, network, site_name, computed_at, payload) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site_id) DO UPDATE SET "
        "network = EXCLUDED.network, site_name = EXCLUDED.site_name, "
        "computed_at = EXCLUDED.computed_at, payload = EXCLUDED.payload "
        "WHERE site_indicators.computed_at < EXCLUDED.computed_at",
        site_id, network, site_name, computed_at, payload,
    )  # fmt: skip


async def site_indicators(conn: asyncpg.Connection, *, site_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT s.*, c.indicators AS chosen FROM site_indicators s "
        "LEFT JOIN site_settings c USING (site_id) WHERE s.site_id = $1",
        site_id,
    )


async def network_indicators(conn: asyncpg.Connection, *, network: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT s.*, c.indicators AS chosen FROM site_indicators s "
        "LEFT JOIN site_settings c USING (site_id) WHERE s.network = $1 ORDER BY s.site_id",
        network,
    )
