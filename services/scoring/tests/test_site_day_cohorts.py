"""site_day_cohorts (migration 0260, issue #14), which the publisher reads, holds each site and
send day's invitation cohort: the sums and the maximum of that day's invitation_tallies rows,
whatever batches, channels, motifs and redeliveries the consumer saw."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scoring.consumer import ScoringHandler
from scoring.settings import ScoringSettings

from contracts.envelope import CloudEvent, new_event_id
from contracts.events import InvitationSent, ResponseSubmitted
from contracts.topics import INVITATION_SENT, RESPONSE_SUBMITTED, SURVEY_INVITATION, SURVEY_RESPONSE

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
CHANNELS, MOTIFS = ["telephone", "courriel"], ["declaration", "paiement"]


def _invitation(rng: random.Random, site: str, sent_at: datetime) -> CloudEvent[Any]:
    data = InvitationSent(
        invitation_id=f"inv-{uuid.uuid4().hex[:16]}", contact_id=f"crm-{uuid.uuid4().hex[:12]}",
        site_id=site, network="urssaf", channel=rng.choice(CHANNELS), motif=rng.choice(MOTIFS),
        survey_channel="email", user_pseudo_id="u" * 32,
        questionnaire_version="urssaf-chaud-2024-v1", token_sha256="0" * 64, sent_at=sent_at,
        expires_at=sent_at + timedelta(days=rng.choice([3, 7])),
    )  # fmt: skip
    return CloudEvent[InvitationSent](
        id=new_event_id(), source="/test", type=INVITATION_SENT.type, time=sent_at,
        subject=site, data=data,
    )  # fmt: skip


def _response(rng: random.Random, site: str, invited_at: datetime | None) -> CloudEvent[Any]:
    answered_at = (invited_at or NOW - timedelta(days=rng.randint(0, 30))) + timedelta(hours=2)
    data = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:16]}", invitation_id=f"inv-{uuid.uuid4().hex[:16]}",
        contact_id=f"crm-{uuid.uuid4().hex[:16]}", site_id=site, network="urssaf",
        channel=rng.choice(CHANNELS), motif=rng.choice(MOTIFS),
        questionnaire_version="urssaf-chaud-2024-v1",
        answers={"recommandation": rng.randint(0, 10)}, answered_at=answered_at,
        invited_at=invited_at,
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=answered_at,
        subject=site, data=data,
    )  # fmt: skip


async def test_site_day_cohorts_are_the_sums_of_the_days_invitation_tallies(pool):
    rng = random.Random(260)
    handler = ScoringHandler(ScoringSettings(database_url="postgresql://unused"),
                             raise_alerts=False)  # fmt: skip
    sites = ["cohort-a", "cohort-b"]
    days = [NOW - timedelta(days=d, hours=rng.randint(0, 5)) for d in (0, 1, 8, 30)]
    sent = [_invitation(rng, rng.choice(sites), rng.choice(days)) for _ in range(60)]
    answers = [
        _response(rng, event.subject or "", event.data.sent_at)
        for event in sent
        if rng.random() < 0.6
    ] + [_response(rng, rng.choice(sites), None) for _ in range(10)]  # counted on their day
    async with pool.acquire() as conn:
        for start in range(0, 60, 25):  # batches, one sent again (a redelivery counts once)
            for topic, events in ((SURVEY_INVITATION.name, sent[start : start + 25 + 3]),
                                  (SURVEY_RESPONSE.name, answers[start : start + 25])):  # fmt: skip
                async with conn.transaction():
                    await handler(conn, topic, events)
        held = await conn.fetch(
            "SELECT site_id, day, invited, answered, open_until FROM site_day_cohorts "
            "WHERE site_id = ANY($1) ORDER BY site_id, day",
            sites,
        )
        summed = await conn.fetch(
            "SELECT site_id, day, sum(count)::bigint, sum(answered)::bigint, max(open_until) "
            "FROM invitation_tallies WHERE site_id = ANY($1) GROUP BY site_id, day "
            "ORDER BY site_id, day",
            sites,
        )
    assert [tuple(row) for row in held] == [tuple(row) for row in summed]
    assert len(held) >= 6
    assert sum(row["invited"] for row in held) == len(sent)
    assert any(row["answered"] for row in held)
