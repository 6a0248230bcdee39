"""What the chaos run (issue #13) found in the runtime.

Runtime.stop ends every background task, even one whose cancellation surfaced as another
error: asyncpg, cancelled in the middle of a query on a connection a PostgreSQL restart had
troubled, raised `InternalClientError: cannot switch to state 15` instead of CancelledError, the
supervisor took it for a crash and restarted the task, and a SIGTERM never finished draining
(found by the chaos run, issue #13)."""

from __future__ import annotations

import asyncio

import asyncpg

from plumbing.runtime import Runtime, is_unavailable
from plumbing.settings import ServiceSettings


async def test_stop_ends_a_task_whose_cancellation_became_another_error() -> None:
    runtime = Runtime(ServiceSettings(), service="probe", schema="probe")
    started = asyncio.Event()
    runs = 0

    async def run() -> None:
        nonlocal runs
        runs += 1
        if runs > 1:
            return  # restarted after the cancellation: the bug (returning keeps the test finite)
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError(
                "cannot switch to state 15; another operation is in progress"
            ) from None

    runtime.spawn("probe", run)
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(runtime.stop(), 10)
    assert runs == 1, "the task was restarted while the runtime was stopping"


def test_a_connection_left_mid_operation_by_a_postgres_crash_means_unavailable() -> None:
    """The chaos run's PostgreSQL kill -9: a pooled connection whose server died during a query
    made the next query raise asyncpg's InternalClientError "cannot switch to state 12; another
    operation (2) is in progress". That is the database going away (503 with Retry-After, and
    a background task retried soon), not a bug (500)."""
    left_mid_operation = asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    assert is_unavailable(left_mid_operation)
    assert not is_unavailable(asyncpg.InternalClientError("unexpected attribute"))
