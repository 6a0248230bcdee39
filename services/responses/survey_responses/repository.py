"""Plain SQL for responses. Keyword-only functions; every write is one atomic statement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from plumbing.db import Connection
from plumbing.outbox import NOTIFY_CHANNEL

_INVITATION = (
    "SELECT i.*, EXISTS (SELECT 1 FROM responses r WHERE r.invitation_id = i.invitation_id) "
    "AS answered, d.answers AS draft "
    "FROM invitations i LEFT JOIN drafts d USING (invitation_id) WHERE i.token_sha256 = $1"
)


async def save_invitation(conn: Connection, **row: Any) -> None:
    columns = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await conn.execute(
        f"INSERT INTO invitations ({columns}) VALUES ({placeholders}) "
        "ON CONFLICT (invitation_id) DO NOTHING",
        *row.values(),
    )


async def invitation_by_digest(conn: Connection, *, digest: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_INVITATION, digest)


async def store_response(
    conn: Connection, *, response_id: str, invitation_id: str, answers: dict[str, Any],
    answered_at: datetime, topic: str, key: bytes, event: bytes,
) -> bool:  # fmt: skip
    """The response, the end of its draft and its event in the outbox, in ONE statement: one
    transaction and one round trip, on the hottest path of the service.

    False, and nothing written, if the invitation already has its response: a concurrent double
    tap waits on the unique key for the first insert to commit, then inserts nothing. The outbox
    row is the one `plumbing.outbox.enqueue` would write (same table, same wake-up NOTIFY).
    """
    inserted = await conn.fetchval(
        "WITH response AS ("
        "  INSERT INTO responses (response_id, invitation_id, answers, answered_at)"
        "  VALUES ($1, $2, $3, $4) ON CONFLICT (invitation_id) DO NOTHING RETURNING invitation_id),"
        " draft AS (DELETE FROM drafts d USING response r WHERE d.invitation_id = r.invitation_id),"
        " event AS (INSERT INTO outbox (topic, key, value) SELECT $5, $6, $7 FROM response"
        "  RETURNING id)"
        " SELECT count(*) FROM (SELECT pg_notify($8, '')::text FROM event) AS notified",
        response_id, invitation_id, answers, answered_at, topic, key, event, NOTIFY_CHANNEL,
    )  # fmt: skip
    return bool(inserted)


async def save_draft(conn: Connection, *, invitation_id: str, answers: dict[str, Any]) -> None:
    """Replace the draft; never for an invitation already answered."""
    await conn.execute(
        "INSERT INTO drafts (invitation_id, answers) SELECT $1, $2"
        " WHERE NOT EXISTS (SELECT 1 FROM responses WHERE invitation_id = $1)"
        " ON CONFLICT (invitation_id) DO UPDATE SET answers = EXCLUDED.answers, saved_at = now()",
        invitation_id,
        answers,
    )


async def erase_user(
    conn: Connection, *, network: str, user_pseudo_id: str
) -> list[asyncpg.Record]:
    """Unlink the user's invitations (contact id, pseudonym), close their links, drop their
    drafts; the invitations erased (id, questionnaire version), for their answers' free text."""
    rows = await conn.fetch(
        "UPDATE invitations SET contact_id = NULL, user_pseudo_id = NULL, erased_at = now(),"
        " expires_at = least(expires_at, now())"
        " WHERE network = $1 AND user_pseudo_id = $2"
        " RETURNING invitation_id, questionnaire_version",
        network, user_pseudo_id,
    )  # fmt: skip
    if rows:
        await conn.execute(
            "DELETE FROM drafts WHERE invitation_id = ANY($1)",
            [row["invitation_id"] for row in rows],
        )
    return list(rows)


async def drop_free_text(
    conn: Connection,
    *,
    item_ids: list[str],
    invitation_ids: list[str] | None = None,
    answered_before: datetime | None = None,
) -> int:
    """Remove these answer keys (free-text items) from the responses of these invitations, or
    from those answered before a date. How many responses lost some text."""
    status = await conn.execute(
        "UPDATE responses SET answers = answers - $1::text[]"
        " WHERE answers ?| $1::text[]"
        " AND ($2::text[] IS NULL OR invitation_id = ANY($2))"
        " AND ($3::timestamptz IS NULL OR answered_at < $3)",
        item_ids, invitation_ids, answered_before,
    )  # fmt: skip
    return int(status.split()[-1])


async def drop_expired_drafts(conn: Connection, *, now: datetime) -> int:
    """Drafts of links that can no longer be answered: nobody will ever resume them."""
    status = await conn.execute(
        "DELETE FROM drafts d USING invitations i"
        " WHERE d.invitation_id = i.invitation_id AND i.expires_at <= $1",
        now,
    )
    return int(status.split()[-1])
