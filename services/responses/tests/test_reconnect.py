"""responses while its PostgreSQL is killed (-9) and restarted (issue #13, chaos).

The service runs as a real process on the module's own devstack (killing the database troubles
no other module). A user who opens or submits a survey meanwhile gets a 503 with Retry-After
(a French page in a browser), never a 500; once the database is back the service is ready again
and a submitted response leaves through the outbox at once (its fallback poll is 30 s here).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from plumbing.testing import async_wait_for

pytestmark = pytest.mark.integration

BACK_WITHIN_SECONDS = 30
PROMPT_SECONDS = 0.5
ANSWERS = {"satisfaction_globale": 8, "recommandation": 9}
RELAYED = "outbox_events_relayed_total"


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    return {"OUTBOX_POLL_SECONDS": "30"}


def relayed(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(RELAYED + "{")
    )


async def submitted_to_relayed_seconds(client: httpx.AsyncClient, token: str) -> float:
    before = relayed((await client.get("/metrics")).text)
    answer = await client.post(f"/v1/responses/{token}", json={"answers": ANSWERS})
    assert answer.status_code == 201, answer.text
    stored = time.monotonic()

    async def moved() -> bool:
        return relayed((await client.get("/metrics")).text) > before

    await async_wait_for(moved, timeout=60, interval=0.01)
    return time.monotonic() - stored


async def test_postgres_killed_then_back_503_meanwhile_then_ready_and_relaying_at_once(
    stack, service, invite
):
    first, second, third = await invite(3)
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        assert await submitted_to_relayed_seconds(client, first) < PROMPT_SECONDS

        await asyncio.to_thread(stack.kill_postgres)
        try:
            pages = [
                await client.get(f"/s/{second}", headers={"accept": "text/html"})
                for _ in range(2)  # a pooled connection that died, then a refused one
            ]
            api = await client.post(f"/v1/responses/{second}", json={"answers": ANSWERS})
            down = await async_wait_for(
                lambda: _not_ready_with(client, "listener outbox down"), timeout=10, interval=0.1
            )
        finally:
            await asyncio.to_thread(stack.restart_postgres)
        back_at = time.monotonic()
        for page in pages:
            assert page.status_code == 503, page.text
            assert page.headers["retry-after"].isdigit()
            assert "momentanément indisponible" in page.text
            assert page.headers["x-content-type-options"] == "nosniff"  # still the survey's
        assert api.status_code == 503 and api.headers["retry-after"].isdigit(), api.text
        assert api.json()["error"] == "unavailable"
        assert any(p.startswith("database") for p in down["problems"])

        await async_wait_for(lambda: _ready(client), timeout=BACK_WITHIN_SECONDS, interval=0.1)
        ready_after = time.monotonic() - back_at
        delays = [await submitted_to_relayed_seconds(client, token) for token in (second, third)]
        metrics = (await client.get("/metrics")).text
    print(f"ready {ready_after:.1f}s after PostgreSQL's return; 201 -> relayed {delays} s")
    assert ready_after < BACK_WITHIN_SECONDS
    assert max(delays) < PROMPT_SECONDS  # the fallback poll is 30 s: only a NOTIFY does this
    served = [line for line in metrics.splitlines() if line.startswith("http_requests_total{")]
    assert served and not [line for line in served if 'status="500"' in line]


async def _not_ready_with(client: httpx.AsyncClient, problem: str) -> dict[str, Any] | None:
    answer = await client.get("/readyz")
    if answer.status_code != 503:
        return None
    state: dict[str, Any] = answer.json()
    return state if problem in state["problems"] else None


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200
