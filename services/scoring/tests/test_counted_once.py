"""Issue #14: scoring keeps no inbox row per event; each response is claimed by its response id
and each invitation by its invitation id, in the transaction that counts it. Two transactions
handling the same response at once (a partition moving to another replica mid-batch, or a copy
under a new event id on another partition) count it once: the second claim waits for the
first's commit on the primary key, then finds it stored.

The consumers' real handler on one real database (a schema of the module's own)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from scoring.consumer import ScoringHandler
from scoring.settings import ScoringSettings

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import InvitationSent, ResponseSubmitted
from contracts.topics import INVITATION_SENT, RESPONSE_SUBMITTED, SURVEY_RESPONSE

pytestmark = pytest.mark.integration


def response(site_id: str) -> CloudEvent[ResponseSubmitted]:
    moment = utc_now()
    data = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:12]}", invitation_id=f"inv-{uuid.uuid4().hex[:12]}",
        contact_id=f"crm-{uuid.uuid4().hex[:12]}", site_id=site_id, network="urssaf",
        channel="telephone", motif="declaration", questionnaire_version="urssaf-chaud-2024-v1",
        answers={"recommandation": 9}, answered_at=moment, invited_at=moment,
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=moment,
        subject=site_id, data=data,
    )  # fmt: skip


def invitation(site_id: str) -> CloudEvent[InvitationSent]:
    now = utc_now()
    data = InvitationSent(
        invitation_id=f"inv-{uuid.uuid4().hex[:12]}", contact_id=f"crm-{uuid.uuid4().hex[:12]}",
        site_id=site_id, network="urssaf", channel="telephone", motif="declaration",
        survey_channel="email", user_pseudo_id="u" * 32,
        questionnaire_version="urssaf-chaud-2024-v1", token_sha256="0" * 64, sent_at=now,
        expires_at=now + timedelta(days=7),
    )  # fmt: skip
    return CloudEvent[InvitationSent](
        id=new_event_id(), source="/test", type=INVITATION_SENT.type, time=now,
        subject=site_id, data=data,
    )  # fmt: skip


async def counts(pool: asyncpg.Pool, site_id: str) -> tuple[int, int, int]:
    """(responses in the site's tallies, answers and invitations in its cohorts)."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT coalesce(sum(count), 0) FROM tallies WHERE site_id = $1 "
            "AND item = '__responses__') AS responses, "
            "(SELECT coalesce(sum(answered), 0) FROM invitation_tallies WHERE site_id = $1) "
            "AS answered, "
            "(SELECT coalesce(sum(count), 0) FROM invitation_tallies WHERE site_id = $1) "
            "AS invitations",
            site_id,
        )
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def test_two_transactions_handling_the_same_events_at_once_count_them_once(stack, pool):
    settings = ScoringSettings(database_url=stack.database_url)
    site = f"site-{uuid.uuid4().hex[:8]}"
    answer, sent = response(site), invitation(site)
    copy = answer.model_copy(update={"id": new_event_id()})  # the same response, a new event id
    first_claimed, first_done, second_started = asyncio.Event(), asyncio.Event(), asyncio.Event()
    returned: dict[str, Any] = {}

    async def first() -> None:
        async with pool.acquire() as conn, conn.transaction():
            handler = ScoringHandler(settings, raise_alerts=False)
            returned["first"] = await handler(conn, SURVEY_RESPONSE.name, [answer, sent])
            first_claimed.set()
            await asyncio.wait_for(second_started.wait(), 10)
            await asyncio.sleep(0.3)  # the second is now waiting on the claim: commit
        first_done.set()

    async def second() -> None:
        await asyncio.wait_for(first_claimed.wait(), 10)  # claimed, not committed yet
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '10s'")
            handler = ScoringHandler(settings, raise_alerts=False)
            second_started.set()
            returned["second"] = await handler(conn, SURVEY_RESPONSE.name, [copy, sent])
        assert first_done.is_set(), "the second claim did not wait for the first's commit"

    await asyncio.gather(first(), second())
    assert returned["first"] == set()
    assert returned["second"] == {copy.id, sent.id}  # both found counted: reported duplicates
    assert await counts(pool, site) == (1, 1, 1)


async def test_postgresql_reads_each_vector_literal_as_the_vector(pool: asyncpg.Pool) -> None:
    """The literals `add_vectors` and the rebuild's COPY send (tally_vectors.literal): counts of
    0 to 9 go by their short form with leading zeros, others by a list's repr; PostgreSQL must
    read both as the very vector."""
    from scoring import tally_vectors

    vectors = [[0], [9], [1, 0, 0, 3], [0, 10, 2], [255, 1], [256, 0, 7], [12345, 0, 1], [],
               [0] * 95 + [1], list(range(10)) * 9, [2**31 - 1, 5]]  # fmt: skip
    literals = [tally_vectors.literal(vector) for vector in vectors]
    assert literals[1] == "{09}" and literals[4] == "{255, 1}"  # both forms are exercised
    async with pool.acquire() as conn:
        read = await conn.fetch(
            "SELECT t::integer[] AS v FROM unnest($1::text[]) WITH ORDINALITY AS x (t, n) "
            "ORDER BY n",
            literals,
        )
    assert [list(row["v"]) for row in read] == vectors


async def test_copied_vectors_keep_keys_that_hold_what_copy_escapes(pool: asyncpg.Pool) -> None:
    """The rebuild's COPY of the vectors (repository.copy_vectors) sends most keys as they are,
    and escapes a key field by field only when a value holds a tab, a newline, a carriage
    return or a backslash: every key must come back as it was."""
    from scoring import repository

    keys = ["site-a", "site\tb", "site\nc", "si\\te-d", "site-e\r", "site-f\t"]
    vectors = {(site, "2026-12-01"): [index + 1, 0, 3] for index, site in enumerate(keys)}
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE site_day_vectors (LIKE site_day_vectors) ON COMMIT DROP"
        )
        await conn.execute("SET LOCAL search_path = pg_temp")
        await repository.copy_vectors(conn, vectors=vectors)
        rows = await conn.fetch("SELECT * FROM pg_temp.site_day_vectors")
    read = {(r["site_id"], r["day"].isoformat()): list(r["counts"]) for r in rows}
    assert read == vectors
