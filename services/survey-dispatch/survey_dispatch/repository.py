"""Plain SQL for survey-dispatch. Keyword-only functions; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from plumbing.db import Connection


async def rules_for(
    conn: Connection, *, network: str, site_id: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    rows = await conn.fetch(
        "SELECT network, site_id, rules FROM rules "
        "WHERE network IN ($1, '*') AND site_id IN ($2, '') "
        "ORDER BY network = '*' DESC, site_id = '' DESC",
        network,
        site_id,
    )
    network_rules: dict[str, Any] = {}
    site_rules: dict[str, Any] | None = None
    for row in rows:
        if row["site_id"] == "":
            network_rules.update(row["rules"])
        elif row["network"] == network:
            site_rules = row["rules"]
    return network_rules, site_rules


async def contact_known(conn: Connection, *, contact_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM contacts WHERE contact_id = $1", contact_id))


async def record_contact(
    conn: Connection, *, contact_id: str, network: str, site_id: str,
    decided_at: datetime, decision: str, detail: str,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO contacts (contact_id, network, site_id, decided_at, decision, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (contact_id) DO NOTHING",
        contact_id, network, site_id, decided_at, decision, detail,
    )  # fmt: skip


async def is_opted_out(conn: Connection, *, network: str, subjects: list[str]) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM opt_outs WHERE network IN ($1, '*') AND subject = ANY($2::text[])",
            network,
            subjects,
        )
    )


async def add_opt_outs(conn: Connection, *, network: str, subjects: list[str]) -> None:
    await conn.executemany(
        "INSERT INTO opt_outs (network, subject) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        [(network, subject) for subject in subjects],
    )


async def last_invitation_at(
    conn: Connection, *, network: str, user_pseudo_id: str
) -> datetime | None:
    value = await conn.fetchval(
        "SELECT max(created_at) FROM invitations WHERE network = $1 AND user_pseudo_id = $2 "
        "AND status <> 'failed'",
        network,
        user_pseudo_id,
    )
    return value  # type: ignore[no-any-return]


async def schedule_invitation(conn: Connection, **row: Any) -> None:
    columns = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await conn.execute(
        f"INSERT INTO invitations ({columns}) VALUES ({placeholders})", *row.values()
    )


async def lock_due_invitations(
    conn: Connection, *, now: datetime, channels: list[str], limit: int, probe: bool = False
) -> list[asyncpg.Record]:
    """The oldest due rows, walked in `send_at` order on the partial index `invitations_due`;
    a row that failed rests until its `retry_at`, then keeps its place (migration 0006).

    Statistics nearly always say no row is scheduled (most are sent), so the planner would
    rather collect every due row and sort them: harmless when a few are due, but with a
    backlog (a burst, an SMTP outage just over) it sorted thousands of rows for each batch of
    200. Sorting is turned off for the rest of the calling transaction to rule that plan out.

    A `probe` (the one row that tests a half-open provider) is the row that has waited longest
    since it was last tried, so a long outage spreads its failed probes over the queue instead
    of spending the oldest row's attempts.
    """
    if probe:
        return await conn.fetch(
            "SELECT * FROM invitations WHERE status = 'scheduled' AND send_at <= $1 "
            "AND (retry_at IS NULL OR retry_at <= $1) AND survey_channel = ANY($2::text[]) "
            "ORDER BY coalesce(retry_at, send_at) LIMIT $3 FOR UPDATE SKIP LOCKED",
            now, channels, limit,
        )  # fmt: skip
    await conn.execute("SET LOCAL enable_sort = off")
    return await conn.fetch(
        "SELECT * FROM invitations WHERE status = 'scheduled' AND send_at <= $1 "
        "AND (retry_at IS NULL OR retry_at <= $1) "
        "AND survey_channel = ANY($2::text[]) ORDER BY send_at LIMIT $3 FOR UPDATE SKIP LOCKED",
        now, channels, limit,
    )  # fmt: skip


async def mark_sent(
    conn: Connection, *, sent: list[tuple[str, datetime, datetime, datetime | None]]
) -> None:
    """(invitation id, sent at, expires at, remind at) rows, in one statement."""
    ids, sent_at, expires_at, remind_at = (list(column) for column in zip(*sent, strict=True))
    await conn.execute(
        "UPDATE invitations AS i SET status = 'sent', sent_at = s.sent_at, "
        "expires_at = s.expires_at, remind_at = s.remind_at, attempts = i.attempts + 1, "
        "last_error = NULL FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], "
        "$4::timestamptz[]) AS s (invitation_id, sent_at, expires_at, remind_at) "
        "WHERE i.invitation_id = s.invitation_id",
        ids, sent_at, expires_at, remind_at,
    )  # fmt: skip


async def notify_due(conn: Connection) -> None:
    """Wake the senders (of every replica) once the calling transaction commits."""
    await conn.execute("NOTIFY dispatch_due")


async def mark_retry(
    conn: Connection, *, invitation_id: str, retry_at: datetime, error: str
) -> None:
    """The row rests until `retry_at` and keeps its place in `send_at` order (migration 0006)."""
    await conn.execute(
        "UPDATE invitations SET retry_at = $2, attempts = attempts + 1, last_error = $3 "
        "WHERE invitation_id = $1",
        invitation_id, retry_at, error[:500],
    )  # fmt: skip


async def mark_failed(conn: Connection, *, invitation_id: str, error: str) -> None:
    await conn.execute(
        "UPDATE invitations SET status = 'failed', attempts = attempts + 1, last_error = $2, "
        "address = NULL, token = NULL WHERE invitation_id = $1",
        invitation_id, error[:500],
    )  # fmt: skip


async def invitation_by_token_digest(conn: Connection, *, digest: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM invitations WHERE token_sha256 = $1", digest)


async def scheduled_count(conn: Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM invitations WHERE status = 'scheduled'"))


async def set_rules(
    conn: Connection, *, network: str, site_id: str, rules: dict[str, Any], changed_by: str
) -> None:
    """Replace one rules row and audit the change (who, when, before, after)."""
    before = await conn.fetchval(
        "SELECT rules FROM rules WHERE network = $1 AND site_id = $2 FOR UPDATE", network, site_id
    )
    await conn.execute(
        "INSERT INTO rules (network, site_id, rules, updated_at, updated_by) "
        "VALUES ($1, $2, $3, now(), $4) ON CONFLICT (network, site_id) DO UPDATE SET "
        "rules = EXCLUDED.rules, updated_at = now(), updated_by = EXCLUDED.updated_by",
        network, site_id, rules, changed_by,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO rules_audit (network, site_id, changed_by, before, after) "
        "VALUES ($1, $2, $3, $4, $5)",
        network, site_id, changed_by, before, rules,
    )  # fmt: skip


# --------------------------------------------------------------------------- batch decisions


async def lock_users(conn: Connection, *, keys: list[str]) -> None:
    """Serialise decisions about the same user across replicas (fatigue, opt-out), in a fixed
    order so two transactions never wait on each other crosswise."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(k)) FROM (SELECT DISTINCT unnest($1::text[]) AS k "
        "ORDER BY 1) AS keys",
        keys,
    )


async def known_contacts(conn: Connection, *, contact_ids: list[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT c.contact_id FROM unnest($1::text[]) AS k (id) "
        "JOIN contacts AS c ON c.contact_id = k.id",
        contact_ids,
    )
    return {row["contact_id"] for row in rows}


async def opted_out_subjects(conn: Connection, *, subjects: list[str]) -> set[tuple[str, str]]:
    """(network, subject) pairs; network '*' means every network."""
    rows = await conn.fetch(
        "SELECT o.network, o.subject FROM unnest($1::text[]) AS k (subject) "
        "JOIN opt_outs AS o ON o.subject = k.subject",
        subjects,
    )
    return {(row["network"], row["subject"]) for row in rows}


async def last_invitations(
    conn: Connection, *, user_pseudo_ids: list[str]
) -> dict[tuple[str, str], datetime]:
    # One index lookup per user, whatever the statistics say (a hash join over the whole
    # table was the planner's choice on young tables).
    rows = await conn.fetch(
        "SELECT l.network, k.user_pseudo_id, l.last FROM unnest($1::text[]) AS k (user_pseudo_id) "
        "CROSS JOIN LATERAL (SELECT network, max(created_at) AS last FROM invitations "
        "WHERE user_pseudo_id = k.user_pseudo_id AND status <> 'failed' GROUP BY network) AS l",
        user_pseudo_ids,
    )
    return {(row["network"], row["user_pseudo_id"]): row["last"] for row in rows}


async def insert_contacts(conn: Connection, *, rows: list[tuple[Any, ...]]) -> None:
    """(contact id, network, site id, decided at, decision, detail) rows, in one statement."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO contacts (contact_id, network, site_id, decided_at, decision, detail) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], "
        "$5::text[], $6::text[]) ON CONFLICT (contact_id) DO NOTHING",
        *(list(column) for column in zip(*rows, strict=True)),
    )


INVITATION_COLUMNS = {  # column: type, for one INSERT ... SELECT FROM unnest per batch
    "invitation_id": "text", "contact_id": "text", "network": "text", "site_id": "text",
    "site_name": "text", "channel": "text", "motif": "text", "profile": "text",
    "request_nature": "text", "user_pseudo_id": "text", "survey_channel": "text",
    "address": "text", "token": "text", "token_sha256": "text", "questionnaire_version": "text",
    "closed_at": "timestamptz", "send_at": "timestamptz", "created_at": "timestamptz",
    "optout_sha256": "text", "traceparent": "text", "tracestate": "text",
}  # fmt: skip
_INSERT_INVITATIONS = (
    f"INSERT INTO invitations ({', '.join(INVITATION_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(INVITATION_COLUMNS.values(), 1))
    + ")"
)


async def insert_invitations(conn: Connection, *, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    await conn.execute(
        _INSERT_INVITATIONS, *([row[column] for row in rows] for column in INVITATION_COLUMNS)
    )


async def mark_answered(conn: Connection, *, answers: list[tuple[str, datetime]]) -> None:
    """An answered invitation gets no reminder; (invitation id, answered at) rows."""
    await conn.executemany(
        "UPDATE invitations SET answered_at = coalesce(answered_at, $2), remind_at = NULL "
        "WHERE invitation_id = $1",
        answers,
    )


# --------------------------------------------------------------------------- reminders


async def lock_due_reminders(
    conn: Connection, *, now: datetime, channel: str, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM invitations WHERE status = 'sent' AND remind_at <= $1 "
        "AND survey_channel = $2 AND answered_at IS NULL AND reminded_at IS NULL "
        "AND expires_at > $1 AND token IS NOT NULL AND address IS NOT NULL "
        "ORDER BY remind_at LIMIT $3 FOR UPDATE SKIP LOCKED",
        now, channel, limit,
    )  # fmt: skip


async def mark_reminded(conn: Connection, *, invitation_id: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE invitations SET reminded_at = $2, remind_at = NULL, "
        "reminder_attempts = reminder_attempts + 1 WHERE invitation_id = $1",
        invitation_id, at,
    )  # fmt: skip


async def postpone_reminder(
    conn: Connection, *, invitation_id: str, remind_at: datetime | None, error: str
) -> None:
    """Retry later, or give the reminder up (remind_at NULL): a reminder is a courtesy."""
    await conn.execute(
        "UPDATE invitations SET remind_at = $2, reminder_attempts = reminder_attempts + 1, "
        "last_error = $3 WHERE invitation_id = $1",
        invitation_id, remind_at, error[:500],
    )  # fmt: skip


# --------------------------------------------------------------------------- personal data


async def purge_expired(conn: Connection, *, now: datetime) -> int:
    """Erase every personal field of expired invitations: the address, the link's secret and
    the last error text. A sent invitation expires at `expires_at`; one never sent (still
    scheduled, or failed before any send) at its creation plus the link's validity, the
    `expiry_days` of its site's rules (7 days when none is stored). A scheduled row that
    expires is never sent."""
    sent = await conn.execute(
        "UPDATE invitations SET address = NULL, token = NULL, remind_at = NULL, "
        "last_error = NULL, status = CASE WHEN status = 'sent' THEN 'expired' ELSE status END "
        "WHERE expires_at <= $1 "
        "AND (address IS NOT NULL OR token IS NOT NULL OR last_error IS NOT NULL)",
        now,
    )
    unsent = await conn.execute(_PURGE_UNSENT, now)
    return int(sent.split()[-1]) + int(unsent.split()[-1])


# A stored rules row's `expiry_days`, NULL when absent or not a number (bad rows must not stop
# the purge), bounded like a valid rule.
_EXPIRY_DAYS = (
    "(SELECT least(greatest((r.rules ->> 'expiry_days')::numeric, 1), 3650)::int FROM rules AS r "
    "WHERE r.network = {network} AND r.site_id = {site} "
    "AND jsonb_typeof(r.rules -> 'expiry_days') = 'number')"
)
_SITE_EXPIRY = _EXPIRY_DAYS.format(network="i.network", site="i.site_id")
_NETWORK_EXPIRY = _EXPIRY_DAYS.format(network="i.network", site="''")
_DEFAULT_EXPIRY = _EXPIRY_DAYS.format(network="'*'", site="''")
_PURGE_UNSENT = (
    "UPDATE invitations AS i SET address = NULL, token = NULL, remind_at = NULL, "
    "last_error = NULL, status = CASE WHEN i.status = 'scheduled' THEN 'expired' ELSE i.status END "
    "WHERE i.expires_at IS NULL "
    "AND (i.address IS NOT NULL OR i.token IS NOT NULL OR i.last_error IS NOT NULL) "
    # expiry_days >= 1: the range of the index
    "AND i.created_at <= $1::timestamptz - interval '1 day' "
    "AND i.created_at + make_interval(days => COALESCE("
    f"{_SITE_EXPIRY}, {_NETWORK_EXPIRY}, {_DEFAULT_EXPIRY}, 7)) <= $1"
)


async def erase_user(conn: Connection, *, network: str, user_pseudo_id: str) -> int:
    """Delete the user's invitations and the decisions about their contacts."""
    contact_ids = await conn.fetch(
        "DELETE FROM invitations WHERE network = $1 AND user_pseudo_id = $2 RETURNING contact_id",
        network, user_pseudo_id,
    )  # fmt: skip
    await conn.execute(
        "DELETE FROM contacts WHERE contact_id = ANY($1::text[])",
        [row["contact_id"] for row in contact_ids],
    )
    return len(contact_ids)


# --------------------------------------------------------------------------- opt-out, erasure


async def invitation_by_optout_digest(conn: Connection, *, digest: str) -> asyncpg.Record | None:
    """The invitation an opt-out link names. Links sent before each invitation had its own
    opt-out secret carried the survey token: those rows (no `optout_sha256`) still answer to it,
    so that nobody loses the way out in the week their link stays valid."""
    return await conn.fetchrow(
        "(SELECT network, user_pseudo_id, address FROM invitations WHERE optout_sha256 = $1) "
        "UNION ALL (SELECT network, user_pseudo_id, address FROM invitations "
        "WHERE token_sha256 = $1 AND optout_sha256 IS NULL) LIMIT 1",
        digest,
    )


async def cancel_pending(
    conn: Connection, *, network: str, user_pseudo_id: str | None, address: str | None,
    case_insensitive_local_part: bool,
) -> int:  # fmt: skip
    """An opt-out cancels at once what is pending for the user or the contact point: sends not
    yet made (status 'cancelled', no address nor secret left) and reminders to come."""
    result = await conn.execute(
        "UPDATE invitations SET "
        "status = CASE WHEN status = 'scheduled' THEN 'cancelled' ELSE status END, "
        "token = CASE WHEN status = 'scheduled' THEN NULL ELSE token END, "
        "address = NULL, remind_at = NULL "
        "WHERE status IN ('scheduled', 'sent') AND ($1 = '*' OR network = $1) "
        "AND address IS NOT NULL "
        "AND (user_pseudo_id = $2 OR (lower(address) = lower($3) AND ($4 OR address = $3)))",
        network, user_pseudo_id, address, case_insensitive_local_part,
    )  # fmt: skip
    return int(result.split()[-1])


async def record_erasure(
    conn: Connection, *, erasure_id: str, network: str, requested_by: str,
    requested_at: datetime, invitations_erased: int,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO erasure_audit (erasure_id, network, requested_by, requested_at, "
        "invitations_erased) VALUES ($1, $2, $3, $4, $5)",
        erasure_id, network, requested_by, requested_at, invitations_erased,
    )  # fmt: skip


async def erasure_audit(
    conn: Connection, *, network: str, limit: int = 100
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT erasure_id, network, requested_by, requested_at, invitations_erased "
        "FROM erasure_audit WHERE network = $1 ORDER BY requested_at DESC LIMIT $2",
        network, limit,
    )  # fmt: skip


# --------------------------------------------------------------------------- admin


async def lock_rules(conn: Connection) -> None:
    """Serialise rules changes (rare): each is checked against the others' committed state."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('survey_dispatch.rules'))")


async def all_rules(conn: Connection, *, network: str) -> dict[tuple[str, str], Any]:
    """Every stored rules row a change in `network` combines with ('*': every row)."""
    rows = await conn.fetch(
        "SELECT network, site_id, rules FROM rules WHERE $1 = '*' OR network IN ($1, '*')",
        network,
    )
    return {(row["network"], row["site_id"]): row["rules"] for row in rows}


async def site_networks(conn: Connection, *, site_id: str) -> set[str]:
    """The networks a site's contacts came from (normally one)."""
    rows = await conn.fetch(
        "SELECT DISTINCT network FROM contacts WHERE site_id = $1 LIMIT 2", site_id
    )
    return {row["network"] for row in rows}


async def rules_row(conn: Connection, *, network: str, site_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT rules, updated_at, updated_by FROM rules WHERE network = $1 AND site_id = $2",
        network, site_id,
    )  # fmt: skip


async def rules_audit(
    conn: Connection, *, network: str, site_id: str, limit: int = 50
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT changed_by, changed_at, before, after FROM rules_audit "
        "WHERE network = $1 AND site_id = $2 ORDER BY id DESC LIMIT $3",
        network, site_id, limit,
    )  # fmt: skip


# --------------------------------------------------------------------------- HTTP ingest


async def claim_ingested(conn: Connection, *, rows: list[tuple[str, str, str]]) -> set[str]:
    """Record (event_id, network, digest) rows; the ids that were not there before. In id
    order, so two requests sharing ids wait for each other rather than deadlock."""
    ordered = sorted(rows)
    inserted = await conn.fetch(
        "INSERT INTO ingested_events (event_id, network, digest) "
        "SELECT event_id, network, digest FROM unnest($1::text[], $2::text[], $3::text[]) "
        "WITH ORDINALITY AS r (event_id, network, digest, n) ORDER BY n "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        [row[0] for row in ordered],
        [row[1] for row in ordered],
        [row[2] for row in ordered],
    )
    return {row["event_id"] for row in inserted}


async def ingested_digests(conn: Connection, *, event_ids: list[str]) -> dict[str, str]:
    if not event_ids:
        return {}
    rows = await conn.fetch(
        "SELECT event_id, digest FROM ingested_events WHERE event_id = ANY($1::text[])", event_ids
    )
    return {row["event_id"]: row["digest"] for row in rows}


async def prune_ingested(conn: Connection, *, older_than: timedelta) -> int:
    """Forget ingested event ids received more than `older_than` ago."""
    status = await conn.execute(
        "DELETE FROM ingested_events WHERE received_at < now() - $1::interval", older_than
    )
    return int(status.split()[-1])
