"""Plain SQL for scoring. Keyword-only functions; the caller owns the transaction."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
from pydantic_core import to_json

from contracts.events import DetractorAlert
from plumbing.db import Connection
from scoring import tally_vectors

TalliedResponse = tally_vectors.TalliedResponse
"""One response: site, day (ISO date), channel, motif, nature, profile, and its tally cells
{item: value as text} (`domain.tally_rows`)."""

# Element-wise sum of two count vectors (the shorter padded with zeros). Inline rather than the
# schema's tally_add(): the rebuild writes to another schema, without the functions.
_VECTOR_SUM = (
    "(SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY n) "
    "FROM unnest(t.counts, EXCLUDED.counts) WITH ORDINALITY AS u(x, y, n))"
)
# One row per site and day of the batch, written in key order (concurrent writers lock rows in
# one order). The batch travels as one JSON document: an array parameter costs the driver a
# Python-level check per element.
_ADD_VECTORS = f"""
INSERT INTO site_day_vectors AS t (site_id, day, counts)
SELECT r->>0, (r->>1)::date, (r->>2)::integer[]
FROM jsonb_array_elements($1::text::jsonb) AS r ORDER BY 1, 2
ON CONFLICT (site_id, day) DO UPDATE SET counts = {_VECTOR_SUM}
"""


def json_document(value: Any) -> str:
    """A batch's rows as one JSON text parameter: pydantic-core's encoder, three times
    json.dumps' speed on these lists of strings (the same document: test_tally_vectors)."""
    return to_json(value).decode()


async def add_tallies(
    conn: Connection,
    *,
    responses: Sequence[TalliedResponse],
    positions: dict[tally_vectors.Cell, int],
) -> None:
    """Add +1 per cell of each response to its site and day's count vector, in one round trip
    (two more when the batch holds a cell seen for the first time). The breakdowns by channel,
    motif, nature and profile are the responses' facts (`add_response_facts`, view `tallies`).

    `positions` caches the committed cell positions across calls (positions never change). Call
    it once per transaction: the cells it reads before inserting any are committed ones."""
    if not responses:
        return
    try:
        site_days = tally_vectors.fold(responses, positions)
    except KeyError:  # a cell not cached yet
        positions.update(await cell_positions(conn))
        used: Mapping[tally_vectors.Cell, int] = positions
        if missing := sorted(tally_vectors.cells_of(responses) - positions.keys()):
            used = {**positions, **await add_cells(conn, missing)}  # not cached: uncommitted
        site_days = tally_vectors.fold(responses, used)
    await add_vectors(conn, vectors=site_days)


async def add_vectors(conn: Connection, *, vectors: tally_vectors.Vectors) -> None:
    """Add folded count vectors (`tally_vectors.fold`) to their rows, in one round trip."""
    literal = tally_vectors.literal
    await conn.execute(
        _ADD_VECTORS, json_document([[*key, literal(v)] for key, v in vectors.items()])
    )


async def copy_vectors(conn: Connection, *, vectors: tally_vectors.Vectors) -> None:
    """Write folded count vectors into an EMPTY table (the rebuild's, whose keys are each folded
    once): COPY in text form, with no conflict to resolve. Text, not asyncpg's binary COPY: a
    vector is one `literal` (C), where the binary encoder checks every element in Python."""
    if vectors:
        await _copy_lines(conn, "site_day_vectors", ["site_id", "day", "counts"], vectors.items())


async def _copy_lines(
    conn: Connection, table: str, columns: list[str],
    vectors: Iterable[tuple[tuple[str, ...], list[int]]],
) -> None:  # fmt: skip
    key_tabs = len(columns) - 2  # between the key's fields, when its values hold none
    literal = tally_vectors.literal

    def line(key: tuple[str, ...], vector: list[int]) -> str:
        text = "\t".join(key)
        # The contracts' identifiers, days and codes hold nothing COPY escapes: a key is escaped
        # field by field only when it does (a value's tab shows as a tab too many).
        if text.count("\t") != key_tabs or _COPY_SPECIAL.search(text):
            text = "\t".join(value.translate(_COPY_ESCAPES) for value in key)
        return text + "\t" + literal(vector) + "\n"

    lines = (line(key, vector) for key, vector in vectors)
    await conn.copy_to_table(table, source=_streamed(lines), columns=columns)


COPY_CHUNK_LINES = 2000


async def _streamed(lines: Iterable[str]) -> AsyncIterator[bytes]:
    """COPY data sent as it is made, in chunks: PostgreSQL parses one while Python makes the
    next."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= COPY_CHUNK_LINES:
            yield "".join(chunk).encode()
            chunk = []
    if chunk:
        yield "".join(chunk).encode()


async def copy_response_facts(conn: Connection, *, rows: Sequence[tuple[Any, ...]]) -> None:
    """`add_response_facts` for the rebuild's table, which starts EMPTY and has no index: the
    rows unique by response id (the caller keeps the first, as ON CONFLICT DO NOTHING does);
    the teams come once every contact is in (`fill_response_teams`). One JSON document, made by
    pydantic-core in one call: the rebuild's Python is its bottleneck, PostgreSQL has time to
    parse (a COPY line per row cost the rebuild's thread twice the Python time)."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO response_facts (response_id, invitation_id, contact_id, site_id, day, "
        "answered_at, channel, motif, nature, profile, cells) "
        "SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::date, (r->>5)::timestamptz, r->>6, r->>7, "
        "r->>8, r->>9, r->10 FROM jsonb_array_elements($1::text::jsonb) AS r",
        json_document(rows),
    )


async def fill_response_teams(conn: Connection) -> None:
    """Each response's team from its contact, where it has none yet (`copy_response_facts`)."""
    await conn.execute(
        "UPDATE response_facts r SET team = c.team FROM contacts c "
        "WHERE r.team IS NULL AND c.team IS NOT NULL AND r.contact_id = c.contact_id"
    )


# COPY's text format: a backslash, a tab, a newline or a carriage return in a value is escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile(r"[\\\n\r]")  # what COPY escapes, but the tab


async def cell_positions(conn: Connection) -> dict[tally_vectors.Cell, int]:
    rows = await conn.fetch("SELECT item, value, position FROM tally_cells")
    return {(row[0], row[1]): row[2] for row in rows}


async def add_cells(
    conn: Connection, cells: list[tally_vectors.Cell]
) -> dict[tally_vectors.Cell, int]:
    """Give new cells their positions, in sorted order (two writers never wait on each other's
    cells in opposite orders); returns the positions of `cells`, whoever added them."""
    items, values = [item for item, _ in cells], [value for _, value in cells]
    await conn.execute(
        "INSERT INTO tally_cells (item, value) SELECT * FROM unnest($1::text[], $2::text[]) "
        "ON CONFLICT (item, value) DO NOTHING",
        items, values,
    )  # fmt: skip
    rows = await conn.fetch(
        "SELECT item, value, position FROM tally_cells c "
        "JOIN unnest($1::text[], $2::text[]) AS u(i, v) ON c.item = u.i AND c.value = u.v",
        items, values,
    )  # fmt: skip
    return {(row[0], row[1]): row[2] for row in rows}


async def add_invitations(
    conn: Connection, *, increments: Mapping[tuple[str, date, str, str], int],
    answered: Mapping[tuple[str, date, str, str], int] | None = None,
    open_until: Mapping[tuple[str, date, str, str], datetime] | None = None,
) -> None:  # fmt: skip
    """Add to the invitation cohorts (site, send day, channel, motif): invitations sent,
    `answered` answers to them, and `open_until` (a max) when their last link expires. Every
    column is a sum or a max: events in any order give the same rows."""
    answers = answered or {}
    expiries = open_until or {}
    keys = sorted(increments.keys() | answers.keys())
    if not keys:
        return
    # The same additions to each site and send day's cohort (site_day_cohorts, what the
    # publisher reads), in the same statement, in key order like the cohorts' rows. One JSON
    # document (`json_document`): seven arrays cost the driver a Python-level check per element
    # (a batch of old answers has a cohort per site, day, channel and motif: thousands).
    await conn.execute(
        "WITH added (site_id, day, channel, motif, count, answered, open_until) AS ("
        " SELECT r->>0, (r->>1)::date, r->>2, r->>3, (r->>4)::bigint, (r->>5)::bigint, "
        " (r->>6)::timestamptz FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY "
        " AS e(r, o) ORDER BY o), "
        "tallied AS (INSERT INTO invitation_tallies AS t (site_id, day, channel, motif, count, "
        " answered, open_until) SELECT * FROM added "
        " ON CONFLICT (site_id, day, channel, motif) DO UPDATE SET count = t.count + "
        " EXCLUDED.count, answered = t.answered + EXCLUDED.answered, "
        " open_until = greatest(t.open_until, EXCLUDED.open_until)) "
        "INSERT INTO site_day_cohorts AS c (site_id, day, invited, answered, open_until) "
        "SELECT site_id, day, sum(count), sum(answered), max(open_until) FROM added "
        "GROUP BY site_id, day ORDER BY site_id, day "
        "ON CONFLICT (site_id, day) DO UPDATE SET invited = c.invited + EXCLUDED.invited, "
        "answered = c.answered + EXCLUDED.answered, "
        "open_until = greatest(c.open_until, EXCLUDED.open_until)",
        json_document([
            [*key, increments.get(key, 0), answers.get(key, 0), expiries.get(key)]
            for key in keys
        ]),
    )  # fmt: skip


async def copy_cohorts(
    conn: Connection, *, increments: Mapping[tuple[str, date, str, str], int],
    answered: Mapping[tuple[str, date, str, str], int],
    open_until: Mapping[tuple[str, date, str, str], datetime],
) -> None:  # fmt: skip
    """`add_invitations` into the rebuild's EMPTY tables, the cohorts summed in memory: one row
    per cohort, and per site and send day (site_day_cohorts), by COPY, with no conflict to
    resolve."""
    rows = [
        (*key, increments.get(key, 0), answered.get(key, 0), open_until.get(key))
        for key in sorted(increments.keys() | answered.keys())
    ]
    columns = ["site_id", "day", "channel", "motif", "count", "answered", "open_until"]
    await conn.copy_records_to_table("invitation_tallies", records=rows, columns=columns)
    site_days: dict[tuple[str, date], list[Any]] = {}
    for site, day, _, _, invited, answers, until in rows:
        summed = site_days.setdefault((site, day), [0, 0, None])
        summed[0] += invited
        summed[1] += answers
        if until is not None and (summed[2] is None or until > summed[2]):
            summed[2] = until
    await conn.copy_records_to_table(
        "site_day_cohorts", records=[(*key, *summed) for key, summed in site_days.items()],
        columns=["site_id", "day", "invited", "answered", "open_until"],
    )  # fmt: skip


async def add_contacts(conn: Connection, *, rows: list[tuple[Any, ...]]) -> None:
    """Store contacts (contact id, site, network, user pseudonym, channel, motif, closed at,
    team: never an agent), and
    give their pseudonym to the verbatims and alerts of those contacts that came first."""
    await conn.execute(  # one statement, the rows as one JSON document (as the tallies)
        "INSERT INTO contacts (contact_id, site_id, network, user_pseudo_id, channel, motif, "
        "closed_at, team) SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->>5, "
        "(r->>6)::timestamptz, r->>7 FROM jsonb_array_elements($1::text::jsonb) AS r "
        "ORDER BY 1 ON CONFLICT (contact_id) DO NOTHING",
        json_document([list(row) for row in rows]),
    )
    ids = sorted({row[0] for row in rows})
    if with_team := sorted({row[0] for row in rows if row[7] is not None}):
        await conn.execute(  # issue #15: the team of the responses that came before their contact
            "UPDATE response_facts r SET team = c.team FROM contacts c "
            "WHERE r.team IS NULL AND c.team IS NOT NULL AND r.contact_id = c.contact_id "
            "AND c.contact_id = ANY($1::text[])",
            with_team,
        )
    for table in ("verbatims", "alerts"):
        await conn.execute(
            f"UPDATE {table} t SET user_pseudo_id = c.user_pseudo_id FROM contacts c "
            "WHERE t.user_pseudo_id IS NULL AND t.contact_id = c.contact_id "
            "AND c.contact_id = ANY($1::text[])",
            ids,
        )


async def erase_user(conn: Connection, *, user_pseudo_id: str) -> dict[str, int]:
    """A user's erasure: their contacts and verbatims go; their alerts stay (anonymous counts)
    but lose the contact id and the pseudonym that pointed at them. Tallies are anonymous."""
    known = "SELECT contact_id FROM contacts WHERE user_pseudo_id = $1"
    verbatims = await conn.fetchval(
        "WITH gone AS (DELETE FROM verbatims WHERE user_pseudo_id = $1 "
        f"OR contact_id IN ({known}) RETURNING 1) SELECT count(*) FROM gone",
        user_pseudo_id,
    )
    alerts = await conn.fetchval(
        "WITH unlinked AS (UPDATE alerts SET contact_id = NULL, user_pseudo_id = NULL "
        f"WHERE user_pseudo_id = $1 OR contact_id IN ({known}) RETURNING 1) "
        "SELECT count(*) FROM unlinked",
        user_pseudo_id,
    )
    await conn.execute(  # issue #15: a response's row no longer points at the contact
        f"UPDATE response_facts SET contact_id = NULL WHERE contact_id IN ({known})",
        user_pseudo_id,
    )
    contacts = await conn.fetchval(
        "WITH gone AS (DELETE FROM contacts WHERE user_pseudo_id = $1 RETURNING 1) "
        "SELECT count(*) FROM gone",
        user_pseudo_id,
    )
    return {"contacts": int(contacts), "verbatims": int(verbatims), "alerts": int(alerts)}


PAST_RETENTION = {
    "response_facts": ("day < $1", "facts_before"),
    "verbatims": ("day < $1", "facts_before"),
    "invitation_facts": ("coalesce(sent_day, reminded_at::date) < $1", "facts_before"),
    "contacts": ("closed_at < $1", "contacts_before"),
}
"""What `purge` deletes of the rows a replay writes again: each table's condition on a row, and
the `retention_horizon` bound it is compared with. The purge also keeps the facts counted
after the bound (`counted_at`, their claim); the rebuild finds those live too."""


async def purge(
    conn: Connection, *, contacts_before: datetime, verbatims_before: date,
    alerts_before: datetime, inbox_before: Mapping[str, datetime],
) -> dict[str, int]:  # fmt: skip
    """Delete what is past its retention; `inbox_before` is per topic (topic -> oldest kept)."""
    deleted = {"response_facts": await _archive_response_facts(conn, before=verbatims_before)}
    for table, condition, limit in (
        ("contacts", PAST_RETENTION["contacts"][0], contacts_before),
        ("verbatims", PAST_RETENTION["verbatims"][0], verbatims_before),
        (
            "invitation_facts",
            f"{PAST_RETENTION['invitation_facts'][0]} AND counted_at < $1",
            verbatims_before,
        ),
        ("alerts", "raised_at < $1", alerts_before),
    ):
        deleted[table] = int(await conn.fetchval(
            f"WITH gone AS (DELETE FROM {table} WHERE {condition} RETURNING 1) "
            "SELECT count(*) FROM gone",
            limit,
        ))  # fmt: skip
    topics = sorted(inbox_before)
    deleted["inbox"] = int(await conn.fetchval(
        "WITH gone AS (DELETE FROM inbox i USING unnest($1::text[], $2::timestamptz[]) "
        "AS k(topic, oldest) WHERE i.topic = k.topic AND i.received_at < k.oldest RETURNING 1) "
        "SELECT count(*) FROM gone",
        topics, [inbox_before[topic] for topic in topics],
    ))  # fmt: skip
    await conn.execute(  # for the rebuild: what it finds again past these was deleted here
        "INSERT INTO retention_horizon AS h (facts_before, contacts_before) VALUES ($1, $2) "
        "ON CONFLICT (only_row) DO UPDATE SET "
        "facts_before = greatest(h.facts_before, EXCLUDED.facts_before), "
        "contacts_before = greatest(h.contacts_before, EXCLUDED.contacts_before)",
        verbatims_before, contacts_before,
    )  # fmt: skip
    return deleted


async def retention_horizon(conn: Connection) -> dict[str, Any]:
    """How far the purge has deleted (`purge`): {} before its first run."""
    row = await conn.fetchrow("SELECT facts_before, contacts_before FROM retention_horizon")
    return dict(row) if row is not None else {}


# The count vector of a group of (position, n) rows: zeros where no row is.
_VECTOR_OF = (
    "(SELECT array_agg(coalesce(x.n, 0)::integer ORDER BY g.p) "
    "FROM generate_series(1, max(position)) AS g(p) "
    "LEFT JOIN unnest(array_agg(position), array_agg(n)) AS x(p, n) ON x.p = g.p)"
)
# Issue #15, the verbatims' retention, also after they were counted (issue #14: the facts are
# what keeps a response or an invitation from counting twice).
_FACTS_PAST_RETENTION = f"{PAST_RETENTION['response_facts'][0]} AND counted_at < $1"


async def _archive_response_facts(conn: Connection, *, before: date) -> int:
    """Delete the response facts past their retention, their breakdown counts added to the
    archived vectors in the same statement (migration 0270: `tallies` sums both, so the
    breakdowns do not change). Returns how many facts went."""
    await conn.execute(  # the cells of facts written before their positions were (none today)
        "INSERT INTO tally_cells (item, value) SELECT DISTINCT e.key, e.value "
        f"FROM response_facts, jsonb_each_text(cells) AS e WHERE {_FACTS_PAST_RETENTION} "
        "ORDER BY 1, 2 ON CONFLICT DO NOTHING",
        before,
    )
    return int(await conn.fetchval(
        f"""
        WITH gone AS (
            DELETE FROM response_facts WHERE {_FACTS_PAST_RETENTION}
            RETURNING site_id, day, channel, motif, nature, profile, cells
        ), cells AS (
            SELECT g.site_id, g.day, g.channel, g.motif, g.nature, g.profile, c.position,
                   count(*) AS n
            FROM gone g CROSS JOIN LATERAL jsonb_each_text(g.cells) AS e
            JOIN tally_cells c ON c.item = e.key AND c.value = e.value
            GROUP BY 1, 2, 3, 4, 5, 6, 7
        ), archived AS (
            INSERT INTO tally_vectors AS t (site_id, day, channel, motif, nature, profile, counts)
            SELECT site_id, day, channel, motif, nature, profile, {_VECTOR_OF}
            FROM cells GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
            ON CONFLICT (site_id, day, channel, motif, nature, profile)
            DO UPDATE SET counts = {_VECTOR_SUM}
        )
        SELECT count(*) FROM gone
        """,
        before,
    ))  # fmt: skip


async def write_reporting_settings(conn: Connection, *, anonymity_floor: int) -> None:
    """The floor the reporting views read (reporting_anonymity_floor())."""
    await conn.execute(
        "INSERT INTO reporting_settings (id, anonymity_floor) VALUES (true, $1) "
        "ON CONFLICT (id) DO UPDATE SET anonymity_floor = EXCLUDED.anonymity_floor, "
        "updated_at = now() WHERE reporting_settings.anonymity_floor <> EXCLUDED.anonymity_floor",
        anonymity_floor,
    )


async def set_site_timezones(conn: Connection, *, zones: Mapping[str, tuple[str, bool]]) -> None:
    """Each site's clock (site -> (IANA zone, told by an event)): a zone an event told replaces
    the stored one; a default (an event older than the field) only fills an empty one. One
    statement, and no row written when nothing changes."""
    if not zones:
        return
    ids = sorted(zones)  # concurrent writers lock the rows in one order
    await conn.execute(
        "UPDATE sites SET timezone = z.zone FROM (SELECT s, CASE WHEN told THEN zn "
        "ELSE coalesce(sites.timezone, zn) END AS zone FROM unnest($1::text[], $2::text[], "
        "$3::bool[]) AS u(s, zn, told) JOIN sites ON sites.site_id = u.s) z "
        "WHERE sites.site_id = z.s AND sites.timezone IS DISTINCT FROM z.zone",
        ids, [zones[site][0] for site in ids], [zones[site][1] for site in ids],
    )  # fmt: skip


async def site_timezone(conn: Connection, *, site_id: str) -> str | None:
    """The site's clock as its events last told it; None for a site never heard of (or only
    before issue #15: the caller falls back to contracts.sites)."""
    value = await conn.fetchval("SELECT timezone FROM sites WHERE site_id = $1", site_id)
    return None if value is None else str(value)


async def site_network(conn: Connection, *, site_id: str) -> str | None:
    """The site's network, None when scoring has never heard of the site."""
    value = await conn.fetchval("SELECT network FROM sites WHERE site_id = $1", site_id)
    return None if value is None else str(value)


SITES_DIRTY_CHANNEL = "scoring_sites_dirty"
"""NOTIFY channel: sent in the transaction that marks sites dirty, so delivered on its commit;
the publisher listens and publishes at once the sites whose interval has passed. The payload
names the sites marked, comma-separated (empty when too long for a payload: any site)."""
NOTIFY_PAYLOAD_MAX = 7000  # PostgreSQL refuses 8000 bytes or more


async def mark_sites_dirty(
    conn: Connection,
    *,
    sites: Iterable[tuple[str, str, str | None]],
    pending_since: Mapping[str, datetime] | None = None,
    traceparent: str | None = None,
) -> None:
    """Flag sites for the publisher; `pending_since` keeps each site's oldest unpublished
    response (event time) so the publisher can measure submitted -> published; `traceparent`
    (the marking batch's trace) is kept when none is waiting, for the publish to continue."""
    oldest = pending_since or {}
    merged: dict[str, tuple[str, str | None]] = {}
    for site_id, network, site_name in sorted(sites, key=lambda site: site[0]):
        known = merged.get(site_id)
        merged[site_id] = (known[0] if known else network, (known and known[1]) or site_name)
    if not merged:
        return
    ids = list(merged)  # sorted: concurrent writers lock the rows in one order
    await conn.execute(
        "WITH marked AS (INSERT INTO sites (site_id, network, site_name, dirty, pending_since, "
        "traceparent, dirty_since) SELECT s, n, sn, true, p, $5::text, now() FROM "
        "unnest($1::text[], $2::text[], $3::text[], "
        "$4::timestamptz[]) WITH ORDINALITY AS u(s, n, sn, p, o) ORDER BY o "
        "ON CONFLICT (site_id) DO UPDATE SET dirty = true, dirty_seq = sites.dirty_seq + 1, "
        "dirty_since = CASE WHEN sites.dirty THEN sites.dirty_since ELSE now() END, "
        "site_name = coalesce(EXCLUDED.site_name, sites.site_name), "
        "pending_since = least(sites.pending_since, EXCLUDED.pending_since), "
        "traceparent = coalesce(sites.traceparent, EXCLUDED.traceparent) RETURNING 1) "
        f"SELECT pg_notify('{SITES_DIRTY_CHANNEL}', $6) FROM (SELECT count(*) FROM marked) m",
        ids,
        [merged[site_id][0] for site_id in ids],
        [merged[site_id][1] for site_id in ids],
        [oldest.get(site_id) for site_id in ids],
        traceparent,
        named if len((named := ",".join(ids)).encode()) < NOTIFY_PAYLOAD_MAX else "",
    )  # the NOTIFY in the same round trip


async def save_alerts(conn: Connection, *, alerts: Sequence[DetractorAlert]) -> set[str]:
    """Store alerts in one statement; return the invitation ids whose alert is new (one alert
    per invitation, whatever the redeliveries or resubmissions)."""
    if not alerts:
        return set()
    document = json.dumps(
        [
            [alert.alert_id, alert.invitation_id, alert.contact_id, alert.site_id,
             alert.network, alert.raised_at.isoformat(), [r.value for r in alert.reasons],
             alert.answers]
            for alert in alerts
        ],
        ensure_ascii=False,
    )  # fmt: skip
    stored = await conn.fetch(
        "INSERT INTO alerts (alert_id, invitation_id, contact_id, site_id, network, raised_at, "
        "reasons, answers, user_pseudo_id) "
        "SELECT a->>0, a->>1, a->>2, a->>3, a->>4, (a->>5)::timestamptz, "
        "ARRAY(SELECT jsonb_array_elements_text(a->6)), a->7, "
        "(SELECT c.user_pseudo_id FROM contacts c WHERE c.contact_id = a->>2) "
        "FROM jsonb_array_elements($1::text::jsonb) AS a "
        "ON CONFLICT (invitation_id) DO NOTHING RETURNING invitation_id",
        document,
    )
    return {row["invitation_id"] for row in stored}


# --------------------------------------------------------------------------- call-backs

DETRACTOR_RULES_CHANNEL = "scoring_detractor_rules"
"""NOTIFY channel: sent in the transaction that changes a network's detractor rule, so every
replica reloads its rules on the commit (scoring.callbacks.RuleBook)."""


async def alerts_by_id(
    conn: Connection, *, alert_ids: Sequence[str]
) -> dict[str, tuple[str, datetime]]:
    """alert id -> (site id, raised at), for the alerts scoring holds among `alert_ids`."""
    rows = await conn.fetch(
        "SELECT alert_id, site_id, raised_at FROM alerts WHERE alert_id = ANY($1::text[])",
        sorted(set(alert_ids)),
    )
    return {row["alert_id"]: (row["site_id"], row["raised_at"]) for row in rows}


async def record_callbacks(conn: Connection, *, rows: Sequence[tuple[Any, ...]]) -> set[str]:
    """Store call-back reports (callback id, alert id, site, outcome, team, completed at), once
    per callback id; return the ids that were new."""
    if not rows:
        return set()
    ordered = sorted(rows, key=lambda row: str(row[0]))
    stored = await conn.fetch(
        "INSERT INTO callbacks (callback_id, alert_id, site_id, outcome, team, completed_at) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
        "$6::timestamptz[]) ON CONFLICT (callback_id) DO NOTHING RETURNING callback_id",
        *[list(column) for column in zip(*ordered, strict=True)],
    )
    return {row["callback_id"] for row in stored}


async def complete_alerts(conn: Connection, *, rows: Sequence[tuple[Any, ...]]) -> int:
    """Mark alerts handled: rows of (alert id, callback id, outcome, team, completed at), at
    most one per alert. An alert keeps its earliest completion (a later or a repeated report
    changes nothing); a completion a little before the alert (clock skew) counts at raising."""
    if not rows:
        return 0
    ordered = sorted(rows, key=lambda row: str(row[0]))
    result = await conn.execute(
        "UPDATE alerts a SET handled_at = greatest(c.completed_at, a.raised_at), "
        "outcome = c.outcome, team = c.team, callback_id = c.callback_id "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) "
        "AS c (alert_id, callback_id, outcome, team, completed_at) "
        "WHERE a.alert_id = c.alert_id "
        "AND (a.handled_at IS NULL OR a.handled_at > greatest(c.completed_at, a.raised_at))",
        *[list(column) for column in zip(*ordered, strict=True)],
    )
    return int(result.split()[-1])


async def alerts_raised_between(
    conn: Connection, *, site_id: str, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """The site's alerts raised in [start, end): raised at, handled at, outcome."""
    return await conn.fetch(
        "SELECT raised_at, handled_at, outcome FROM alerts "
        "WHERE site_id = $1 AND raised_at >= $2 AND raised_at < $3 ORDER BY raised_at",
        site_id, start, end,
    )  # fmt: skip


async def open_alerts(conn: Connection, *, site_id: str) -> list[asyncpg.Record]:
    """The site's alerts nobody has called back yet, oldest first (an erased user's alert,
    without a contact id, included: it is still open, with nobody to call)."""
    return await conn.fetch(
        "SELECT alert_id, raised_at, contact_id, reasons FROM alerts "
        "WHERE site_id = $1 AND handled_at IS NULL ORDER BY raised_at",
        site_id,
    )


async def open_alerts_by_site(conn: Connection, *, older_than: datetime) -> list[asyncpg.Record]:
    """Per site with open alerts: how many, how many raised before `older_than`, the oldest."""
    return await conn.fetch(
        "SELECT site_id, count(*) AS open, count(*) FILTER (WHERE raised_at < $1) AS overdue, "
        "min(raised_at) AS oldest FROM alerts WHERE handled_at IS NULL GROUP BY site_id",
        older_than,
    )


async def detractor_rules(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch("SELECT network, rule FROM detractor_rules")
    return {row["network"]: row["rule"] for row in rows}  # jsonb arrives decoded


async def detractor_rule_row(conn: Connection, *, network: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT rule, updated_at, updated_by FROM detractor_rules WHERE network = $1",
        network,
    )


async def set_detractor_rule(
    conn: Connection, *, network: str, rule: dict[str, Any] | None, changed_by: str
) -> None:
    """Replace (or, with None, remove) a network's rule, audit the change (who, when, before,
    after) and tell every replica, all in the caller's transaction."""
    before = await conn.fetchval(
        "SELECT rule FROM detractor_rules WHERE network = $1 FOR UPDATE", network
    )
    if rule is None:
        await conn.execute("DELETE FROM detractor_rules WHERE network = $1", network)
    else:
        await conn.execute(
            "INSERT INTO detractor_rules (network, rule, updated_by) VALUES ($1, $2, $3) "
            "ON CONFLICT (network) DO UPDATE SET rule = EXCLUDED.rule, updated_at = now(), "
            "updated_by = EXCLUDED.updated_by",
            network, rule, changed_by,
        )  # fmt: skip
    await conn.execute(
        "INSERT INTO detractor_rules_audit (network, changed_by, before, after) "
        "VALUES ($1, $2, $3, $4)",
        network, changed_by, before, rule,
    )  # fmt: skip
    await conn.execute(f"NOTIFY {DETRACTOR_RULES_CHANNEL}")


async def detractor_rules_audit(
    conn: Connection, *, network: str, limit: int = 50
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT changed_by, changed_at, before, after "
        "FROM detractor_rules_audit WHERE network = $1 ORDER BY id DESC LIMIT $2",
        network, limit,
    )  # fmt: skip


@dataclass(frozen=True)
class Pace:
    """How often a dirty site may be published: every `interval`; every `catching_up` while
    its oldest unpublished answer is older than `catching_up_after` (a backlog of old answers,
    after an outage or in a replay: each event would be one more snapshot of a count still
    climbing, and the publishes would take the CPU the backlog needs). A site catching up is
    first published `catching_up` after it became dirty, not at once with the backlog's first
    batch (a site never published yet is, at once)."""

    interval: timedelta
    catching_up: timedelta
    catching_up_after: timedelta

    def parameters(self, now: datetime) -> tuple[datetime, timedelta, timedelta, timedelta]:
        """$1 to $4 of `_DUE_AT`."""
        return now, self.interval, self.catching_up, self.catching_up_after


# When a dirty site is due (`Pace`); NULL when it was never published: due at once.
_DUE_AT = (
    "CASE WHEN last_published_at IS NULL THEN NULL "
    "WHEN pending_since < $1::timestamptz - $4::interval "
    "THEN greatest(last_published_at, dirty_since) + $3::interval "
    "ELSE last_published_at + $2::interval END"
)


async def sites_due(
    conn: Connection, *, now: datetime, pace: Pace, limit: int
) -> tuple[list[str], datetime | None]:
    """Dirty sites due at `now` (never published first, then the longest waiting), and when the
    first of the dirty sites not due yet falls due."""
    rows = await conn.fetch(
        f"WITH dirty AS (SELECT site_id, last_published_at, {_DUE_AT} AS due_at FROM sites "
        "WHERE dirty) "
        "(SELECT site_id, NULL::timestamptz AS due_at FROM dirty "
        " WHERE due_at IS NULL OR due_at <= $1 "
        " ORDER BY last_published_at NULLS FIRST, site_id LIMIT $5) "
        "UNION ALL (SELECT NULL, min(due_at) FROM dirty WHERE due_at > $1)",
        *pace.parameters(now), limit,
    )  # fmt: skip
    due = [row["site_id"] for row in rows if row["site_id"] is not None]
    waiting = next((row["due_at"] for row in rows if row["site_id"] is None), None)
    return due, waiting


PUBLISH_LOCK_CLASS = 250_001
"""First key of the publishers' advisory locks (the second: a hash of the schema and the site
id, as advisory locks are per database); the migration's number, so no other advisory lock of
the database takes this class."""


async def claim_site_if_due(
    conn: Connection, *, site_id: str, now: datetime, pace: Pace
) -> asyncpg.Record | None:
    """Claim the site for this transaction's publish if it is still dirty and due; None when
    another publisher holds it or has just published it.

    Publishers exclude each other with a transaction-level advisory lock, not the sites row:
    the consumers' `mark_sites_dirty` of that row never waits for a publish. Two statements,
    in this order: a READ COMMITTED statement's snapshot is taken when it starts, so the read,
    which starts once the lock is held, sees the commit of the publisher that held it before
    (PostgreSQL releases a transaction's locks after its commit is visible), e.g. its
    `last_published_at`: the site is not due again and nobody publishes it twice in a row.
    Two sites whose ids hash alike take turns (the second is left dirty for the next round).

    The row's `dirty_seq` is read before the publish reads the tallies (later statements,
    later snapshots): a mark committed before this read is in the figures, one committed after
    it has counted `dirty_seq` up, so `mark_published` keeps the site dirty."""
    if not await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2))",
        PUBLISH_LOCK_CLASS,
        site_id,
    ):
        return None
    return await conn.fetchrow(
        "SELECT site_id, network, site_name, pending_since, traceparent, dirty_seq FROM sites "
        f"WHERE site_id = $5 AND dirty AND coalesce({_DUE_AT} <= $1, true)",
        *pace.parameters(now), site_id,
    )  # fmt: skip


async def mark_published(
    conn: Connection, *, site_id: str, at: datetime, dirty_seq: int,
    pending_since: datetime | None = None,
) -> bool:  # fmt: skip
    """Record the publish at `at` of the site as `claim_site_if_due` read it (`dirty_seq`);
    True when it is clean now. A mark committed since that read counted `dirty_seq` up: its
    changes may be missing from the published snapshot, so the site stays dirty and the next
    round publishes it again. Its `pending_since` then becomes that of the marks made since the
    claim: the one they lowered it to, else (their answers all newer than the claimed
    `pending_since`, which is published) the publish's own time, a close bound for answers
    marked during a publish. Keeping the claimed one made it stick under a steady flow (a mark
    during nearly every publish): the latency histogram grew without end and the site looked
    as if it were catching up on old answers (`Pace`).

    Why no mark is lost (READ COMMITTED): a mark's tallies and its `dirty_seq + 1` commit
    together. Committed before the claim's read: both are in the publish (its tallies are read
    by later statements, with later snapshots). Committed after that read: the UPDATE here sees
    its `dirty_seq` (an UPDATE checks the row's latest committed version, and waits for a mark
    in progress, then checks again), so `dirty` stays true. Not committed before this UPDATE:
    it waits for the publish's commit, then sets `dirty` itself. This UPDATE runs last, just
    before the commit, so that wait is the UPDATE's and the COMMIT's round trips, never the
    figures' computation nor the broker's ack."""
    return bool(
        await conn.fetchval(
            "UPDATE sites SET last_published_at = $2, dirty = dirty AND dirty_seq <> $3, "
            "pending_since = CASE WHEN dirty_seq = $3 THEN NULL "
            " WHEN $4::timestamptz IS NULL OR pending_since < $4 THEN pending_since "
            " ELSE $2 END, "
            "traceparent = CASE WHEN dirty_seq = $3 THEN NULL ELSE traceparent END "
            "WHERE site_id = $1 RETURNING NOT dirty",
            site_id,
            at,
            dirty_seq,
            pending_since,
        )
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


CohortDay = tuple[date, int, int, datetime | None]
SiteDays = tuple[str | None, list[date], list[tuple[date, str, list[int]]], list[CohortDay], bool]
"""A site's clock as its events told it, the days it has a count vector for, the vectors the
caller does not hold at their current row version (day, version, counts), its invitation
cohort of each send day, and whether it has contacts from the day before the first day on
(`site_days`)."""


async def site_days(
    conn: Connection, *, site_id: str, since: date, known: Mapping[date, str] | None = None
) -> SiteDays:
    """What the publisher sums per period (`tally_vectors.period_sums`, `period_cohorts`), from
    `since` on in day order, in one round trip and one snapshot: each day's count vector (one
    index range read, not every count unnested and grouped), each send day's cohort, and the
    site's clock (sites.timezone).

    Each day's vector comes with its row version (`xmin:cmin`: the (sub)transaction and the
    command that wrote it); `known` (day -> version) names the versions the caller holds, whose
    vectors are not sent again: a publish after a batch reads the few days the batch changed,
    not the site's months; the days that have a vector come as one array (a day gone is no
    longer in it). Two versions of a row share an `xmin:cmin` only when 2^32 transactions
    apart (the caller re-reads everything long before). The cohorts, one row per send day
    (site_day_cohorts, not every channel and motif summed again), come as arrays too: one row
    to decode, not one per day (issue #14).

    Last, whether the site has any contact closed since the day before `since` (UTC): without
    one, its periods' FCR counts are all zero, with no query to ask."""
    # The known days and versions as array literals, one text each: asyncpg checks every
    # element of a list it encodes as an array (three abc isinstance checks per version).
    days = "{" + ",".join(map(date.isoformat, known or ())) + "}"
    versions = "{" + ",".join((known or {}).values()) + "}"  # xmin:cmin, nothing to quote
    # A day before `since` at UTC midnight: before any clock's midnight of `since`.
    contacts_since = datetime.combine(since - timedelta(days=1), time(), UTC)
    rows = await conn.fetch(
        "SELECT true, (SELECT timezone FROM sites WHERE site_id = $1), "
        " EXISTS (SELECT 1 FROM contacts WHERE site_id = $1 AND closed_at >= $5), "
        " ARRAY(SELECT day FROM site_day_vectors WHERE site_id = $1 AND day >= $2 ORDER BY day), "
        " coalesce(array_agg(c.day ORDER BY c.day), '{}'), "
        " coalesce(array_agg(c.invited ORDER BY c.day), '{}'), "
        " coalesce(array_agg(c.answered ORDER BY c.day), '{}'), "
        " coalesce(array_agg(c.open_until ORDER BY c.day), '{}'), "
        " NULL::date, NULL::text, NULL::integer[] "
        "FROM site_day_cohorts AS c WHERE c.site_id = $1 AND c.day >= $2 "
        "UNION ALL "
        "SELECT false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, v.day, v.version, v.counts "
        "FROM (SELECT day, counts, xmin::text || ':' || cmin::text AS version "
        "      FROM site_day_vectors WHERE site_id = $1 AND day >= $2) AS v "
        "LEFT JOIN unnest($3::text::date[], $4::text::text[]) AS k (day, version) "
        "ON k.day = v.day "
        "WHERE k.version IS DISTINCT FROM v.version",
        site_id, since, days, versions, contacts_since,
    )  # fmt: skip
    head = next(row for row in rows if row[0])
    changed = [(row[8], row[9], row[10]) for row in rows if not row[0]]
    changed.sort()
    cohorts = list(zip(head[4], head[5], head[6], head[7], strict=True))
    return head[1], head[3], changed, cohorts, head[2]


async def cell_names(conn: Connection) -> dict[int, tally_vectors.Cell]:
    """Position -> (item, value) of every tally cell (positions never change)."""
    return {position: cell for cell, position in (await cell_positions(conn)).items()}


Counts = tuple[int, int, datetime | None]
"""A cohort's counts: invitations sent, answers to them, when its last link expires
(`domain.cohort_of(*counts)`)."""


async def cohorts_for_periods(
    conn: Connection, *, site_id: str, periods: list[tuple[date, date]]
) -> list[Counts]:
    """The cohort of the invitations sent in each (start, end) period, in one scan."""
    sums = ", ".join(
        f"coalesce(sum(count) FILTER (WHERE day BETWEEN ${2 * n + 3} AND ${2 * n + 4}), 0), "
        f"coalesce(sum(answered) FILTER (WHERE day BETWEEN ${2 * n + 3} AND ${2 * n + 4}), 0), "
        f"max(open_until) FILTER (WHERE day BETWEEN ${2 * n + 3} AND ${2 * n + 4})"
        for n in range(len(periods))
    )
    row = await conn.fetchrow(
        f"SELECT {sums} FROM invitation_tallies WHERE site_id = $1 AND day >= $2",
        site_id, min(start for start, _ in periods), *[d for period in periods for d in period],
    )  # fmt: skip
    assert row is not None
    values = list(row.values())
    return [
        (int(values[3 * n]), int(values[3 * n + 1]), values[3 * n + 2]) for n in range(len(periods))
    ]


async def cohort_between(conn: Connection, *, site_id: str, start: date, end: date) -> Counts:
    """The cohort of the site's invitations sent from `start` to `end` (days, inclusive)."""
    [counts] = await cohorts_for_periods(conn, site_id=site_id, periods=[(start, end)])
    return counts


async def cohorts_by(
    conn: Connection, *, site_id: str, start: date, end: date, dimension: str
) -> dict[str, Counts]:
    """The cohort of each channel or motif (what invitations are keyed by); none otherwise."""
    if dimension not in INVITATION_DIMENSIONS:
        return {}
    rows = await conn.fetch(
        f"SELECT {dimension} AS cell, sum(count)::bigint AS n, sum(answered)::bigint AS answered, "
        "max(open_until) AS open_until FROM invitation_tallies "
        "WHERE site_id = $1 AND day BETWEEN $2 AND $3 GROUP BY 1",
        site_id, start, end,
    )  # fmt: skip
    return {row["cell"]: (int(row["n"]), int(row["answered"]), row["open_until"]) for row in rows}


async def fcr_counts_for_periods(
    conn: Connection, *, site_id: str, periods: Sequence[tuple[datetime, datetime]],
    window_days: int, as_of: datetime,
) -> list[tuple[int, int, int]]:  # fmt: skip
    """`fcr_counts` for each [start, end) period, in one scan of the site's contacts."""
    counts = ", ".join(
        f"count(*) FILTER (WHERE {condition} AND closed_at >= ${2 * n + 4} "
        f"AND closed_at < ${2 * n + 5})"
        for n in range(len(periods))
        for condition in (
            "NOT repeated AND closed_at + make_interval(days => $2) <= $3",  # resolved
            "repeated",
            "NOT repeated AND closed_at + make_interval(days => $2) > $3",  # pending
        )
    )
    row = await conn.fetchrow(
        f"""
        WITH mine AS (
            SELECT c.closed_at, EXISTS (
                SELECT 1 FROM contacts o
                WHERE o.user_pseudo_id = c.user_pseudo_id AND o.motif = c.motif
                AND o.closed_at > c.closed_at
                AND o.closed_at <= c.closed_at + make_interval(days => $2)
            ) AS repeated
            FROM contacts c WHERE c.site_id = $1
            AND c.closed_at >= ${2 * len(periods) + 4} AND c.closed_at < ${2 * len(periods) + 5}
        )
        SELECT {counts} FROM mine
        """,
        site_id, window_days, as_of, *[moment for period in periods for moment in period],
        min(start for start, _ in periods), max(end for _, end in periods),
    )  # fmt: skip
    assert row is not None
    values = [int(value) for value in row.values()]
    return [(values[3 * n], values[3 * n + 1], values[3 * n + 2]) for n in range(len(periods))]


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
                SELECT 1 FROM contacts o
                WHERE o.user_pseudo_id = c.user_pseudo_id AND o.motif = c.motif
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
                SELECT 1 FROM contacts o
                WHERE o.user_pseudo_id = c.user_pseudo_id AND o.motif = c.motif
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
        "FROM (SELECT user_pseudo_id, count(*) AS n FROM contacts "
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
    """Rows: response id, site, day, channel, motif, text, satisfaction, recommandation, effort,
    contact id, then themes, tone, trigger words (JSON text) and tagger (issue #17,
    scoring.tagging.verbatim_tags); the user's pseudonym comes from the contact when it is known
    (else on its arrival)."""
    await conn.execute(  # one statement, the rows as one JSON document (as the tallies)
        "INSERT INTO verbatims (response_id, site_id, day, channel, motif, text, satisfaction, "
        "recommandation, effort, contact_id, themes, tone, trigger_words, tagger, user_pseudo_id) "
        "SELECT r->>0, r->>1, (r->>2)::date, r->>3, r->>4, r->>5, (r->>6)::int, (r->>7)::int, "
        "(r->>8)::int, r->>9, ARRAY(SELECT t FROM jsonb_array_elements_text(r->10) WITH ORDINALITY "
        "AS e(t, n) ORDER BY n), r->>11, "
        "(r->>12)::jsonb, r->>13, (SELECT user_pseudo_id FROM contacts WHERE contact_id = r->>9) "
        "FROM jsonb_array_elements($1::text::jsonb) AS r ORDER BY 1 "
        "ON CONFLICT (response_id) DO NOTHING",
        json_document([list(row) for row in rows]),
    )


async def verbatims_to_tag(
    conn: Connection, *, version: str, after: str, limit: int
) -> list[asyncpg.Record]:
    """Issue #17: the next verbatims (by response id, after `after`) that tagger `version` did
    not tag, locked; those another transaction holds are skipped."""
    return await conn.fetch(
        "SELECT response_id, text FROM verbatims WHERE response_id > $1 "
        "AND tagger IS DISTINCT FROM $2 ORDER BY response_id LIMIT $3 FOR UPDATE SKIP LOCKED",
        after, version, limit,
    )  # fmt: skip


async def set_verbatim_tags(conn: Connection, *, rows: list[tuple[Any, ...]]) -> None:
    """Rows: response id, themes, tone, trigger words (JSON text), tagger."""
    await conn.executemany(
        "UPDATE verbatims SET themes = $2, tone = $3, trigger_words = $4::text::jsonb, "
        "tagger = $5 WHERE response_id = $1",
        rows,
    )


async def verbatims_between(
    conn: Connection, *, site_id: str, start: date, end: date,
    theme: str | None = None, tone: str | None = None,
) -> list[asyncpg.Record]:  # fmt: skip
    """The period's verbatims, least satisfied first; `theme` / `tone` keep those tagged so
    (issue #17; a verbatim stored before tagging has a NULL tone and no theme)."""
    return await conn.fetch(
        "SELECT day, channel, motif, text, satisfaction, recommandation, effort, themes, tone, "
        "trigger_words FROM verbatims "
        "WHERE site_id = $1 AND day BETWEEN $2 AND $3 "
        "AND ($4::text IS NULL OR $4 = ANY(themes)) AND ($5::text IS NULL OR tone = $5) "
        "ORDER BY satisfaction NULLS LAST, day",
        site_id, start, end, theme, tone,
    )  # fmt: skip


async def irritant_weeks(
    conn: Connection, *, site_id: str, first_monday: date, last_monday: date
) -> dict[date, tuple[int, dict[str, int]]]:
    """Per ISO week (its Monday) from `first_monday` to the week of `last_monday`: the site's
    responses and, per theme, its irritant verbatims (issue #17). One query."""
    rows = await conn.fetch(
        "WITH weeks AS (SELECT date_trunc('week', day)::date AS monday, sum(count)::bigint AS n "
        "  FROM tallies WHERE site_id = $1 AND item = '__responses__' "
        "  AND day BETWEEN $2 AND $3::date + 6 GROUP BY 1), "
        "irritants AS (SELECT date_trunc('week', v.day)::date AS monday, t.theme, "
        "  count(*)::bigint AS n FROM verbatims v CROSS JOIN LATERAL unnest(v.themes) AS t(theme) "
        "  WHERE v.site_id = $1 AND v.tone = 'irritant' AND v.day BETWEEN $2 AND $3::date + 6 "
        "  GROUP BY 1, 2) "
        "SELECT w.monday, w.n AS responses, i.theme, i.n AS irritants "
        "FROM weeks w LEFT JOIN irritants i USING (monday)",
        site_id, first_monday, last_monday,
    )  # fmt: skip
    weeks: dict[date, tuple[int, dict[str, int]]] = {}
    for row in rows:
        _, counts = weeks.setdefault(row["monday"], (int(row["responses"]), {}))
        if row["theme"] is not None:
            counts[row["theme"]] = int(row["irritants"])
    return weeks


# --------------------------------------------------------------------------- managers (#15)


async def manager_row(conn: Connection, *, manager_id: str) -> dict[str, Any] | None:
    """A manager's mapping row with their sites (sorted), or None."""
    row = await conn.fetchrow(
        "SELECT m.manager_id, m.network, m.email, m.login_role, m.scope, m.updated_at, "
        "m.updated_by, coalesce(array_agg(s.site_id ORDER BY s.site_id) "
        "FILTER (WHERE s.site_id IS NOT NULL), '{}') AS sites "
        "FROM managers m LEFT JOIN manager_sites s USING (manager_id) "
        "WHERE m.manager_id = $1 GROUP BY m.manager_id",
        manager_id,
    )
    return None if row is None else dict(row)


async def managers_of_network(conn: Connection, *, network: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT m.manager_id, m.network, m.email, m.login_role, m.scope, m.updated_at, "
        "m.updated_by, coalesce(array_agg(s.site_id ORDER BY s.site_id) "
        "FILTER (WHERE s.site_id IS NOT NULL), '{}') AS sites "
        "FROM managers m LEFT JOIN manager_sites s USING (manager_id) "
        "WHERE m.network = $1 GROUP BY m.manager_id ORDER BY m.manager_id",
        network,
    )
    return [dict(row) for row in rows]


async def networks_of_sites(conn: Connection, *, site_ids: Sequence[str]) -> dict[str, str]:
    """site id -> network, for the sites scoring knows among `site_ids`."""
    rows = await conn.fetch(
        "SELECT site_id, network FROM sites WHERE site_id = ANY($1::text[])", list(site_ids)
    )
    return {row["site_id"]: row["network"] for row in rows}


def _manager_audit_json(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {key: row[key] for key in ("email", "scope", "sites", "login_role")}


async def put_manager(
    conn: Connection, *, manager_id: str, network: str, email: str, scope: str,
    sites: Sequence[str], login_role: str, password_verifier: str, changed_by: str,
) -> None:  # fmt: skip
    """Create or replace a manager's mapping and login role, audited, in the caller's
    transaction (the role and the rows commit together)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('manager:' || $1))", manager_id)
    before = await manager_row(conn, manager_id=manager_id)
    await conn.execute(
        "SELECT manager_role_put($1, $2, $3)", login_role, password_verifier, scope == "all"
    )
    await conn.execute(
        "INSERT INTO managers (manager_id, network, email, login_role, scope, updated_by) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (manager_id) DO UPDATE SET "
        "email = EXCLUDED.email, scope = EXCLUDED.scope, updated_at = now(), "
        "updated_by = EXCLUDED.updated_by",
        manager_id, network, email, login_role, scope, changed_by,
    )  # fmt: skip
    await conn.execute("DELETE FROM manager_sites WHERE manager_id = $1", manager_id)
    await conn.execute(
        "INSERT INTO manager_sites (manager_id, site_id) SELECT $1, unnest($2::text[])",
        manager_id, sorted(set(sites)),
    )  # fmt: skip
    after = await manager_row(conn, manager_id=manager_id)
    await conn.execute(
        "INSERT INTO managers_audit (manager_id, network, changed_by, before, after) "
        "VALUES ($1, $2, $3, $4, $5)",
        manager_id, network, changed_by, _manager_audit_json(before), _manager_audit_json(after),
    )  # fmt: skip


async def delete_manager(
    conn: Connection, *, manager_id: str, network: str, changed_by: str
) -> bool:
    """Remove a manager's mapping, then their login role; audited. False when unknown."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('manager:' || $1))", manager_id)
    before = await manager_row(conn, manager_id=manager_id)
    if before is None:
        return False
    await conn.execute("DELETE FROM managers WHERE manager_id = $1", manager_id)
    await conn.execute("SELECT manager_role_drop($1)", before["login_role"])
    await conn.execute(
        "INSERT INTO managers_audit (manager_id, network, changed_by, before, after) "
        "VALUES ($1, $2, $3, $4, NULL)",
        manager_id, network, changed_by, _manager_audit_json(before),
    )  # fmt: skip
    return True


async def managers_audit(conn: Connection, *, manager_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT changed_by, changed_at, before, after FROM managers_audit "
        "WHERE manager_id = $1 ORDER BY id",
        manager_id,
    )


async def manager_report_recipients(conn: Connection) -> dict[str, list[str]]:
    """site id -> the addresses of the managers who see it (own sites or their network's)."""
    rows = await conn.fetch(
        "SELECT site_id, array_agg(DISTINCT email ORDER BY email) AS emails "
        "FROM manager_report_recipients GROUP BY site_id ORDER BY site_id"
    )
    return {row["site_id"]: list(row["emails"]) for row in rows}


# --------------------------------------------------------------------------- #15 extras


async def add_response_facts(conn: Connection, *, rows: Sequence[tuple[Any, ...]]) -> set[str]:
    """Rows: response id, invitation id, contact id, site, day, answered at, channel, motif,
    nature, profile, tally cells {item: value} (migration 0200). Once per response id: returns
    the ids stored now (not before). The team from the contact when it is known (else on its
    arrival, `add_contacts`)."""
    if not rows:
        return set()
    stored = await conn.fetch(
        "INSERT INTO response_facts (response_id, invitation_id, contact_id, site_id, day, "
        "answered_at, channel, motif, nature, profile, cells, team) "
        "SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::date, (r->>5)::timestamptz, r->>6, r->>7, "
        "r->>8, r->>9, r->10, (SELECT team FROM contacts WHERE contact_id = r->>2) "
        "FROM jsonb_array_elements($1::text::jsonb) AS r ORDER BY 1 "
        "ON CONFLICT (response_id) DO NOTHING RETURNING response_id",
        json_document(rows),
    )
    return {row[0] for row in stored}


async def add_invitation_facts(
    conn: Connection, *, sent: Sequence[tuple[Any, ...]], reminded: Sequence[tuple[Any, ...]]
) -> set[str]:
    """`sent`: invitation id, site, survey channel, send day, sent at (each id once); `reminded`:
    invitation id, site, reminded at. Either may come first. Returns the invitations whose
    sending is stored now (not before): a redelivery changes nothing."""
    stored: set[str] = set()
    if sent:
        columns = [list(column) for column in zip(*sorted(sent), strict=True)]
        rows = await conn.fetch(
            "INSERT INTO invitation_facts AS f (invitation_id, site_id, survey_channel, sent_day, "
            "sent_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], "
            "$5::timestamptz[]) ON CONFLICT (invitation_id) DO UPDATE SET "
            "survey_channel = EXCLUDED.survey_channel, sent_day = EXCLUDED.sent_day, "
            "sent_at = EXCLUDED.sent_at, counted_at = now() WHERE f.sent_at IS NULL "
            "RETURNING invitation_id",
            *columns,
        )  # fmt: skip
        stored = {row[0] for row in rows}
    if reminded:
        await conn.executemany(
            "INSERT INTO invitation_facts AS f (invitation_id, site_id, reminded_at) "
            "VALUES ($1, $2, $3) ON CONFLICT (invitation_id) DO UPDATE SET "
            "reminded_at = least(f.reminded_at, EXCLUDED.reminded_at)",
            sorted(reminded),
        )
    return stored


# The cell of a response in a breakdown by the user's own answers: the answer to the item when
# they gave one, else what the CRM said (issue #15). A whitelist: names cannot be parameters.
CORRECTED_COLUMNS = {
    "channel": "coalesce(nullif(cells->>'canal', ''), channel)",
    "motif": "motif",
    "nature": "coalesce(nullif(cells->>'nature_demande', ''), nature)",
    "profile": "coalesce(nullif(cells->>'profil', ''), profile)",
}


async def corrected_tally_by(
    conn: Connection, *, site_id: str, start: date, end: date, dimension: str
) -> dict[str, dict[str, dict[str, int]]]:
    """Like `tally_by`, each response in the cell of the user's own answer to the dimension's
    item (`canal`, `nature_demande`, `profil`) where they gave one, else the CRM's value."""
    cell = CORRECTED_COLUMNS[dimension]
    rows = await conn.fetch(
        f"SELECT {cell} AS cell, c.key AS item, c.value, count(*)::bigint AS n "
        "FROM response_facts, jsonb_each_text(cells) AS c "
        "WHERE site_id = $1 AND day BETWEEN $2 AND $3 GROUP BY 1, 2, 3",
        site_id, start, end,
    )  # fmt: skip
    return _cells_of(rows)


async def team_tally(
    conn: Connection, *, site_id: str, start: date, end: date
) -> dict[str, dict[str, dict[str, int]]]:
    """Team (ContactSeen.team) -> tally of the responses to that team's contacts. Responses
    whose contact or team is unknown are left out: a team at most, never an agent."""
    rows = await conn.fetch(
        "SELECT r.team AS cell, c.key AS item, c.value, count(*)::bigint AS n "
        "FROM response_facts r, jsonb_each_text(r.cells) AS c "
        "WHERE r.site_id = $1 AND r.day BETWEEN $2 AND $3 AND r.team IS NOT NULL "
        "GROUP BY 1, 2, 3",
        site_id, start, end,
    )  # fmt: skip
    return _cells_of(rows)


def _cells_of(rows: Iterable[asyncpg.Record]) -> dict[str, dict[str, dict[str, int]]]:
    cells: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        cells.setdefault(row["cell"], {}).setdefault(row["item"], {})[row["value"]] = int(row["n"])
    return cells


async def survey_channel_counts(
    conn: Connection, *, site_id: str, start: date, end: date
) -> dict[str, tuple[int, int, int, int, int]]:
    """Per survey channel (e-mail, SMS), the invitations sent from `start` to `end` (send days
    on the site's clock): (sent, reminded, answered, answered before any reminder, answered
    after the reminder). An answer counts once per invitation, the first one; none is read
    from before `start` (an answer's day on the site's clock is never before its send day)."""
    rows = await conn.fetch(
        "WITH answers AS (SELECT invitation_id, min(answered_at) AS answered_at "
        "FROM response_facts WHERE site_id = $1 AND day >= $2 GROUP BY 1) "
        "SELECT f.survey_channel AS channel, count(*)::bigint AS sent, "
        "count(f.reminded_at)::bigint AS reminded, count(a.answered_at)::bigint AS answered, "
        "count(*) FILTER (WHERE a.answered_at IS NOT NULL AND (f.reminded_at IS NULL "
        "OR a.answered_at < f.reminded_at))::bigint AS before, "
        "count(*) FILTER (WHERE a.answered_at >= f.reminded_at)::bigint AS after "
        "FROM invitation_facts f LEFT JOIN answers a USING (invitation_id) "
        "WHERE f.site_id = $1 AND f.sent_day BETWEEN $2 AND $3 GROUP BY 1",
        site_id, start, end,
    )  # fmt: skip
    columns = ("sent", "reminded", "answered", "before", "after")
    return {row["channel"]: tuple(int(row[c]) for c in columns) for row in rows}  # type: ignore[misc]
