"""Runtime.stop ends every background task, even one whose cancellation surfaced as another
error: asyncpg, cancelled in the middle of a query on a connection a PostgreSQL restart had
troubled, raised `InternalClientError: cannot switch to state 15` instead of CancelledError, the
supervisor took it for a crash and restarted the task, and a SIGTERM never finished draining
(found by the chaos run, issue #13)."""

from __future__ import annotations

import asyncio

from plumbing.runtime import Runtime
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
