"""scoring while its PostgreSQL is killed (-9) and restarted (issue #13, chaos).

The service runs as a real process on the module's own devstack (killing the database troubles
no other module). The publisher's fallback poll is 30 s here, so only the NOTIFY of the
consumer's commit, on a LISTEN connection that came back, publishes a response's site at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import ResponseSubmitted
from contracts.topics import RESPONSE_SUBMITTED, SURVEY_RESPONSE
from plumbing.auth import NETWORK_ADMIN, LocalIssuer, bearer
from plumbing.services import start_system
from plumbing.testing import async_wait_for, produce

pytestmark = pytest.mark.integration

BACK_WITHIN_SECONDS = 30
HISTOGRAM = "scoring_response_to_indicators_seconds"


@pytest.fixture(scope="module")
def scoring(stack: Any, issuer: tuple[LocalIssuer, str], tmp_path_factory: pytest.TempPathFactory):
    system = start_system(
        stack.env(), tmp_path_factory.mktemp("logs"), only=("scoring",),
        extra_env={
            "PUBLISH_INTERVAL_SECONDS": "0.2", "PUBLISHER_POLL_SECONDS": "30",
            "OUTBOX_POLL_SECONDS": "30", "ADMIN_JWKS_URL": issuer[1],
        },
    )  # fmt: skip
    yield system["scoring"]
    system.stop()


def response(site_id: str) -> CloudEvent[ResponseSubmitted]:
    moment = utc_now()
    data = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:12]}", invitation_id=f"inv-{uuid.uuid4().hex[:12]}",
        contact_id=f"crm-{uuid.uuid4().hex[:12]}", site_id=site_id, network="urssaf",
        channel="telephone", motif="declaration", questionnaire_version="urssaf-chaud-2024-v1",
        answers={"recommandation": 9}, answered_at=moment,
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=moment,
        subject=site_id, data=data,
    )  # fmt: skip


def sample(metrics: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


async def answered_to_published_seconds(stack: Any, client: httpx.AsyncClient) -> float:
    """Send one response of a new site; the publisher's own measure of the time from its
    submission to the indicators event that includes it."""
    before = (await client.get("/metrics")).text
    await produce(
        stack.kafka_bootstrap_servers,
        SURVEY_RESPONSE.name,
        [response(f"site-{uuid.uuid4().hex[:8]}")],
    )

    async def observed() -> str | None:
        text = (await client.get("/metrics")).text
        return (
            text
            if sample(text, f"{HISTOGRAM}_count") > sample(before, f"{HISTOGRAM}_count")
            else None
        )

    after = await async_wait_for(observed, timeout=60, interval=0.05)
    return sample(after, f"{HISTOGRAM}_sum") - sample(before, f"{HISTOGRAM}_sum")


async def test_postgres_killed_then_back_503_meanwhile_then_ready_and_publishing_at_once(
    stack, scoring, issuer
):
    admin = bearer(issuer[0].mint(subject="ops", roles=[NETWORK_ADMIN], network="urssaf"))
    async with httpx.AsyncClient(base_url=scoring.url, timeout=10) as client:
        assert await answered_to_published_seconds(stack, client) < 1.0

        await asyncio.to_thread(stack.kill_postgres)
        try:
            answers = [
                await client.get("/v1/sites/site-x/breakdown", params={"dimension": "channel"},
                                 headers=admin)
                for _ in range(3)  # pooled connections that died, then refused reconnections
            ]  # fmt: skip
            down = await async_wait_for(
                lambda: _not_ready_with(client, "listener scoring-publisher down"),
                timeout=10, interval=0.1,
            )  # fmt: skip
        finally:
            await asyncio.to_thread(stack.restart_postgres)
        back_at = time.monotonic()
        assert [a.status_code for a in answers] == [503] * 3, [a.text for a in answers]
        assert all(a.headers["retry-after"].isdigit() for a in answers)
        assert "listener outbox down" in down["problems"]

        await async_wait_for(lambda: _ready(client), timeout=BACK_WITHIN_SECONDS, interval=0.1)
        ready_after = time.monotonic() - back_at
        delays = [await answered_to_published_seconds(stack, client) for _ in range(2)]
        metrics = (await client.get("/metrics")).text
    print(f"ready {ready_after:.1f}s after PostgreSQL's return; answered -> published {delays} s")
    assert ready_after < BACK_WITHIN_SECONDS
    assert max(delays) < 1.0  # the fallback poll is 30 s: only a NOTIFY can do this
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
