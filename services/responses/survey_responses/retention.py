"""What this service keeps, and for how long: a background task that forgets on schedule.

- Free text (the suggestion box) is dropped from responses past `free_text_retention_days`;
  the ratings and choice codes stay, anonymous, for the published figures.
- A draft lives as long as its link: once the link expired nobody can resume it.
- The inbox forgets event ids past `inbox_retention_days` (longer than the topics keep them).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import asyncpg

from contracts import questionnaire as questionnaires
from contracts.envelope import utc_now
from plumbing.db import Connection, prune_inbox
from survey_responses import domain, repository
from survey_responses.settings import ResponsesSettings

log = logging.getLogger(__name__)


def all_questionnaires() -> list[questionnaires.Questionnaire]:
    return [
        questionnaires.load(path.stem)
        for path in sorted(questionnaires.QUESTIONNAIRE_DIR.glob("*.json"))
    ]


async def purge(conn: Connection, settings: ResponsesSettings, *, now: datetime) -> dict[str, int]:
    """One pass; how many rows each rule touched."""
    free_text = domain.free_text_everywhere(all_questionnaires())
    done = {
        "free_text": await repository.drop_free_text(
            conn,
            item_ids=free_text,
            answered_before=now - timedelta(days=settings.free_text_retention_days),
        ),
        "drafts": await repository.drop_expired_drafts(conn, now=now),
        "inbox": await prune_inbox(conn, older_than=timedelta(days=settings.inbox_retention_days)),
    }
    return done


async def run(pool: asyncpg.Pool, settings: ResponsesSettings) -> None:
    """Forever: a pass, then a pause (each replica does it; the statements are idempotent)."""
    while True:
        async with pool.acquire() as conn:
            done = await purge(conn, settings, now=utc_now())
        if any(done.values()):
            log.info("retention pass", extra=done)
        await asyncio.sleep(settings.retention_interval_seconds)
