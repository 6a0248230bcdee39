"""Issue #14, migration 0270: the breakdowns by channel, motif, nature and profile (view
`tallies`) are the responses' facts, plus the archived vectors of the facts the retention
purge deleted. The breakdowns must not change when facts are purged, nor when the migration
moves a database's breakdown vectors to that model.

The real handler, purge and migrations on one real database (schemas of the tests' own)."""

from __future__ import annotations

import random
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from scoring import repository
from scoring.consumer import ScoringHandler
from scoring.settings import ScoringSettings

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import ResponseSubmitted
from contracts.topics import RESPONSE_SUBMITTED, SURVEY_RESPONSE
from plumbing import db

pytestmark = pytest.mark.integration

MIGRATIONS = Path(repository.__file__).parent / "migrations"
BREAKDOWN = "SELECT * FROM tallies ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"


def responses(site_id: str, count: int, *, days_ago: int, seed: int) -> list[CloudEvent[Any]]:
    rng, events = random.Random(seed), []
    for _ in range(count):
        moment = utc_now() - timedelta(days=days_ago, minutes=rng.randrange(600))
        answers: dict[str, int | str] = {"recommandation": rng.randint(0, 10)}
        if rng.random() < 0.5:
            answers["effort"] = rng.randint(1, 7)
        data = ResponseSubmitted(
            response_id=f"rsp-{uuid.uuid4().hex[:12]}",
            invitation_id=f"inv-{uuid.uuid4().hex[:12]}", contact_id=f"crm-{uuid.uuid4().hex[:12]}",
            site_id=site_id, network="urssaf",
            channel=rng.choice(["telephone", "courriel"]), motif=rng.choice(["paiement", "dpae"]),
            profile=rng.choice([None, "employeur"]), questionnaire_version="urssaf-chaud-2024-v1",
            answers=answers, answered_at=moment,
        )  # fmt: skip
        events.append(CloudEvent[ResponseSubmitted](
            id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=moment,
            subject=site_id, data=data,
        ))  # fmt: skip
    return events


async def test_purged_facts_keep_their_breakdowns(stack: Any, pool: asyncpg.Pool) -> None:
    handler = ScoringHandler(ScoringSettings(database_url=stack.database_url))
    site = f"site-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        for seed, days_ago in ((1, 200), (2, 200), (3, 10)):  # two purges of the same keys
            async with conn.transaction():
                await handler(
                    conn, SURVEY_RESPONSE.name, responses(site, 60, days_ago=days_ago, seed=seed)
                )
        before = await conn.fetch(BREAKDOWN)
        # The facts were counted when their answers were given: long ago for the old ones.
        await conn.execute(
            "UPDATE response_facts SET counted_at = answered_at WHERE site_id = $1", site
        )
        cut = (utc_now() - timedelta(days=90)).date()
        purged = 0
        for _ in range(2):
            async with conn.transaction():
                deleted = await repository.purge(
                    conn, contacts_before=utc_now(), verbatims_before=cut,
                    alerts_before=utc_now(), inbox_before={},
                )  # fmt: skip
            purged += deleted["response_facts"]
            assert await conn.fetch(BREAKDOWN) == before
            # A second day's facts, purged into the same archived vectors.
            await conn.execute(
                "UPDATE response_facts SET day = day - 190, answered_at = answered_at "
                "- interval '190 days', counted_at = counted_at - interval '190 days' "
                "WHERE site_id = $1 AND day > $2", site, cut,
            )  # fmt: skip
            before = await conn.fetch(BREAKDOWN)
        assert purged == 180
        assert await conn.fetchval("SELECT count(*) FROM response_facts") == 0
        archived = await conn.fetchval(
            "SELECT sum(n) FROM tally_vectors t, unnest(t.counts) AS n WHERE site_id = $1", site
        )
        assert archived > 180  # each response's count and its answers
        responses_counted = await conn.fetchval(
            "SELECT sum(count) FROM tallies WHERE site_id = $1 AND item = '__responses__'", site
        )
        assert responses_counted == 180


async def test_the_migration_keeps_every_breakdown(stack: Any, tmp_path: Path) -> None:
    """A database as 0260 left it: breakdown vectors holding every response (as the handler
    wrote them then), facts for some, and vectors for responses without facts (counted before
    the facts existed, or purged); and one fact with a cell no vector counts, whatever put it
    there. After 0270, `tallies` reads the very same rows."""
    before_0270 = tmp_path / "migrations"
    before_0270.mkdir()
    for path in MIGRATIONS.glob("*.sql"):
        if path.name < "0270":
            shutil.copy(path, before_0270)
    schema = f"scoring_{uuid.uuid4().hex[:8]}"
    await db.migrate(stack.database_url, schema=schema, migrations_dir=before_0270)
    conn = await db.connect(stack.database_url, schema=schema)
    try:
        rng = random.Random(7)
        for n in range(120):
            site, day = rng.choice(["a", "b"]), utc_now().date() - timedelta(days=rng.randrange(3))
            channel, motif = rng.choice(["telephone", "courriel"]), rng.choice(["x", "y"])
            cells = {"__responses__": "1", "recommandation": str(rng.randint(0, 10))}
            if rng.random() < 0.5:
                cells["effort"] = str(rng.randint(1, 7))
            for item, value in cells.items():  # the old vectors, through the view's trigger
                await conn.execute(
                    "INSERT INTO tallies (site_id, day, channel, motif, item, value, count) "
                    "VALUES ($1, $2, $3, $4, $5, $6, 1)", site, day, channel, motif, item, value,
                )  # fmt: skip
            if n == 1:  # a fact holding a cell its vector lacks (and no position has yet)
                cells = {**cells, "hors_vecteur": "1"}
            if n % 3:  # a third counted without a fact
                await conn.execute(
                    "INSERT INTO response_facts (response_id, invitation_id, site_id, day, "
                    "answered_at, channel, motif, cells) VALUES ($1, $1, $2, $3, now(), $4, $5, "
                    "$6::text::jsonb)",
                    f"r{n}", site, day, channel, motif, repository.json_document(cells),
                )  # fmt: skip
        before = await conn.fetch(BREAKDOWN)
    finally:
        await conn.close()
    applied = await db.migrate(stack.database_url, schema=schema, migrations_dir=MIGRATIONS)
    assert applied[0] == "0270_breakdown_from_facts"
    conn = await db.connect(stack.database_url, schema=schema)
    try:
        assert await conn.fetch(BREAKDOWN) == before
        archived = await conn.fetchval(
            "SELECT sum(t.counts[c.position]) FROM tally_vectors t, tally_cells c "
            "WHERE c.item = '__responses__'"
        )
        assert archived == 40  # only the responses without a fact
    finally:
        await conn.close()


async def test_a_row_inserted_into_either_view_counts_once(pool: asyncpg.Pool) -> None:
    """Seeding and manual corrections (the views' triggers): a row put into `tallies` counts in
    the breakdown and in its site's day; one put into `site_day_tallies`, in its day only."""
    site, day = f"site-{uuid.uuid4().hex[:8]}", utc_now().date()
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO tallies (site_id, day, channel, motif, item, value, count) "
            "VALUES ($1, $2, 'telephone', 'paiement', 'nouvel_item', 'x', 3)", site, day,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO site_day_tallies (site_id, day, item, value, count) "
            "VALUES ($1, $2, 'nouvel_item', 'x', 2)", site, day,
        )  # fmt: skip
        breakdown = await conn.fetch(
            "SELECT channel, motif, item, value, count FROM tallies WHERE site_id = $1", site
        )
        by_day = await conn.fetch(
            "SELECT item, value, count FROM site_day_tallies WHERE site_id = $1", site
        )
    assert [tuple(row) for row in breakdown] == [("telephone", "paiement", "nouvel_item", "x", 3)]
    assert [tuple(row) for row in by_day] == [("nouvel_item", "x", 5)]
