"""Fixtures shared by scoring's tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from scoring import repository

from plumbing import db
from plumbing.auth import LocalIssuer

MIGRATIONS = Path(repository.__file__).parent / "migrations"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalIssuer, str]:
    """A local token issuer and its JWKS file, for the admin-authenticated routes."""
    local = LocalIssuer(issuer="http://127.0.0.1/dev-issuer", audience="enquetes-admin")
    return local, local.write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture(scope="module")
async def pool(stack: Any) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a scoring schema of the module's own, freshly migrated: the real handler and
    publisher on a real database, without a scoring process."""
    schema = f"scoring_{uuid.uuid4().hex[:8]}"
    await db.migrate(stack.database_url, schema=schema, migrations_dir=MIGRATIONS)
    connections = await db.create_pool(stack.database_url, schema=schema, max_size=6)
    try:
        yield connections
    finally:
        await connections.close()
