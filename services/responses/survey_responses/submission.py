"""Store answers for an open invitation: a draft, or the one response and its event (outbox)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from contracts.envelope import CloudEvent, encode, new_event_id, utc_now
from contracts.events import ResponseSubmitted
from contracts.topics import RESPONSE_SUBMITTED, SURVEY_RESPONSE
from plumbing.db import Connection
from plumbing.tracing import stamped
from survey_responses import repository

SOURCE = "/responses"


async def save_draft(conn: Connection, row: asyncpg.Record, answers: dict[str, Any]) -> None:
    await repository.save_draft(conn, invitation_id=row["invitation_id"], answers=answers)


async def submit(conn: Connection, row: asyncpg.Record, answers: dict[str, int | str]) -> bool:
    """The response and its `response submitted` event, atomically (one statement).

    False (and nothing written) if the invitation was answered meanwhile.
    """
    response_id = f"rsp-{uuid.uuid4().hex[:20]}"
    answered_at = utc_now()
    data = ResponseSubmitted(
        response_id=response_id, invitation_id=row["invitation_id"], contact_id=row["contact_id"],
        site_id=row["site_id"], network=row["network"], channel=row["channel"], motif=row["motif"],
        profile=row["profile"], request_nature=row["request_nature"],
        user_pseudo_id=row["user_pseudo_id"], questionnaire_version=row["questionnaire_version"],
        answers=answers, answered_at=answered_at,
        invited_at=row["sent_at"],  # the invitation's cohort, for scoring's response rate
        site_timezone=row["site_timezone"],  # the site's clock, for scoring's day and week
    )  # fmt: skip
    event = CloudEvent[ResponseSubmitted](
        id=new_event_id(), source=SOURCE, type=RESPONSE_SUBMITTED.type, time=answered_at,
        subject=row["site_id"], data=data,
    )  # fmt: skip
    return await repository.store_response(
        conn, response_id=response_id, invitation_id=row["invitation_id"], answers=answers,
        answered_at=answered_at, topic=SURVEY_RESPONSE.name, key=row["site_id"].encode(),
        event=encode(stamped(event)),  # the invitation's trace (see app.answer_span)
    )  # fmt: skip
