"""Plain SQL for responses. Keyword-only functions; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg


async def save_invitation(conn: asyncpg.Connection, **row: Any) -> None:
    columns = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await conn.execute(
        f"INSERT INTO invitations ({columns}) VALUES ({placeholders}) "
        "ON CONFLICT (invitation_id) DO NOTHING",
        *row.values(),
    )


async def invitation_by_digest(conn: asyncpg.Connection, *, digest: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT i.*, r.response_id IS NOT NULL AS answered, d.answers AS draft "
        "FROM invitations i LEFT JOIN responses r USING (invitation_id) "
        "LEFT JOIN drafts d USING (invitation_id) WHERE i.token_sha256 = $1",
        digest,
    )


async def lock_invitation(conn: asyncpg.Connection, *, invitation_id: str) -> None:
    """Serialise concurrent submissions of one link (double tap)."""
    await conn.execute(
        "SELECT 1 FROM invitations WHERE invitation_id = $1 FOR UPDATE", invitation_id
    )


async def insert_response(
    conn: asyncpg.Connection, *, response_id: str, invitation_id: str,
    answers: dict[str, Any], answered_at: datetime,
) -> bool:  # fmt: skip
    inserted = await conn.fetchval(
        "INSERT INTO responses (response_id, invitation_id, answers, answered_at) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (invitation_id) DO NOTHING RETURNING 1",
        response_id, invitation_id, answers, answered_at,
    )  # fmt: skip
    await conn.execute("DELETE FROM drafts WHERE invitation_id = $1", invitation_id)
    return bool(inserted)


async def save_draft(conn: asyncpg.Connection, *, invitation_id: str, answers: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO drafts (invitation_id, answers) VALUES ($1, $2) "
        "ON CONFLICT (invitation_id) DO UPDATE SET answers = EXCLUDED.answers, saved_at = now()",
        invitation_id,
        answers,
    )
