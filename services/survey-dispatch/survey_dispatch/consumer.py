"""Handles `contact closed`: decide whether to survey, and schedule the send, in one transaction."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import ContactClosed, InvitationSuppressed
from contracts.topics import INVITATION_SUPPRESSED, SURVEY_INVITATION
from plumbing.outbox import enqueue
from survey_dispatch import domain, repository
from survey_dispatch.settings import DispatchSettings

SOURCE = "/survey-dispatch"


class DecisionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "dispatch_decisions_total", "Survey decisions by outcome and reason",
            ["outcome", "reason"], registry=registry,
        )  # fmt: skip


def contact_points(contact: ContactClosed) -> list[str]:
    """Normalised email and phone, so an opt-out matches however the CRM wrote them."""
    found = []
    if contact.email and (email := domain.normalize_email(contact.email)):
        found.append(email)
    if contact.mobile_phone and (phone := domain.normalize_mobile(contact.mobile_phone)):
        found.append(phone)
    return found


class ContactClosedHandler:
    def __init__(self, settings: DispatchSettings, metrics: DecisionMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.key = settings.pseudonym_key.get_secret_value().encode()

    def pseudonym(self, value: str) -> str:
        return domain.pseudonymize(value, self.key)

    async def __call__(self, conn: asyncpg.Connection, topic: str, event: CloudEvent[Any]) -> None:
        contact: ContactClosed = event.data
        now = utc_now()
        network_rules, site_rules = await repository.rules_for(
            conn, network=contact.network, site_id=contact.site_id
        )
        rules = domain.Rules.from_mapping(network_rules, site_rules)
        user = self.pseudonym(contact.user_ref)
        subjects = [user] + [self.pseudonym(point) for point in contact_points(contact)]
        decision = domain.decide(
            contact,
            rules,
            already_handled=await repository.contact_known(conn, contact_id=contact.contact_id),
            opted_out=await repository.is_opted_out(conn, network=contact.network, subjects=subjects),
            last_invited_at=await repository.last_invitation_at(
                conn, network=contact.network, user_pseudo_id=user
            ),
            now=now,
        )
        if decision.send and decision.point is not None:
            await self._schedule(conn, contact, rules, decision.point, user)
            self.metrics.decisions.labels("invite", "").inc()
            return
        reason = decision.reason.value if decision.reason else "unknown"
        self.metrics.decisions.labels("suppress", reason).inc()
        await repository.record_contact(
            conn, contact_id=contact.contact_id, network=contact.network, site_id=contact.site_id,
            decided_at=now, decision=reason, detail=decision.detail,
        )  # fmt: skip
        assert decision.reason is not None
        suppressed = InvitationSuppressed(
            contact_id=contact.contact_id, site_id=contact.site_id, network=contact.network,
            channel=contact.channel, motif=contact.motif, reason=decision.reason,
            detail=decision.detail[:500], decided_at=now,
        )  # fmt: skip
        await enqueue(
            conn,
            topic=SURVEY_INVITATION.name,
            key=contact.site_id,
            event=CloudEvent[InvitationSuppressed](
                id=new_event_id(), source=SOURCE, type=INVITATION_SUPPRESSED.type, time=now,
                subject=contact.site_id, data=suppressed,
            ),  # fmt: skip
        )

    async def _schedule(
        self, conn: asyncpg.Connection, contact: ContactClosed, rules: domain.Rules,
        point: domain.ContactPoint, user: str,
    ) -> None:  # fmt: skip
        token = domain.new_token()
        await repository.record_contact(
            conn, contact_id=contact.contact_id, network=contact.network, site_id=contact.site_id,
            decided_at=utc_now(), decision="invite", detail="",
        )  # fmt: skip
        await repository.schedule_invitation(
            conn,
            invitation_id=f"inv-{uuid.uuid4().hex[:20]}",
            contact_id=contact.contact_id,
            network=contact.network,
            site_id=contact.site_id,
            site_name=contact.site_name,
            channel=contact.channel.value,
            motif=contact.motif,
            profile=contact.profile,
            request_nature=contact.request_nature.value if contact.request_nature else None,
            user_pseudo_id=user,
            survey_channel=point.channel.value,
            address=point.address,
            token=token,
            token_sha256=domain.token_digest(token),
            questionnaire_version=self.settings.questionnaire_version,
            closed_at=contact.closed_at,
            send_at=domain.first_send_time(contact.closed_at, point.channel, rules),
        )
