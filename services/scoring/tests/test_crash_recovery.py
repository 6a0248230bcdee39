"""Kill scoring at the worst instants; the response must still count exactly once."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import ResponseSubmitted
from contracts.topics import RESPONSE_SUBMITTED, SURVEY_RESPONSE
from plumbing.failpoints import CRASH_EXIT_CODE
from plumbing.services import start_system
from plumbing.testing import async_wait_for, produce

pytestmark = pytest.mark.integration


def response_event(site_id: str) -> CloudEvent[ResponseSubmitted]:
    now = utc_now()
    data = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:12]}", invitation_id=f"inv-{uuid.uuid4().hex[:12]}",
        contact_id=f"crm-{uuid.uuid4().hex[:12]}", site_id=site_id, network="urssaf",
        channel="telephone", motif="declaration", questionnaire_version="urssaf-chaud-2024-v1",
        answers={"satisfaction_globale": 8, "recommandation": 9}, answered_at=now,
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=now,
        subject=site_id, data=data,
    )  # fmt: skip


async def counted_responses(database_url: str, site_id: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        value = await connection.fetchval(
            "SELECT coalesce(sum(count), 0) FROM scoring.tallies "
            "WHERE site_id = $1 AND item = '__responses__'",
            site_id,
        )
        return int(value)
    finally:
        await connection.close()


def duplicates_seen(metrics_text: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("consumer_events_total{") and 'outcome="duplicate"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize(
    ("failpoint", "counted_at_crash"),
    [("consumer.after_db_commit", 1), ("consumer.before_db_commit", 0)],
)
async def test_killed_scoring_counts_the_response_exactly_once(
    stack, tmp_path, failpoint, counted_at_crash
):
    site_id = f"site-{failpoint.split('.')[1]}"
    crashing = start_system(
        stack.env(), tmp_path, only=("scoring",), extra_env={"FAILPOINT": failpoint}
    )
    process = crashing["scoring"].process
    assert process is not None
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, [response_event(site_id)])
    await async_wait_for(lambda: process.poll() is not None, timeout=60)
    assert process.returncode == CRASH_EXIT_CODE
    assert await counted_responses(stack.database_url, site_id) == counted_at_crash

    restarted = start_system(stack.env(), tmp_path, only=("scoring",))
    try:

        async def settled() -> bool:
            return await counted_responses(stack.database_url, site_id) == 1

        await async_wait_for(settled, timeout=60)
        if counted_at_crash:  # the redelivered event must have been recognised as a duplicate
            async with httpx.AsyncClient(base_url=restarted["scoring"].url) as client:

                async def deduped() -> bool:
                    return duplicates_seen((await client.get("/metrics")).text) >= 1

                await async_wait_for(deduped, timeout=30)
        assert await counted_responses(stack.database_url, site_id) == 1
    finally:
        restarted.stop()
