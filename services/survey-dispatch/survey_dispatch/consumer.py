"""Handles `contact closed` (decide whether to survey, schedule the send) and `response
submitted` (no reminder to those who answered), a whole partition batch in one transaction.

Deciding a batch at once costs a handful of queries instead of a handful per event: that is
what lets one process decide well over a thousand contacts a second.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import (
    ContactClosed,
    ContactSeen,
    InvitationSuppressed,
    ResponseSubmitted,
    SuppressionReason,
)
from contracts.topics import (
    CONTACT_SEEN,
    INVITATION_SUPPRESSED,
    SURVEY_CONTACT,
    SURVEY_INVITATION,
    SURVEY_RESPONSE,
)
from plumbing.db import Connection
from plumbing.outbox import enqueue_many
from plumbing.tracing import carried, continuing
from survey_dispatch import domain, repository
from survey_dispatch.settings import DispatchSettings

SOURCE = "/survey-dispatch"


class DecisionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "dispatch_decisions_total", "Survey decisions by outcome and reason",
            ["outcome", "reason"], registry=registry,
        )  # fmt: skip
        self.answers = Counter(
            "dispatch_answers_total", "Responses that stopped a reminder", registry=registry
        )


def contact_points(contact: ContactClosed, *, case_insensitive_local_part: bool) -> list[str]:
    """Normalised email and phone, so an opt-out matches however the CRM wrote them.

    An email comes in its opt-out form (`domain.optout_address`) and, when that differs, as it
    is written: opt-outs recorded before local parts were matched case-insensitively still hold.
    """
    found = []
    if contact.email and (email := domain.normalize_email(contact.email)):
        folded = domain.optout_address(
            email, case_insensitive_local_part=case_insensitive_local_part
        )
        found += [folded] if folded == email else [folded, email]
    if contact.mobile_phone and (phone := domain.normalize_mobile(contact.mobile_phone)):
        found.append(phone)
    return found


@dataclass
class _BatchState:
    """What the database said about the batch's contacts and users, updated as we decide,
    so two contacts of one user in the same batch still respect fatigue and duplicates."""

    known: set[str]
    opted_out: set[tuple[str, str]]
    last_invited: dict[tuple[str, str], datetime]
    rules: dict[tuple[str, str], domain.Rules] = field(default_factory=dict)
    contacts: list[tuple[Any, ...]] = field(default_factory=list)
    invitations: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, CloudEvent[Any]]] = field(default_factory=list)

    def is_opted_out(self, network: str, subjects: list[str]) -> bool:
        return any(
            (net, subject) in self.opted_out for subject in subjects for net in (network, "*")
        )


class ContactClosedHandler:
    def __init__(self, settings: DispatchSettings, metrics: DecisionMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.key = settings.pseudonym_key.get_secret_value().encode()

    def pseudonym(self, value: str) -> str:
        return domain.pseudonymize(value, self.key)

    def subjects(self, contact: ContactClosed) -> list[str]:
        """The user reference first, then the contact points: what an opt-out can name."""
        points = contact_points(
            contact,
            case_insensitive_local_part=self.settings.optout_email_local_part_case_insensitive,
        )
        return [self.pseudonym(contact.user_ref)] + [self.pseudonym(point) for point in points]

    def optout_subject(self, address: str) -> str:
        """The opt-out subject of an invitation's address (an email or an E.164 phone)."""
        return self.pseudonym(
            domain.optout_address(
                address,
                case_insensitive_local_part=self.settings.optout_email_local_part_case_insensitive,
            )
        )

    def optout_digest(self, invitation_id: str) -> str:
        return domain.token_digest(domain.optout_token(invitation_id, self.key))

    async def __call__(self, conn: Connection, topic: str, events: list[CloudEvent[Any]]) -> None:
        if not events:
            return
        if topic == SURVEY_RESPONSE.name:
            await self._answered(conn, [event.data for event in events])
        else:
            await self._decide_batch(conn, [event.data for event in events], events)

    async def _answered(self, conn: Connection, responses: list[ResponseSubmitted]) -> None:
        await repository.mark_answered(
            conn, answers=[(response.invitation_id, response.answered_at) for response in responses]
        )
        self.metrics.answers.inc(len(responses))

    async def _decide_batch(
        self, conn: Connection, contacts: list[ContactClosed], events: list[CloudEvent[Any]]
    ) -> None:
        subjects = {contact.contact_id: self.subjects(contact) for contact in contacts}
        users = sorted({subjects[contact.contact_id][0] for contact in contacts})
        # Users and contact points: an opt-out (link or SMS STOP) takes the same locks, so a
        # decision never schedules a send the opt-out committed meanwhile would not cancel.
        await repository.lock_users(
            conn, keys=sorted({s for found in subjects.values() for s in found})
        )
        state = _BatchState(
            known=await repository.known_contacts(
                conn, contact_ids=[contact.contact_id for contact in contacts]
            ),
            opted_out=await repository.opted_out_subjects(
                conn, subjects=sorted({s for found in subjects.values() for s in found})
            ),
            last_invited=await repository.last_invitations(conn, user_pseudo_ids=users),
        )
        now = utc_now()
        for contact in contacts:
            rules = await self._rules(conn, state, contact)
            self._decide_one(state, contact, rules, subjects[contact.contact_id], now)
        _continue_traces(state, {event.data.contact_id: event for event in events})
        await repository.insert_contacts(conn, rows=state.contacts)
        await repository.insert_invitations(conn, rows=state.invitations)
        await enqueue_many(conn, state.events)
        if any(invitation["send_at"] <= now for invitation in state.invitations):
            await repository.notify_due(conn)  # delivered when this transaction commits

    async def _rules(
        self, conn: Connection, state: _BatchState, contact: ContactClosed
    ) -> domain.Rules:
        key = (contact.network, contact.site_id)
        if key not in state.rules:
            network_rules, site_rules = await repository.rules_for(
                conn, network=contact.network, site_id=contact.site_id
            )
            state.rules[key] = domain.effective_rules(
                network_rules, site_rules, network=contact.network, site_id=contact.site_id
            )
        return state.rules[key]

    def _decide_one(
        self, state: _BatchState, contact: ContactClosed, rules: domain.Rules,
        subjects: list[str], now: datetime,
    ) -> None:  # fmt: skip
        user = subjects[0]
        decision = domain.decide(
            contact, rules,
            already_handled=contact.contact_id in state.known,
            opted_out=state.is_opted_out(contact.network, subjects),
            last_invited_at=state.last_invited.get((contact.network, user)),
            now=now,
        )  # fmt: skip
        if decision.reason is not SuppressionReason.DUPLICATE_CONTACT:  # seen once per contact
            state.events.append(_seen_event(contact, user, now, rules.timezone))
        state.known.add(contact.contact_id)
        if decision.send and decision.point is not None:
            state.last_invited[(contact.network, user)] = now
            self._schedule(state, contact, rules, decision.point, user, now)
            self.metrics.decisions.labels("invite", "").inc()
            return
        assert decision.reason is not None
        self.metrics.decisions.labels("suppress", decision.reason.value).inc()
        if decision.reason is not SuppressionReason.DUPLICATE_CONTACT:  # the first decision stands
            state.contacts.append((
                contact.contact_id, contact.network, contact.site_id, now,
                decision.reason.value, decision.detail,
            ))  # fmt: skip
        state.events.append(_suppressed_event(contact, decision, now))

    def _schedule(
        self, state: _BatchState, contact: ContactClosed, rules: domain.Rules,
        point: domain.ContactPoint, user: str, now: datetime,
    ) -> None:  # fmt: skip
        token = domain.new_token()
        invitation_id = f"inv-{uuid.uuid4().hex[:20]}"
        state.contacts.append(
            (contact.contact_id, contact.network, contact.site_id, now, "invite", "")
        )
        state.invitations.append({
            "invitation_id": invitation_id,
            "contact_id": contact.contact_id,
            "network": contact.network,
            "site_id": contact.site_id,
            "site_name": contact.site_name,
            "channel": contact.channel.value,
            "motif": contact.motif,
            "profile": contact.profile,
            "request_nature": contact.request_nature.value if contact.request_nature else None,
            "user_pseudo_id": user,
            "survey_channel": point.channel.value,
            "address": point.address,
            "token": token,
            "token_sha256": domain.token_digest(token),
            "questionnaire_version": domain.questionnaire_version(
                rules, contact.motif, default=self.settings.questionnaire_version
            ),
            "closed_at": contact.closed_at,
            "send_at": domain.first_send_time(contact.closed_at, point.channel, rules),
            "created_at": now,
            "optout_sha256": self.optout_digest(invitation_id),
        })  # fmt: skip


def _continue_traces(state: _BatchState, sources: dict[str, CloudEvent[Any]]) -> None:
    """Each event and invitation of the batch continues its own contact's trace (the batch's
    span continues only the first one's)."""
    state.events = [
        (topic, key, carried(sources[event.data.contact_id], event))
        for topic, key, event in state.events
    ]
    for invitation in state.invitations:
        invitation["traceparent"], invitation["tracestate"] = continuing(
            sources[invitation["contact_id"]]
        )


def _suppressed_event(
    contact: ContactClosed, decision: domain.Decision, now: datetime
) -> tuple[str, str, CloudEvent[Any]]:
    assert decision.reason is not None
    suppressed = InvitationSuppressed(
        contact_id=contact.contact_id, site_id=contact.site_id, network=contact.network,
        channel=contact.channel, motif=contact.motif, reason=decision.reason,
        detail=decision.detail[:500], decided_at=now,
    )  # fmt: skip
    event = CloudEvent[InvitationSuppressed](
        id=new_event_id(), source=SOURCE, type=INVITATION_SUPPRESSED.type, time=now,
        subject=contact.site_id, data=suppressed,
    )  # fmt: skip
    return SURVEY_INVITATION.name, contact.site_id, event


def _seen_event(
    contact: ContactClosed, user_pseudo_id: str, now: datetime, site_timezone: str
) -> tuple[str, str, CloudEvent[Any]]:
    """Every valid contact, surveyed or not, without contact points: what scoring needs for
    observed first-contact resolution, so that it never reads the CRM topic."""
    seen = ContactSeen(
        contact_id=contact.contact_id, site_id=contact.site_id, network=contact.network,
        channel=contact.channel, motif=contact.motif, sub_motif=contact.sub_motif,
        team=contact.team, user_pseudo_id=user_pseudo_id, closed_at=contact.closed_at,
        site_timezone=site_timezone,
    )  # fmt: skip
    event = CloudEvent[ContactSeen](
        id=new_event_id(), source=SOURCE, type=CONTACT_SEEN.type, time=now,
        subject=contact.site_id, data=seen,
    )  # fmt: skip
    return SURVEY_CONTACT.name, contact.site_id, event
