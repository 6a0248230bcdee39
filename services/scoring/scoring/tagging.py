"""Verbatims' themes and tone, as stored (issue #17): the consumer tags each verbatim of a batch
in process (scoring.themes.tag, pure, no round-trip), and `Retagger` brings older rows up to the
running tagger at start and every `RETAG_EVERY_SECONDS` after.

Each row records the tagger that tagged it (a digest of scoring.themes' source). A verbatim
stored before tagging existed, or tagged by another version of the lexicon, is re-tagged in
batches of `BATCH` in the background, walking the primary key once (`FOR UPDATE SKIP LOCKED`:
replicas share the work, a consumer's insert is never waited on). Until then it reads « non
classé » (no tone) or keeps its former tags. The text is the stored one, redacted upstream.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg

from scoring import repository, themes

log = logging.getLogger(__name__)
BATCH = 1000
# During a rolling deploy the replica still on the old lexicon goes on tagging new rows after the
# new one's first pass: the next pass, this long after, brings them up to date.
RETAG_EVERY_SECONDS = 600.0


@cache
def tagger_version() -> str:
    """A digest of the tagger's source: a change of lexicon or rule is a new version."""
    return hashlib.sha256(Path(themes.__file__).read_bytes()).hexdigest()[:16]


def verbatim_tags(text: str) -> tuple[list[str], str, str, str]:
    """(themes, tone, trigger words as JSON text, tagger version) of a stored verbatim; trigger
    words: {"themes": {theme: [words]}, "tone": [words]}."""
    tagging = themes.tag(text)
    words = {
        "themes": {tag.theme: list(tag.words) for tag in tagging.themes},
        "tone": list(tagging.tone_words),
    }
    return (
        [tag.theme for tag in tagging.themes],
        tagging.tone,
        json.dumps(words, ensure_ascii=False),
        tagger_version(),
    )


class Retagger:
    """Re-tags the verbatims the running tagger did not tag, at start and then every
    `every_seconds` (rows an older replica tags during a rolling deploy); a pass that finds
    nothing reads the verbatims' tagger column once."""

    def __init__(
        self, pool: asyncpg.Pool, *, batch: int = BATCH, every_seconds: float = RETAG_EVERY_SECONDS
    ) -> None:
        self.pool = pool
        self.batch = batch
        self.every_seconds = every_seconds

    async def run(self) -> None:
        while True:  # until the service stops
            await self.retag()
            await asyncio.sleep(self.every_seconds)

    async def retag(self) -> int:
        """The number of verbatims re-tagged."""
        version = tagger_version()
        after, total = "", 0
        while True:
            conn: Any
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await repository.verbatims_to_tag(
                    conn, version=version, after=after, limit=self.batch
                )
                if not rows:
                    break
                await repository.set_verbatim_tags(
                    conn, rows=[(row["response_id"], *verbatim_tags(row["text"])) for row in rows]
                )
            after, total = rows[-1]["response_id"], total + len(rows)
        if total:  # counts and the version only: never a text
            log.info("verbatims re-tagged", extra={"verbatims": total, "tagger": version})
        return total
