"""Plain SQL for scoring. Keyword-only functions; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import asyncpg

TallyKey = tuple[str, date, str, str, str, str, str, str]  # site, day, channel, motif, nature, profile, item, value


async def add_tallies(conn: asyncpg.Connection, *, increments: dict[TallyKey, int]) -> None:
    """Add counts in one statement; keys sorted so concurrent writers lock rows in one order."""
    if not increments:
        return
    keys = sorted(increments)
    columns = list(zip(*keys, strict=True))
    await conn.execute(
        "INSERT INTO tallies AS t (site_id, day, channel, motif, nature, profile, item, value, count) "
        "SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::text[], "
        "$6::text[], $7::text[], $8::text[], $9::bigint[]) "
        "ON CONFLICT (site_id, day, channel, motif, nature, profile, item, value) "
        "DO UPDATE SET count = t.count + EXCLUDED.count",
        *[list(column) for column in columns],
        [increments[key] for key in keys],
    )


async def add_invitations(
    conn: asyncpg.Connection, *, increments: dict[tuple[str, date, str, str], int]
) -> None:
    if not increments:
        return
    keys = sorted(increments)
    columns = list(zip(*keys, strict=True))
    await conn.execute(
        "INSERT INTO invitation_tallies AS t (site_id, day, channel, motif, count) "
        "SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::bigint[]) "
        "ON CONFLICT (site_id, day, channel, motif) DO UPDATE SET count = t.count + EXCLUDED.count",
        *[list(column) for column in columns],
        [increments[key] for key in keys],
    )


async def add_contacts(conn: asyncpg.Connection, *, rows: list[tuple[Any, ...]]) -> None:
    await conn.executemany(
        "INSERT INTO contacts (contact_id, site_id, network, user_hash, channel, motif, closed_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (contact_id) DO NOTHING",
        rows,
    )


async def mark_sites_dirty(conn: asyncpg.Connection, *, sites: Iterable[tuple[str, str, str | None]]) -> None:
    rows = sorted(set(sites))
    if not rows:
        return
    await conn.executemany(
        "INSERT INTO sites (site_id, network, site_name, dirty) VALUES ($1, $2, $3, true) "
        "ON CONFLICT (site_id) DO UPDATE SET dirty = true, "
        "site_name = coalesce(EXCLUDED.site_name, sites.site_name)",
        rows,
    )


async def save_alert(conn: asyncpg.Connection, **row: Any) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO alerts (alert_id, invitation_id, contact_id, site_id, network, reasons, "
        "answers, raised_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (invitation_id) DO NOTHING RETURNING 1",
        row["alert_id"], row["invitation_id"], row["contact_id"], row["site_id"],
        row["network"], row["reasons"], row["answers"], row["raised_at"],
    )  # fmt: skip
    return bool(inserted)


async def lock_sites_due(conn: asyncpg.Connection, *, older_than: datetime, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT site_id, network, site_name FROM sites WHERE dirty AND "
        "(last_published_at IS NULL OR last_published_at <= $1) "
        "ORDER BY site_id LIMIT $2 FOR UPDATE SKIP LOCKED",
        older_than,
        limit,
    )


async def mark_published(conn: asyncpg.Connection, *, site_id: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE sites SET dirty = false, last_published_at = $2 WHERE site_id = $1", site_id, at
    )


async def tally_between(
    conn: asyncpg.Connection, *, site_id: str, start: date, end: date
) -> dict[str, dict[str, int]]:
    rows = await conn.fetch(
        "SELECT item, value, sum(count)::bigint AS n FROM tallies "
        "WHERE site_id = $1 AND day BETWEEN $2 AND $3 GROUP BY item, value",
        site_id, start, end,
    )  # fmt: skip
    tally: dict[str, dict[str, int]] = {}
    for row in rows:
        tally.setdefault(row["item"], {})[row["value"]] = int(row["n"])
    return tally


async def invitations_between(conn: asyncpg.Connection, *, site_id: str, start: date, end: date) -> int:
    value = await conn.fetchval(
        "SELECT coalesce(sum(count), 0) FROM invitation_tallies "
        "WHERE site_id = $1 AND day BETWEEN $2 AND $3",
        site_id, start, end,
    )  # fmt: skip
    return int(value)


async def fcr_counts(
    conn: asyncpg.Connection, *, site_id: str, start: datetime, end: datetime,
    window_days: int, as_of: datetime,
) -> tuple[int, int, int]:  # fmt: skip
    """(resolved, repeated, pending) for the site's contacts closed in [start, end).

    The SQL twin of `domain.classify_contacts`: a contact is repeated when the same user has
    another contact on the same motif within the window after it, on any site.
    """
    row = await conn.fetchrow(
        """
        WITH mine AS (
            SELECT c.contact_id, c.closed_at, EXISTS (
                SELECT 1 FROM contacts o WHERE o.user_hash = c.user_hash AND o.motif = c.motif
                AND o.closed_at > c.closed_at
                AND o.closed_at <= c.closed_at + make_interval(days => $4)
            ) AS repeated
            FROM contacts c WHERE c.site_id = $1 AND c.closed_at >= $2 AND c.closed_at < $3
        )
        SELECT count(*) FILTER (WHERE repeated) AS repeated,
               count(*) FILTER (WHERE NOT repeated AND closed_at + make_interval(days => $4) <= $5) AS resolved,
               count(*) FILTER (WHERE NOT repeated AND closed_at + make_interval(days => $4) > $5) AS pending
        FROM mine
        """,
        site_id, start, end, window_days, as_of,
    )  # fmt: skip
    assert row is not None
    return int(row["resolved"]), int(row["repeated"]), int(row["pending"])
