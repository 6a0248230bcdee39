"""Erasure and retention through the real broker and database: a `user erased` event unlinks
that user from their answers and drops their free text and drafts; old free text, dead drafts
and old inbox ids are forgotten by the retention pass."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta

import httpx
import pytest
from survey_responses import retention
from survey_responses.settings import ResponsesSettings

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import UserErased
from contracts.topics import SURVEY_INVITATION, USER_ERASED
from plumbing.testing import async_wait_for, produce

pytestmark = pytest.mark.integration

REQUIRED = {"satisfaction_globale": 3, "recommandation": 2}


def erased_event(user: str, network: str = "urssaf") -> CloudEvent[UserErased]:
    now = utc_now()
    return CloudEvent[UserErased](
        id=new_event_id(), source="/survey-dispatch", type=USER_ERASED.type, time=now,
        subject=network, data=UserErased(erasure_id=f"era-{secrets.token_hex(6)}",
                                         network=network, user_pseudo_id=user, requested_at=now),
    )  # fmt: skip


async def rows_of(db, tokens: list[str]) -> list[dict]:
    digests = [hashlib.sha256(token.encode()).hexdigest() for token in tokens]
    rows = await db.fetch(
        "SELECT i.contact_id, i.user_pseudo_id, i.erased_at IS NOT NULL AS erased,"
        " r.answers::text AS answers, d.answers::text AS draft"
        " FROM invitations i LEFT JOIN responses r USING (invitation_id)"
        " LEFT JOIN drafts d USING (invitation_id)"
        " WHERE i.token_sha256 = ANY($1) ORDER BY array_position($1, i.token_sha256)",
        digests,
    )
    return [
        {**dict(row), "answers": row["answers"] and json.loads(row["answers"]),
         "draft": row["draft"] and json.loads(row["draft"])}
        for row in rows
    ]  # fmt: skip


async def test_a_user_erased_event_unlinks_the_user_and_drops_their_free_text(
    service, invite, db, stack
):
    user, neighbour = secrets.token_hex(16), secrets.token_hex(16)
    answered, drafted = await invite(2, user_pseudo_id=user)
    [other] = await invite(user_pseudo_id=neighbour)
    answers = {**REQUIRED, "recontact": "oui", "suggestion": "Trop d'attente au guichet."}
    async with httpx.AsyncClient(base_url=service.url) as http:
        for token in (answered, other):
            assert (
                await http.post(f"/v1/responses/{token}", json={"answers": answers})
            ).status_code == 201
        draft = {"answers": {"suggestion": "À compléter"}, "partial": True}
        assert (await http.post(f"/v1/responses/{drafted}", json=draft)).status_code == 200

        await produce(stack.kafka_bootstrap_servers, SURVEY_INVITATION.name, [erased_event(user)])

        async def unlinked() -> bool:
            return all(row["erased"] for row in await rows_of(db, [answered, drafted]))

        await async_wait_for(unlinked, timeout=60, interval=0.2)
        closed = await http.get(f"/s/{drafted}")

    erased_answered, erased_draft, untouched = await rows_of(db, [answered, drafted, other])
    assert erased_answered == {
        "contact_id": None, "user_pseudo_id": None, "erased": True, "draft": None,
        "answers": {**REQUIRED, "recontact": "oui"},  # the anonymous figures stay right
    }  # fmt: skip
    assert erased_draft == {
        "contact_id": None, "user_pseudo_id": None, "erased": True, "draft": None, "answers": None,
    }  # fmt: skip
    assert untouched["user_pseudo_id"] == neighbour and untouched["answers"] == answers
    assert closed.status_code == 410  # the link can no longer be answered (nor linked again)
    assert user not in json.dumps([erased_answered, erased_draft])


async def test_retention_drops_old_free_text_dead_drafts_and_old_inbox_ids(service, invite, db):
    old, recent, expired, open_ = await invite(4)
    answers = {**REQUIRED, "suggestion": "Un texte libre."}
    async with httpx.AsyncClient(base_url=service.url) as http:
        for token in (old, recent):
            assert (
                await http.post(f"/v1/responses/{token}", json={"answers": answers})
            ).status_code == 201
        for token in (expired, open_):
            draft = {"answers": {"suggestion": "brouillon"}, "partial": True}
            assert (await http.post(f"/v1/responses/{token}", json=draft)).status_code == 200
    digest = {t: hashlib.sha256(t.encode()).hexdigest() for t in (old, expired)}
    await db.execute(
        "UPDATE responses SET answered_at = now() - interval '181 days' WHERE invitation_id ="
        " (SELECT invitation_id FROM invitations WHERE token_sha256 = $1)",
        digest[old],
    )
    await db.execute(
        "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE token_sha256 = $1",
        digest[expired],
    )
    await db.execute(
        "INSERT INTO inbox (event_id, topic, received_at) VALUES ($1, 't', now() - interval"
        " '46 days'), ($2, 't', now())",
        "old-event-" + secrets.token_hex(4), "new-event-" + secrets.token_hex(4),
    )  # fmt: skip

    done = await retention.purge(db, ResponsesSettings(), now=utc_now())
    again = await retention.purge(db, ResponsesSettings(), now=utc_now())

    assert done["free_text"] >= 1 and done["drafts"] >= 1 and done["inbox"] >= 1
    assert again == {"free_text": 0, "drafts": 0, "inbox": 0}
    rows = await rows_of(db, [old, recent, expired, open_])
    assert rows[0]["answers"] == REQUIRED  # past 180 days: the ratings only
    assert rows[1]["answers"] == answers
    assert rows[2]["draft"] is None and rows[3]["draft"] == {"suggestion": "brouillon"}
    assert (
        await db.fetchval(
            "SELECT count(*) FROM inbox WHERE received_at < now() - interval '45 days'"
        )
        == 0
    )
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE event_id LIKE 'new-event-%'") >= 1
    assert timedelta(days=ResponsesSettings().free_text_retention_days) == timedelta(days=180)
