"""End-to-end latencies through the real system: contact closed → survey link sent, and
response submitted → figure published in the feed."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from contracts.envelope import decode
from contracts.topics import CRM_CONTACT_CLOSED, INVITATION_SENT, SURVEY_INVITATION
from loadtests.stats import latency_figures
from plumbing.crm_simulator import SITES, CrmSimulator
from plumbing.services import start_system
from plumbing.testing import produce, read_topic, survey_tokens

NAME = "e2e_path"
DESCRIPTION = "contact closed → link sent, and response submitted → figure published (p50/p95)"
CONTACTS = 200
RESPONSES = 40


async def run(ctx: Any) -> dict[str, float]:
    system = await asyncio.to_thread(
        start_system,
        ctx.stack.env(),
        ctx.workdir,
        extra_env={
            "DEFAULT_RULES": '{"delay_minutes": 0, "email_uses_sms_window": false, '
            '"fatigue_days": 0}',
            "PUBLIC_FLOOR": "1",
            # every simulated user posts from 127.0.0.1: the per-IP limit would measure itself
            "RATE_LIMIT_IP_PER_MINUTE": "0",
            "SENDER_POLL_SECONDS": "0.02",
        },
    )
    try:
        figures = await _contact_to_sent(ctx)
        figures |= await _response_to_published(ctx, system)
        return figures
    finally:
        system.stop()


async def _contact_to_sent(ctx: Any) -> dict[str, float]:
    simulator = CrmSimulator(seed=7, email_share=1.0)
    produced_at: dict[str, float] = {}
    for _ in range(CONTACTS // 10):  # 10 contacts every 100 ms: a steady 100 contacts/s
        events = [simulator.event(simulator.contact()) for _ in range(10)]
        now = datetime.now(UTC).timestamp()
        for event in events:
            produced_at[event.data.contact_id] = now
        await produce(ctx.stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events)
        await asyncio.sleep(0.1)
    records = await read_topic(
        ctx.stack.kafka_bootstrap_servers,
        SURVEY_INVITATION.name,
        until=lambda rs: len(rs) >= CONTACTS,
        timeout=120,
    )
    latencies = []
    for record in records:
        event = (
            decode(INVITATION_SENT.envelope, record.value)
            if b"invitation.sent" in record.value
            else None
        )
        if event and event.data.contact_id in produced_at:
            latencies.append(event.data.sent_at.timestamp() - produced_at[event.data.contact_id])
    return latency_figures(latencies, "contact_closed_to_sent")


async def _response_to_published(ctx: Any, system: Any) -> dict[str, float]:
    tokens = survey_tokens(ctx.stack.maildir)[:RESPONSES]
    site_of: dict[str, str] = {}
    latencies = []
    simulator = CrmSimulator(seed=8)
    async with (
        httpx.AsyncClient(base_url=system["responses"].url) as responses,
        httpx.AsyncClient(base_url=system["publication"].url) as publication,
    ):
        counts: dict[str, int] = {}
        for token in tokens:
            site = await _site_of(responses, token, site_of)
            started = time.perf_counter()
            answer = await responses.post(
                f"/v1/responses/{token}", json={"answers": simulator.answers()}
            )
            if answer.status_code != 201:
                continue
            counts[site] = counts.get(site, 0) + 1
            while time.perf_counter() - started < 30:
                feed = await publication.get(f"/v1/sites/{site}/indicators")
                if feed.status_code == 200 and _satisfaction_n(feed.json()) >= counts[site]:
                    latencies.append(time.perf_counter() - started)
                    break
                await asyncio.sleep(0.02)
    return latency_figures(latencies, "response_to_published")


async def _site_of(client: httpx.AsyncClient, token: str, cache: dict[str, str]) -> str:
    # The page names the site; the feed is per site. Sites are few: match on the name.
    if token not in cache:
        page = (await client.get(f"/s/{token}")).text
        cache[token] = next((sid for sid, name, _ in SITES if name in page), SITES[0][0])
    return cache[token]


def _satisfaction_n(body: dict[str, Any]) -> int:
    for figure in body["current"]["indicators"]:
        if figure["id"] == "satisfaction" and figure["published"]:
            return int(figure["sample_size"])
    return 0
