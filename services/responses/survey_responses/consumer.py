"""Learns of each sent invitation (by its token's hash), so its link can be answered."""

from __future__ import annotations

from typing import Any

from contracts import questionnaire as questionnaires
from contracts.envelope import CloudEvent
from contracts.events import InvitationSent
from contracts.topics import INVITATION_SENT
from plumbing.db import Connection
from survey_responses import repository


async def handle_invitation_event(conn: Connection, topic: str, event: CloudEvent[Any]) -> None:
    if event.type != INVITATION_SENT.type:
        return  # suppressed, failed and reminded invitations change nothing here
    sent: InvitationSent = event.data
    try:
        questionnaires.load(sent.questionnaire_version)
    except KeyError:  # the link could never be answered: let the consumer send it to the DLQ
        raise ValueError(f"unknown questionnaire version {sent.questionnaire_version!r}") from None
    await repository.save_invitation(
        conn,
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
    )
