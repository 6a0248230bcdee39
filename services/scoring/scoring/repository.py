"""Plain SQL for scoring. Keyword-only functions; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import asyncpg

from plumbing.db import Connection

TallyKey = tuple[
    str, date, str, str, str, str, str, str
]  # site, day, channel, motif, nature, profile, item, value


async def add_tallies(conn: Connection, *, increments: dict[TallyKey, int]) -> None:
    """Add counts in one statement per table; keys sorted so concurrent writers lock rows in one
    order. The site-level rollup gets the same increments summed over the breakdowns."""
    if not increments:
        return
    keys = sorted(increments)
    columns = list(zip(*keys, strict=True))
    await conn.execute(
        "INSERT INTO tallies AS t "
        "(site_id, day, channel, motif, nature, profile, item, value, count) "
        "SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::text[], "
        "$6::text[], $7::text[], $8::text[], $9::bigint[]) "
        "ON CONFLICT (site_id, day, channel, motif, nature, profile, item, value) "
        "DO UPDATE SET count = t.count + EXCLUDED.count",
        *[list(column) for column in columns],
        [increments[key] for key in keys],
    )
    await _add_site_day_tallies(conn, increments)


async def _add_site_day_tallies(conn: Connection, increments: dict[TallyKey, int]) -> None:
    rollup: dict[tuple[str, date, str, str], int] = {}
    for (site, day, _channel, _motif, _nature, _profile, item, value), count in increments.items():
        key = (site, day, item, value)
        rollup[key] = rollup.get(key, 0) + count
    keys = sorted(rollup)
    columns = list(zip(*keys, strict=True))
    await conn.execute(
        "INSERT INTO site_day_tallies AS t (site_id, day, item, value, count) "
        "SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::bigint[]) "
        "ON CONFLICT (site_id, day, item, value) DO UPDATE SET count = t.count + EXCLUDED.count",
        *[list(column) for column in columns],
        [rollup[key] for key in keys],
    )


async def add_invitations(
    conn: Connection, *, increments: dict[tuple[str, date, str, str], int]
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


async def add_contacts(conn: Connection, *, rows: list[tuple[Any, ...]]) -> None:
    await conn.executemany(
        "INSERT INTO contacts (contact_id, site_id, network, user_hash, channel, motif, closed_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (contact_id) DO NOTHING",
        rows,
    )


async def mark_sites_dirty(
    conn: Connection,
    *,
    sites: Iterable[tuple[str, str, str | None]],
    pending_since: Mapping[str, datetime] | None = None,
) -> None:
    """Flag sites for the publisher; `pending_since` keeps each site's oldest unpublished
    response (event time) so the publisher can measure submitted -> published."""
    oldest = pending_since or {}
    rows = sorted({(*site, oldest.get(site[0])) for site in sites}, key=lambda row: row[0])
    if not rows:
        return
    await conn.executemany(
        "INSERT INTO sites (site_id, network, site_name, dirty, pending_since) "
        "VALUES ($1, $2, $3, true, $4) "
        "ON CONFLICT (site_id) DO UPDATE SET dirty = true, "
        "site_name = coalesce(EXCLUDED.site_name, sites.site_name), "
        "pending_since = least(sites.pending_since, EXCLUDED.pending_since)",
        rows,
    )


async def save_alerts(conn: Connection, *, rows: list[dict[str, Any]]) -> set[str]:
    """Store alerts in one statement; return the invitation ids whose alert is new (one alert
    per invitation, whatever the redeliveries or resubmissions)."""
    if not rows:
        return set()
    fields = ("alert_id", "invitation_id", "contact_id", "site_id", "network", "raised_at")
    stored = await conn.fetch(
        "INSERT INTO alerts (alert_id, invitation_id, contact_id, site_id, network, raised_at, "
        "reasons, answers) "
        "SELECT a, i, c, s, n, r, string_to_array(x, ','), y "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
        "$6::timestamptz[], $7::text[], $8::jsonb[]) AS u(a, i, c, s, n, r, x, y) "
        "ON CONFLICT (invitation_id) DO NOTHING RETURNING invitation_id",
        *[[row[name] for row in rows] for name in fields],
        [",".join(row["reasons"]) for row in rows],
        [row["answers"] for row in rows],
    )
    return {row["invitation_id"] for row in stored}


async def lock_sites_due(
    conn: Connection, *, older_than: datetime, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT site_id, network, site_name, pending_since FROM sites WHERE dirty AND "
        "(last_published_at IS NULL OR last_published_at <= $1) "
        "ORDER BY site_id LIMIT $2 FOR UPDATE SKIP LOCKED",
        older_than,
        limit,
    )


async def mark_published(conn: Connection, *, site_id: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE sites SET dirty = false, last_published_at = $2, pending_since = NULL "
        "WHERE site_id = $1",
        site_id,
        at,
    )


async def tally_between(
    conn: Connection, *, site_id: str, start: date, end: date
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


async def tallies_for_periods(
    conn: Connection, *, site_id: str, periods: list[tuple[date, date]]
) -> list[dict[str, dict[str, int]]]:
    """The site's tally for each (start, end) period, in one scan of the site-level rollup."""
    sums = ", ".join(
        f"sum(count) FILTER (WHERE day BETWEEN ${2 * n + 3} AND ${2 * n + 4})::bigint"
        for n in range(len(periods))
    )
    rows = await conn.fetch(
        f"SELECT item, value, {sums} FROM site_day_tallies "
        "WHERE site_id = $1 AND day >= $2 GROUP BY item, value",
        site_id, min(start for start, _ in periods), *[d for period in periods for d in period],
    )  # fmt: skip
    tallies: list[dict[str, dict[str, int]]] = [{} for _ in periods]
    for row in rows:
        for index, tally in enumerate(tallies):
            if row[index + 2]:
                tally.setdefault(row["item"], {})[row["value"]] = int(row[index + 2])
    return tallies


async def invitations_for_periods(
    conn: Connection, *, site_id: str, periods: list[tuple[date, date]]
) -> list[int]:
    sums = ", ".join(
        f"coalesce(sum(count) FILTER (WHERE day BETWEEN ${2 * n + 3} AND ${2 * n + 4}), 0)"
        for n in range(len(periods))
    )
    row = await conn.fetchrow(
        f"SELECT {sums} FROM invitation_tallies WHERE site_id = $1 AND day >= $2",
        site_id, min(start for start, _ in periods), *[d for period in periods for d in period],
    )  # fmt: skip
    assert row is not None
    return [int(value) for value in row.values()]


async def invitations_between(conn: Connection, *, site_id: str, start: date, end: date) -> int:
    value = await conn.fetchval(
        "SELECT coalesce(sum(count), 0) FROM invitation_tallies "
        "WHERE site_id = $1 AND day BETWEEN $2 AND $3",
        site_id, start, end,
    )  # fmt: skip
    return int(value)


async def fcr_counts(
    conn: Connection, *, site_id: str, start: datetime, end: datetime,
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
               count(*) FILTER (WHERE NOT repeated
                                AND closed_at + make_interval(days => $4) <= $5) AS resolved,
               count(*) FILTER (WHERE NOT repeated
                                AND closed_at + make_interval(days => $4) > $5) AS pending
        FROM mine
        """,
        site_id, start, end, window_days, as_of,
    )  # fmt: skip
    assert row is not None
    return int(row["resolved"]), int(row["repeated"]), int(row["pending"])


# Breakdown dimensions -> tally column; a whitelist, since a column name cannot be a parameter.
BREAKDOWN_COLUMNS = {
    "channel": "channel",
    "motif": "motif",
    "nature": "nature",
    "profile": "profile",
}
INVITATION_DIMENSIONS = frozenset({"channel", "motif"})  # what invitation_tallies is keyed by
CONTACT_DIMENSIONS = frozenset({"channel", "motif"})  # what the contacts table holds


async def tally_by(
    conn: Connection, *, site_id: str, start: date, end: date, dimension: str
) -> dict[str, dict[str, dict[str, int]]]:
    """Cell (e.g. the channel) -> tally, for one site and a day range."""
    column = BREAKDOWN_COLUMNS[dimension]
    rows = await conn.fetch(
        f"SELECT {column} AS cell, item, value, sum(count)::bigint AS n FROM tallies "
        "WHERE site_id = $1 AND day BETWEEN $2 AND $3 GROUP BY 1, 2, 3",
        site_id, start, end,
    )  # fmt: skip
    cells: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        cells.setdefault(row["cell"], {}).setdefault(row["item"], {})[row["value"]] = int(row["n"])
    return cells


async def invitations_by(
    conn: Connection, *, site_id: str, start: date, end: date, dimension: str
) -> dict[str, int]:
    if dimension not in INVITATION_DIMENSIONS:
        return {}
    rows = await conn.fetch(
        f"SELECT {dimension} AS cell, sum(count)::bigint AS n FROM invitation_tallies "
        "WHERE site_id = $1 AND day BETWEEN $2 AND $3 GROUP BY 1",
        site_id, start, end,
    )  # fmt: skip
    return {row["cell"]: int(row["n"]) for row in rows}


async def fcr_counts_by(
    conn: Connection, *, site_id: str, start: datetime, end: datetime,
    window_days: int, as_of: datetime, dimension: str,
) -> dict[str, tuple[int, int, int]]:  # fmt: skip
    """`fcr_counts` per channel or motif of the site's contacts."""
    if dimension not in CONTACT_DIMENSIONS:
        return {}
    rows = await conn.fetch(
        f"""
        WITH mine AS (
            SELECT c.{dimension} AS cell, c.closed_at, EXISTS (
                SELECT 1 FROM contacts o WHERE o.user_hash = c.user_hash AND o.motif = c.motif
                AND o.closed_at > c.closed_at
                AND o.closed_at <= c.closed_at + make_interval(days => $4)
            ) AS repeated
            FROM contacts c WHERE c.site_id = $1 AND c.closed_at >= $2 AND c.closed_at < $3
        )
        SELECT cell,
               count(*) FILTER (WHERE repeated) AS repeated,
               count(*) FILTER (WHERE NOT repeated
                                AND closed_at + make_interval(days => $4) <= $5) AS resolved,
               count(*) FILTER (WHERE NOT repeated
                                AND closed_at + make_interval(days => $4) > $5) AS pending
        FROM mine GROUP BY cell
        """,
        site_id, start, end, window_days, as_of,
    )  # fmt: skip
    return {
        row["cell"]: (int(row["resolved"]), int(row["repeated"]), int(row["pending"]))
        for row in rows
    }


async def contact_distributions(
    conn: Connection, *, site_id: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """CNAV tracking: contacts by motif, by channel, by both; users by number of contacts."""
    rows = await conn.fetch(
        "SELECT motif, channel, count(*)::bigint AS n FROM contacts "
        "WHERE site_id = $1 AND closed_at >= $2 AND closed_at < $3 GROUP BY 1, 2",
        site_id, start, end,
    )  # fmt: skip
    per_user = await conn.fetch(
        "SELECT CASE WHEN n >= 5 THEN '5+' ELSE n::text END AS bucket, count(*)::bigint AS users "
        "FROM (SELECT user_hash, count(*) AS n FROM contacts "
        "      WHERE site_id = $1 AND closed_at >= $2 AND closed_at < $3 GROUP BY 1) u "
        "GROUP BY 1",
        site_id, start, end,
    )  # fmt: skip
    by_motif: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    by_both: dict[str, dict[str, int]] = {}
    for row in rows:
        n = int(row["n"])
        by_motif[row["motif"]] = by_motif.get(row["motif"], 0) + n
        by_channel[row["channel"]] = by_channel.get(row["channel"], 0) + n
        by_both.setdefault(row["motif"], {})[row["channel"]] = n
    users = {"1": 0, "2": 0, "3": 0, "4": 0, "5+": 0}
    for row in per_user:
        users[row["bucket"]] = int(row["users"])
    return {
        "contacts": sum(by_motif.values()),
        "by_motif": dict(sorted(by_motif.items())),
        "by_channel": dict(sorted(by_channel.items())),
        "by_motif_and_channel": {
            motif: dict(sorted(c.items())) for motif, c in sorted(by_both.items())
        },
        "users_by_contact_count": users,
    }


async def add_verbatims(conn: Connection, *, rows: list[tuple[Any, ...]]) -> None:
    await conn.executemany(
        "INSERT INTO verbatims (response_id, site_id, day, channel, motif, text, satisfaction, "
        "recommandation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (response_id) DO NOTHING",
        rows,
    )


async def verbatims_between(
    conn: Connection, *, site_id: str, start: date, end: date
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT day, channel, motif, text, satisfaction, recommandation FROM verbatims "
        "WHERE site_id = $1 AND day BETWEEN $2 AND $3 ORDER BY satisfaction NULLS LAST, day",
        site_id,
        start,
        end,
    )
