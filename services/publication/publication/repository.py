"""Plain SQL for publication. Keyword-only functions; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from plumbing.db import Connection

# Postgres delivers a NOTIFY only when its transaction commits: every process (each replica)
# listens, so its cache and its SSE clients see a change right after it is durable.
SITE_CHANGED_CHANNEL = "publication_site_changed"

_SNAPSHOT = (
    "SELECT s.site_id, s.network, s.site_name, s.computed_at, s.payload, "
    "c.indicators AS chosen, c.display FROM site_indicators s "
    "LEFT JOIN site_settings c USING (site_id) "
)


async def upsert_site_indicators(
    conn: Connection, *, site_id: str, network: str, site_name: str | None,
    computed_at: datetime, payload: dict[str, Any],
) -> bool:  # fmt: skip
    """Keep the newest snapshot: an older one arriving late (replay, reorder) changes nothing.
    Returns whether the stored snapshot changed."""
    status = await conn.execute(
        "INSERT INTO site_indicators (site_id, network, site_name, computed_at, payload) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site_id) DO UPDATE SET "
        "network = EXCLUDED.network, site_name = EXCLUDED.site_name, "
        "computed_at = EXCLUDED.computed_at, payload = EXCLUDED.payload "
        "WHERE site_indicators.computed_at < EXCLUDED.computed_at",
        site_id, network, site_name, computed_at, payload,
    )  # fmt: skip
    return status != "INSERT 0 0"


async def notify_site_changed(
    conn: Connection, *, site_id: str, traceparent: str | None = None
) -> None:
    """The payload is the site id, then a space and the change's traceparent when traced."""
    payload = f"{site_id} {traceparent}" if traceparent else site_id
    await conn.execute("SELECT pg_notify($1, $2)", SITE_CHANGED_CHANNEL, payload)


async def site_snapshot(conn: Connection, *, site_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_SNAPSHOT + "WHERE s.site_id = $1", site_id)


async def site_snapshots(conn: Connection, *, site_ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(_SNAPSHOT + "WHERE s.site_id = ANY($1::text[])", site_ids)


async def network_snapshots(conn: Connection, *, network: str | None) -> list[asyncpg.Record]:
    """Every site of a network, or of every network when `network` is None."""
    return await conn.fetch(
        _SNAPSHOT + "WHERE $1::text IS NULL OR s.network = $1 ORDER BY s.network, s.site_id",
        network,
    )


async def site_catalogue(conn: Connection) -> list[asyncpg.Record]:
    """Every site with figures and its network: what the public feeds may be asked about."""
    return await conn.fetch("SELECT site_id, network FROM site_indicators")


async def site_network(conn: Connection, *, site_id: str) -> str | None:
    value = await conn.fetchval("SELECT network FROM site_indicators WHERE site_id = $1", site_id)
    return str(value) if value is not None else None


async def site_settings_for_update(conn: Connection, *, site_id: str) -> asyncpg.Record | None:
    """The site's settings, locked until the transaction ends (two admins never interleave)."""
    return await conn.fetchrow(
        "SELECT indicators, display, updated_at, updated_by FROM site_settings "
        "WHERE site_id = $1 FOR UPDATE",
        site_id,
    )


async def site_settings(conn: Connection, *, site_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT indicators, display, updated_at, updated_by FROM site_settings WHERE site_id = $1",
        site_id,
    )


async def save_site_settings(
    conn: Connection, *, site_id: str, indicators: list[str], display: dict[str, Any],
    updated_by: str,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO site_settings (site_id, indicators, display, updated_at, updated_by) "
        "VALUES ($1, $2, $3, now(), $4) ON CONFLICT (site_id) DO UPDATE SET "
        "indicators = EXCLUDED.indicators, display = EXCLUDED.display, "
        "updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
        site_id, indicators, display, updated_by,
    )  # fmt: skip


async def record_settings_change(
    conn: Connection, *, site_id: str, actor_subject: str, actor_name: str,
    actor_roles: list[str], before: dict[str, Any] | None, after: dict[str, Any],
) -> asyncpg.Record:  # fmt: skip
    row = await conn.fetchrow(
        "INSERT INTO site_settings_audit "
        "(site_id, actor_subject, actor_name, actor_roles, before, after) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, changed_at",
        site_id, actor_subject, actor_name, actor_roles, before, after,
    )  # fmt: skip
    assert row is not None
    return row


async def settings_audit(conn: Connection, *, site_id: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, site_id, changed_at, actor_subject, actor_name, actor_roles, before, after "
        "FROM site_settings_audit WHERE site_id = $1 ORDER BY id DESC LIMIT $2",
        site_id, limit,
    )  # fmt: skip
