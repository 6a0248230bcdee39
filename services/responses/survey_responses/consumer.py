"""Learns of each sent invitation (by its token's hash), so its link can be answered; and of
each erasure request, to unlink the user from what they answered."""

from __future__ import annotations

from typing import Any

from contracts import questionnaire as questionnaires
from contracts.envelope import CloudEvent
from contracts.events import InvitationSent, UserErased
from contracts.topics import INVITATION_SENT, USER_ERASED
from plumbing.db import Connection
from plumbing.tracing import continuing
from survey_responses import domain, repository


async def handle_invitation_event(conn: Connection, topic: str, event: CloudEvent[Any]) -> None:
    if event.type == USER_ERASED.type:
        await erase_user(conn, event.data)
        return
    if event.type != INVITATION_SENT.type:
        return  # suppressed, failed and reminded invitations change nothing here
    sent: InvitationSent = event.data
    try:
        questionnaires.load(sent.questionnaire_version)
    except KeyError:  # the link could never be answered: let the consumer send it to the DLQ
        raise ValueError(f"unknown questionnaire version {sent.questionnaire_version!r}") from None
    traceparent, tracestate = continuing(event)  # the answer continues the contact's trace
    await repository.save_invitation(
        conn,
        traceparent=traceparent,
        tracestate=tracestate,
        invitation_id=sent.invitation_id,
        token_sha256=sent.token_sha256,
        contact_id=sent.contact_id,
        network=sent.network,
        site_id=sent.site_id,
        site_name=sent.site_name,
        channel=sent.channel.value,
        motif=sent.motif,
        profile=sent.profile,
        request_nature=sent.request_nature.value if sent.request_nature else None,
        user_pseudo_id=sent.user_pseudo_id,
        questionnaire_version=sent.questionnaire_version,
        expires_at=sent.expires_at,
        sent_at=sent.sent_at,  # told to scoring with the response: its cohort
        site_timezone=sent.site_timezone,  # told to scoring with the response: its clock
    )


async def erase_user(conn: Connection, erased: UserErased) -> None:
    """The user's invitations lose their contact id and pseudonym and close; their drafts and
    their answers' free text go. Ratings and choice codes stay, anonymous: the figures already
    published (and scoring's tallies) stay right. Idempotent: a second time finds nothing."""
    rows = await repository.erase_user(
        conn, network=erased.network, user_pseudo_id=erased.user_pseudo_id
    )
    by_version: dict[str, list[str]] = {}
    for row in rows:
        by_version.setdefault(row["questionnaire_version"], []).append(row["invitation_id"])
    for version, invitation_ids in by_version.items():
        item_ids = domain.free_text_items(questionnaires.load(version))
        if item_ids:
            await repository.drop_free_text(conn, item_ids=item_ids, invitation_ids=invitation_ids)
