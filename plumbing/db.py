"""PostgreSQL: pools bound to a service's schema, forward-only migrations, the inbox."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# What handlers receive: a pooled connection, or a plain one in scripts and tests.
Connection = asyncpg.Connection | PoolConnectionProxy

log = logging.getLogger(__name__)
PLUMBING_MIGRATIONS = Path(__file__).parent / "migrations"


async def _init_connection(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without the reset query: asyncpg has already rolled back any open transaction;
    nothing else is sent to the server."""


async def create_pool(
    dsn: str, *, schema: str, min_size: int = 1, max_size: int = 10, reset_session: bool = True
) -> asyncpg.Pool:
    """`reset_session=False` saves the round trip asyncpg makes on every release (advisory
    unlock, CLOSE ALL, UNLISTEN *, RESET ALL): for services whose code never leaves session state
    behind (no SET, no session advisory lock, no LISTEN left registered, no WITH HOLD cursor)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=None if reset_session else _keep_session,
        server_settings={"search_path": schema, "application_name": schema},
    )
    assert pool is not None
    return pool


async def connect(dsn: str, *, schema: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    await _init_connection(connection)
    return connection


def _migration_files(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    return [(f"{prefix}{path.stem}", path) for path in sorted(folder.glob("[0-9]*.sql"))]


async def migrate(dsn: str, *, schema: str, migrations_dir: Path) -> list[str]:
    """Apply the pending migrations, each in its own transaction, under an advisory lock.

    Forward only: a migration once applied is never edited; a change is a new file.
    Returns the versions applied now.
    """
    files = _migration_files(PLUMBING_MIGRATIONS, "plumbing-") + _migration_files(
        migrations_dir, ""
    )
    connection = await asyncpg.connect(dsn)
    applied_now = []
    try:
        await connection.execute("SELECT pg_advisory_lock(hashtext($1))", f"migrate:{schema}")
        await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await connection.execute(f'SET search_path TO "{schema}"')
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row["version"]
            for row in await connection.fetch("SELECT version FROM schema_migrations")
        }
        for version, path in files:
            if version in done:
                continue
            async with connection.transaction():
                await connection.execute(path.read_text(encoding="utf-8"))
                await connection.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)", version
                )
            applied_now.append(version)
            log.info("migration applied", extra={"schema": schema, "version": version})
    finally:
        await connection.execute("SELECT pg_advisory_unlock_all()")
        await connection.close()
    return applied_now


async def claim_events(connection: Connection, *, topic: str, event_ids: Iterable[str]) -> set[str]:
    """Record event ids in the inbox; return those never seen before (to be handled now)."""
    rows = await connection.fetch(
        "INSERT INTO inbox (event_id, topic) SELECT unnest($1::text[]), $2 "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        list(event_ids),
        topic,
    )
    return {row["event_id"] for row in rows}


async def prune_inbox(connection: Connection, *, older_than: timedelta) -> int:
    """Forget the ids of events handled more than `older_than` ago; how many were forgotten.

    Choose more than the topics' retention: a redelivered event older than that cannot come,
    so the inbox needs no memory of it (handlers stay idempotent all the same)."""
    status = await connection.execute(
        "DELETE FROM inbox WHERE received_at < now() - $1::interval", older_than
    )
    return int(status.split()[-1])


def record_to_dict(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None
