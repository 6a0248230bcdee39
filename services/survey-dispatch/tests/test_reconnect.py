"""survey-dispatch while its PostgreSQL is killed (-9) and restarted (issue #13, chaos).

The service runs as a real process on the module's own devstack (killing the database troubles
no other module). Both fallback polls are 30 s here, so only a NOTIFY on a LISTEN connection
can make an invitation go out within a second of its decision.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.events import ContactClosed, SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED
from plumbing.auth import NETWORK_ADMIN, bearer
from plumbing.crm_simulator import CrmSimulator
from plumbing.sinks import read_maildir
from plumbing.testing import async_wait_for, produce

pytestmark = pytest.mark.integration

NETWORK = "urssaf"
BACK_WITHIN_SECONDS = 30
PROMPT_SECONDS = 0.5  # well under the 1 s default poll; the poll is 30 s here


@pytest.fixture(scope="module")
def service(start_dispatch: Any):
    # Fallback polls of 30 s: only a NOTIFY can wake the senders and the relay promptly.
    system, service = start_dispatch(SENDER_POLL_SECONDS=30, OUTBOX_POLL_SECONDS=30)
    yield service
    system.stop()


def new_contact(user: str) -> ContactClosed:
    base = CrmSimulator(seed=7).contact(site=("site-chaos", "Accueil chaos", NETWORK))
    return base.model_copy(
        update={
            "user_ref": user, "email": f"{user}@exemple.fr", "opted_out": False,
            "preferred_channel": SurveyChannel.EMAIL, "contact_id": f"crm-{uuid.uuid4().hex[:16]}",
        }
    )  # fmt: skip


async def decision_to_sent_seconds(stack: Any, user: str) -> float:
    """Close a contact; once its mail is in the sink, the seconds from the decision's commit
    (the invitation row) to the send."""
    contact = new_contact(user)
    await produce(
        stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [CrmSimulator.event(contact)]
    )
    await async_wait_for(
        lambda: any(m["To"] == contact.email for m in read_maildir(stack.maildir)), timeout=60
    )
    connection = await asyncpg.connect(
        stack.database_url, server_settings={"search_path": "survey_dispatch"}
    )
    try:
        # The sink stores the mail before dispatch records it sent: wait for the record too.
        row = await async_wait_for(
            lambda: connection.fetchrow(
                "SELECT created_at, sent_at FROM invitations "
                "WHERE contact_id = $1 AND sent_at IS NOT NULL",
                contact.contact_id,
            ),
            timeout=10,
        )
    finally:
        await connection.close()
    return float((row["sent_at"] - row["created_at"]).total_seconds())


async def test_postgres_killed_then_back_503_meanwhile_then_ready_and_woken_by_notify(
    stack, service, issuer
):
    admin = bearer(issuer[0].mint(subject="ops", roles=[NETWORK_ADMIN], network=NETWORK))
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        assert await decision_to_sent_seconds(stack, "chaos-before") < PROMPT_SECONDS

        await asyncio.to_thread(stack.kill_postgres)
        try:
            answers = []
            for _ in range(3):  # pooled connections that died, then refused reconnections
                answers.append(
                    await client.get(f"/admin/v1/networks/{NETWORK}/rules", headers=admin)
                )
                answers.append(
                    await client.post("/o/some-opt-out-token", headers={"accept": "text/html"})
                )
            ready = await async_wait_for(
                lambda: _not_ready_with_listeners_down(client), timeout=10, interval=0.1
            )
        finally:
            await asyncio.to_thread(stack.restart_postgres)
        back_at = time.monotonic()
        assert [a.status_code for a in answers] == [503] * 6, [a.text for a in answers]
        assert all(a.headers["retry-after"].isdigit() for a in answers)
        assert answers[0].json()["error"] == "unavailable"
        assert "momentanément indisponible" in answers[1].text
        assert {"listener sender-wake down", "listener outbox down"} <= set(ready["problems"])

        await async_wait_for(lambda: _ready(client), timeout=BACK_WITHIN_SECONDS, interval=0.1)
        ready_after = time.monotonic() - back_at
        delays = [await decision_to_sent_seconds(stack, f"chaos-after-{n}") for n in range(2)]
        metrics = (await client.get("/metrics")).text
    print(f"ready {ready_after:.1f}s after PostgreSQL's return; decision -> sent {delays} s")
    assert ready_after < BACK_WITHIN_SECONDS
    assert max(delays) < PROMPT_SECONDS
    served = [line for line in metrics.splitlines() if line.startswith("http_requests_total{")]
    assert served and not [line for line in served if 'status="500"' in line]
    assert 'database_listener_up{listener="sender-wake"} 1.0' in metrics


async def _not_ready_with_listeners_down(client: httpx.AsyncClient) -> dict[str, Any] | None:
    answer = await client.get("/readyz")
    if answer.status_code != 503:
        return None
    state: dict[str, Any] = answer.json()
    return state if "listener sender-wake down" in state["problems"] else None


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200
