"""publication while its PostgreSQL is killed (-9) and restarted (issue #13, chaos).

The service runs as a real process on the module's own devstack (killing the database troubles
no other module). A screen keeps its event stream open through the outage; once the database is
back, the change listener has re-opened its LISTEN connection and a new figure reaches the
screen again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from plumbing.auth import NETWORK_ADMIN, bearer
from plumbing.testing import async_wait_for

pytestmark = pytest.mark.integration

BACK_WITHIN_SECONDS = 30


async def test_postgres_killed_then_back_503_meanwhile_then_ready_and_screens_updated_again(
    stack, publication, issuer, send, make_event, feed_when, sse
):
    site = "urssaf-chaos"
    admin = bearer(issuer[0].mint(subject="ops", roles=[NETWORK_ADMIN], network="urssaf"))
    await send(make_event(site, {"nps": (40.0, 400)}))
    await feed_when(publication.url, site, lambda body: True, timeout=60)

    async with (
        sse(publication.url, site) as stream,
        httpx.AsyncClient(base_url=publication.url, timeout=10) as client,
    ):
        await stream.next_event("indicators")
        await asyncio.to_thread(stack.kill_postgres)
        try:
            answers = [
                await client.get(f"/admin/v1/sites/{site}/settings", headers=admin)
                for _ in range(3)  # pooled connections that died, then refused reconnections
            ]
            down = await async_wait_for(
                lambda: _not_ready_with(client, "listener publication-changes down"),
                timeout=10,
                interval=0.1,
            )
        finally:
            await asyncio.to_thread(stack.restart_postgres)
        back_at = time.monotonic()
        assert [a.status_code for a in answers] == [503] * 3, [a.text for a in answers]
        assert all(a.headers["retry-after"].isdigit() for a in answers)
        assert answers[0].json()["error"] == "unavailable"
        assert any(p.startswith("database") for p in down["problems"])

        await async_wait_for(lambda: _ready(client), timeout=BACK_WITHIN_SECONDS, interval=0.1)
        ready_after = time.monotonic() - back_at
        sent_at = time.monotonic()
        await send(make_event(site, {"nps": (47.0, 470)}))
        while True:  # the catch-up rebuild may push the unchanged feed first
            pushed = await stream.next_event("indicators", timeout=10)
            nps = next(f for f in pushed["current"]["indicators"] if f["id"] == "nps")
            if nps["value"] == 47.0:
                break
        pushed_after = time.monotonic() - sent_at
        settings = await client.get(f"/admin/v1/sites/{site}/settings", headers=admin)
        metrics = (await client.get("/metrics")).text
    print(
        f"ready {ready_after:.1f}s after PostgreSQL's return; event -> screen {pushed_after:.2f}s"
    )
    assert ready_after < BACK_WITHIN_SECONDS
    assert pushed_after < 3.0  # as in the feed test: consumer join not included, stream warm
    assert settings.status_code == 200
    served = [line for line in metrics.splitlines() if line.startswith("http_requests_total{")]
    assert served and not [line for line in served if 'status="500"' in line]
    assert 'database_listener_up{listener="publication-changes"} 1.0' in metrics


async def _not_ready_with(client: httpx.AsyncClient, problem: str) -> dict[str, Any] | None:
    answer = await client.get("/readyz")
    if answer.status_code != 503:
        return None
    state: dict[str, Any] = answer.json()
    return state if problem in state["problems"] else None


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200
