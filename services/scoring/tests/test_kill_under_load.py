"""SIGKILL scoring again and again while it folds thousands of responses: each one is counted
exactly once, in the tallies and in the site-level rollup (the bench does the same over 50,000)."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from contracts.envelope import CloudEvent, encode, new_event_id, utc_now
from contracts.events import ResponseSubmitted
from contracts.topics import RESPONSE_SUBMITTED, SURVEY_RESPONSE
from plumbing.services import System, start_system
from plumbing.testing import async_wait_for

pytestmark = pytest.mark.integration

RESPONSES, WAITING, SITES, CHUNK, KILLS = 6_000, 3_000, 12, 500, 3


def response_event(rng: random.Random, n: int) -> CloudEvent[ResponseSubmitted]:
    site_id = f"kill-{n % SITES:02d}"
    moment = utc_now() - timedelta(minutes=rng.randrange(20 * 24 * 60))
    data = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:12]}", invitation_id=f"inv-{uuid.uuid4().hex[:12]}",
        contact_id=f"crm-{uuid.uuid4().hex[:12]}", site_id=site_id, network="urssaf",
        channel=rng.choice(["telephone", "courriel"]), motif=rng.choice(["declaration", "depot"]),
        questionnaire_version="urssaf-chaud-2024-v1", answered_at=moment,
        answers={"satisfaction_globale": rng.randint(1, 10), "recommandation": rng.randint(0, 10)},
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=moment,
        subject=site_id, data=data,
    )  # fmt: skip


async def counts(database_url: str) -> dict[str, int]:
    """Responses counted per table and per site (each site's tally and rollup)."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT 'tallies:' || site_id AS k, sum(count)::bigint AS n FROM scoring.tallies "
            "WHERE item = '__responses__' AND site_id LIKE 'kill-%' GROUP BY site_id "
            "UNION ALL SELECT 'rollup:' || site_id, sum(count)::bigint "
            "FROM scoring.site_day_tallies "
            "WHERE item = '__responses__' AND site_id LIKE 'kill-%' GROUP BY site_id "
            "UNION ALL SELECT 'ratings', coalesce(sum(count), 0)::bigint FROM scoring.tallies "
            "WHERE item = 'recommandation' AND site_id LIKE 'kill-%'"
        )
        return {row["k"]: int(row["n"]) for row in rows}
    finally:
        await connection.close()


def counted(figures: dict[str, int]) -> int:
    return sum(n for key, n in figures.items() if key.startswith("tallies:"))


async def test_scoring_killed_again_and_again_under_load_counts_each_response_once(stack, tmp_path):
    rng = random.Random(14)
    events = [response_event(rng, n) for n in range(RESPONSES)]

    def start(run: int) -> System:
        folder = tmp_path / f"run-{run}"
        folder.mkdir()
        return start_system(stack.env(), folder, only=("scoring",))

    async def feed(events: list[CloudEvent[ResponseSubmitted]]) -> None:
        # One producer with room to wait: the broker shares the machine with the test.
        producer = AIOKafkaProducer(
            bootstrap_servers=stack.kafka_bootstrap_servers, acks="all", linger_ms=5,
            request_timeout_ms=120_000,
        )  # fmt: skip
        await producer.start()
        try:
            for start_at in range(0, len(events), CHUNK):
                sent = [
                    await producer.send(SURVEY_RESPONSE.name, encode(e), key=e.subject.encode())
                    for e in events[start_at : start_at + CHUNK]
                    if e.subject is not None
                ]
                await asyncio.gather(*sent)
                await asyncio.sleep(0.3)
        finally:
            await producer.stop()

    await feed(events[:WAITING])  # a backlog before the first start, the rest while it runs
    system = start(0)
    feeding = asyncio.create_task(feed(events[WAITING:]))
    kills = 0
    try:
        seen = 0
        while kills < KILLS and seen < RESPONSES:
            before = seen

            async def progressed(before: int = before) -> bool:
                return counted(await counts(stack.database_url)) > before

            await async_wait_for(progressed, timeout=120, interval=0.02)
            system["scoring"].kill()  # SIGKILL in the middle of the flow: no drain, no commit
            kills += 1
            seen = counted(await counts(stack.database_url))
            assert seen <= RESPONSES
            system = start(kills)
        await feeding

        async def all_counted() -> bool:
            return counted(await counts(stack.database_url)) >= RESPONSES

        await async_wait_for(all_counted, timeout=180)
        await asyncio.sleep(2)  # anything counted twice would show up by now
        figures = await counts(stack.database_url)
        expected = {f"kill-{site:02d}": RESPONSES // SITES for site in range(SITES)}
        assert {key: n for key, n in figures.items() if key.startswith("tallies:")} == {
            f"tallies:{site}": n for site, n in expected.items()
        }
        assert {key: n for key, n in figures.items() if key.startswith("rollup:")} == {
            f"rollup:{site}": n for site, n in expected.items()
        }
        assert figures["ratings"] == RESPONSES  # every response's cells, not just its count
        assert kills >= 2, "scoring was killed before it had counted everything"
    finally:
        feeding.cancel()
        system.stop()
