"""Issue #17: verbatims stored before tagging, or tagged by another version of the lexicon, are
re-tagged at start (scoring.tagging.Retagger) on the real database; the running version's rows
are left alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import date
from pathlib import Path

import pytest
from scoring import tagging
from scoring.themes import tag

from plumbing import db
from plumbing.testing import async_wait_for

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[1] / "scoring" / "migrations"
DAY = date(2026, 11, 18)
LEGACY = "Trop d'attente au téléphone, personne ne décroche"
OLD_LEXICON = "L'accueil était désagréable"
CURRENT = "Réponse claire et rapide"


@pytest.fixture(scope="module")
async def pool(stack):
    await db.migrate(stack.database_url, schema="scoring", migrations_dir=MIGRATIONS)
    created = await db.create_pool(stack.database_url, schema="scoring")
    async with created.acquire() as conn:
        rows = [
            ("r-legacy", LEGACY, None, None, None),  # stored before migration 0240
            ("r-old", OLD_LEXICON, ["autre"], "neutre", "0000000000000000"),
            # The running version's row is trusted as it is (its odd tags show it is untouched).
            ("r-current", CURRENT, ["autre"], "neutre", tagging.tagger_version()),
        ]
        for response_id, text, themes, tone, version in rows:
            await conn.execute(
                "INSERT INTO verbatims (response_id, site_id, day, channel, motif, text, themes, "
                "tone, tagger) VALUES ($1, 'site-tags', $2, 'telephone', 'declaration', $3, $4, "
                "$5, $6)",
                response_id, DAY, text, themes, tone, version,
            )  # fmt: skip
    yield created
    await created.close()


async def stored(pool) -> dict[str, dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT response_id, themes, tone, trigger_words, tagger FROM verbatims "
            "WHERE site_id = 'site-tags'"
        )
    return {row["response_id"]: dict(row) for row in rows}


async def test_older_verbatims_are_retagged_once_and_current_ones_left_alone(pool):
    retagger = tagging.Retagger(pool, batch=1)  # one row a batch: the walk goes on past each
    assert await retagger.retag() == 2
    rows = await stored(pool)
    for response_id, text in (("r-legacy", LEGACY), ("r-old", OLD_LEXICON)):
        expected = tag(text)
        row = rows[response_id]
        assert row["themes"] == [t.theme for t in expected.themes], response_id
        assert row["tone"] == expected.tone == "irritant"
        words = row["trigger_words"]
        words = json.loads(words) if isinstance(words, str) else words
        assert words["tone"] == list(expected.tone_words)
        assert row["tagger"] == tagging.tagger_version()
    assert rows["r-legacy"]["themes"] == ["facilite_contact", "delais"]
    assert (rows["r-current"]["themes"], rows["r-current"]["tone"]) == (["autre"], "neutre")
    assert await retagger.retag() == 0  # done: a restart re-tags nothing


def test_the_consumers_tags_are_the_taggers_with_its_version():
    themes, tone, words, version = tagging.verbatim_tags(LEGACY)
    assert (themes, tone) == (["facilite_contact", "delais"], "irritant")
    assert json.loads(words) == {
        "themes": {"facilite_contact": ["téléphone", "décroche"], "delais": ["attente"]},
        "tone": ["Trop", "décroche"],
    }
    assert version == tagging.tagger_version() and len(version) == 16


async def test_a_row_an_older_replica_tags_later_is_retagged_by_the_next_pass(pool):
    """A rolling deploy: after this replica's first pass, a replica still on the old lexicon
    stores a verbatim with its own version; the running retagger brings it up to date."""
    running = asyncio.create_task(tagging.Retagger(pool, every_seconds=0.05).run())
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO verbatims (response_id, site_id, day, channel, motif, text, themes, "
                "tone, tagger) VALUES ('r-late-old', 'site-tags', $1, 'telephone', "
                "'declaration', $2, '{autre}', 'neutre', '1111111111111111')",
                DAY, OLD_LEXICON,
            )  # fmt: skip

        async def retagged() -> bool:
            return (await stored(pool))["r-late-old"]["tagger"] == tagging.tagger_version()

        await async_wait_for(retagged, timeout=10, interval=0.05)
        assert (await stored(pool))["r-late-old"]["tone"] == tag(OLD_LEXICON).tone
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
