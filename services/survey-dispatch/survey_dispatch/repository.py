"""Plain SQL for survey-dispatch. Keyword-only functions; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg


async def rules_for(conn: asyncpg.Connection, *, network: str, site_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    rows = await conn.fetch(
        "SELECT network, site_id, rules FROM rules WHERE network IN ($1, '*') AND site_id IN ($2, '') "
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


async def contact_known(conn: asyncpg.Connection, *, contact_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM contacts WHERE contact_id = $1", contact_id))


async def record_contact(
    conn: asyncpg.Connection, *, contact_id: str, network: str, site_id: str,
    decided_at: datetime, decision: str, detail: str,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO contacts (contact_id, network, site_id, decided_at, decision, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (contact_id) DO NOTHING",
        contact_id, network, site_id, decided_at, decision, detail,
    )  # fmt: skip


async def is_opted_out(conn: asyncpg.Connection, *, network: str, subjects: list[str]) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM opt_outs WHERE network IN ($1, '*') AND subject = ANY($2::text[])",
            network,
            subjects,
        )
    )


async def add_opt_outs(conn: asyncpg.Connection, *, network: str, subjects: list[str]) -> None:
    await conn.executemany(
        "INSERT INTO opt_outs (network, subject) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        [(network, subject) for subject in subjects],
    )


async def last_invitation_at(
    conn: asyncpg.Connection, *, network: str, user_pseudo_id: str
) -> datetime | None:
    value = await conn.fetchval(
        "SELECT max(created_at) FROM invitations WHERE network = $1 AND user_pseudo_id = $2 "
        "AND status <> 'failed'",
        network,
        user_pseudo_id,
    )
    return value  # type: ignore[no-any-return]


async def schedule_invitation(conn: asyncpg.Connection, **row: Any) -> None:
    columns = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await conn.execute(f"INSERT INTO invitations ({columns}) VALUES ({placeholders})", *row.values())


async def lock_due_invitations(conn: asyncpg.Connection, *, now: datetime, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM invitations WHERE status = 'scheduled' AND send_at <= $1 "
        "ORDER BY send_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )


async def mark_sent(
    conn: asyncpg.Connection, *, invitation_id: str, sent_at: datetime, expires_at: datetime
) -> None:
    await conn.execute(
        "UPDATE invitations SET status = 'sent', sent_at = $2, expires_at = $3, "
        "attempts = attempts + 1, last_error = NULL WHERE invitation_id = $1",
        invitation_id, sent_at, expires_at,
    )  # fmt: skip


async def mark_retry(
    conn: asyncpg.Connection, *, invitation_id: str, send_at: datetime, error: str
) -> None:
    await conn.execute(
        "UPDATE invitations SET send_at = $2, attempts = attempts + 1, last_error = $3 "
        "WHERE invitation_id = $1",
        invitation_id, send_at, error[:500],
    )  # fmt: skip


async def mark_failed(conn: asyncpg.Connection, *, invitation_id: str, error: str) -> None:
    await conn.execute(
        "UPDATE invitations SET status = 'failed', attempts = attempts + 1, last_error = $2, "
        "address = NULL, token = NULL WHERE invitation_id = $1",
        invitation_id, error[:500],
    )  # fmt: skip


async def invitation_by_token_digest(conn: asyncpg.Connection, *, digest: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM invitations WHERE token_sha256 = $1", digest)


async def scheduled_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM invitations WHERE status = 'scheduled'"))


async def set_rules(
    conn: asyncpg.Connection, *, network: str, site_id: str, rules: dict[str, Any], changed_by: str
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
