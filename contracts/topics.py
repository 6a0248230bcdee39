"""The topic registry: one entry per topic, with owner, consumers, event types and retention."""

from __future__ import annotations

import builtins
import functools
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from contracts import events
from contracts.envelope import CloudEvent

DAY_MS = 24 * 3600 * 1000
EVENT_TYPE_PREFIX = "fr.enquetes"


@dataclass(frozen=True)
class EventType:
    type: str
    model: builtins.type[BaseModel]
    summary: str

    @functools.cached_property  # parametrising the generic model costs on every access
    def envelope(self) -> builtins.type[CloudEvent[Any]]:
        envelope: builtins.type[CloudEvent[Any]] = CloudEvent[self.model]  # type: ignore[name-defined]
        return envelope


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    owner: str
    consumers: tuple[str, ...]
    event_types: tuple[EventType, ...]
    partitions: int = 6
    retention_ms: int | None = 30 * DAY_MS
    compacted: bool = False
    description: str = ""
    dlq: bool = field(default=True)
    also_written_by: tuple[str, ...] = ()
    """Services that write the topic beside its owner, e.g. through an HTTP ingest."""
    personal_fields: tuple[str, ...] = ()
    """Fields of `data` holding e-mails, phones or raw user references: no DLQ record keeps them."""
    dlq_retention_ms: int | None = 30 * DAY_MS

    @property
    def personal_data(self) -> bool:
        return bool(self.personal_fields)

    @property
    def dlq_name(self) -> str:
        return f"{self.name}.dlq"

    def event_type(self, type_name: str) -> EventType:
        for event_type in self.event_types:
            if event_type.type == type_name:
                return event_type
        known = ", ".join(e.type for e in self.event_types)
        raise KeyError(f"unknown event type {type_name!r} on {self.name} (expected one of {known})")


def _type(name: str, model: type[BaseModel], summary: str) -> EventType:
    return EventType(f"{EVENT_TYPE_PREFIX}.{name}.v1", model, summary)


CONTACT_CLOSED = _type("contact.closed", events.ContactClosed, "A contact with a user ended.")
INVITATION_SENT = _type("invitation.sent", events.InvitationSent, "A survey link was sent.")
INVITATION_SUPPRESSED = _type(
    "invitation.suppressed", events.InvitationSuppressed, "No survey for this contact, and why."
)
INVITATION_FAILED = _type("invitation.failed", events.InvitationFailed, "A send failed for good.")
INVITATION_REMINDED = _type(
    "invitation.reminded", events.InvitationReminded, "The one reminder was sent."
)
RESPONSE_SUBMITTED = _type(
    "response.submitted", events.ResponseSubmitted, "A user answered the survey."
)
SITE_INDICATORS_UPDATED = _type(
    "site-indicators.updated", events.SiteIndicatorsUpdated, "A site's latest figures."
)
CONTACT_SEEN = _type(
    "contact.seen", events.ContactSeen, "A contact closed, pseudonymised (no contact point)."
)
USER_ERASED = _type("user.erased", events.UserErased, "A user's data is to be erased everywhere.")
DETRACTOR_ALERT = _type(
    "detractor.alert", events.DetractorAlert, "A dissatisfied user to call back."
)
CALLBACK_COMPLETED = _type(
    "callback.completed", events.CallbackCompleted, "A detractor alert was called back."
)

CRM_CONTACT_CLOSED = Topic(
    name="crm.contact.closed.v1",
    key="site_id",
    owner="operator CRMs",
    consumers=("survey-dispatch",),
    also_written_by=("survey-dispatch",),  # POST /v1/contacts, for CRMs without Kafka
    event_types=(CONTACT_CLOSED,),
    retention_ms=3 * DAY_MS,
    dlq_retention_ms=3 * DAY_MS,
    personal_fields=("email", "mobile_phone", "user_ref"),
    description=(
        "Every closed contact (call, visit, email) from the operators' CRMs. Carries contact "
        "points: only survey-dispatch reads it, and it is kept for 3 days."
    ),
)
SURVEY_CONTACT = Topic(
    name="survey.contact.v1",
    key="site_id",
    owner="survey-dispatch",
    consumers=("scoring",),
    event_types=(CONTACT_SEEN,),
    description="Every closed contact, pseudonymised, for observed first-contact resolution.",
)
SURVEY_INVITATION = Topic(
    name="survey.invitation.v1",
    key="site_id",
    owner="survey-dispatch",
    consumers=("responses", "scoring"),
    event_types=(
        INVITATION_SENT,
        INVITATION_SUPPRESSED,
        INVITATION_FAILED,
        INVITATION_REMINDED,
        USER_ERASED,
    ),
    description=(
        "What survey-dispatch decided and sent, and users' erasure requests, without any "
        "personal contact point."
    ),
)
SURVEY_RESPONSE = Topic(
    name="survey.response.v1",
    key="site_id",
    owner="responses",
    consumers=("scoring", "survey-dispatch"),  # dispatch: no reminder once answered
    event_types=(RESPONSE_SUBMITTED,),
    retention_ms=400 * DAY_MS,
    description="Submitted answers; free text is internal and never published.",
)
SITE_INDICATORS = Topic(
    name="scoring.site-indicators.v1",
    key="site_id",
    owner="scoring",
    consumers=("publication",),
    event_types=(SITE_INDICATORS_UPDATED,),
    retention_ms=None,
    compacted=True,
    description="The latest indicators of each site; compacted, so one record per site remains.",
)
SCORING_ALERT = Topic(
    name="scoring.alert.v1",
    key="site_id",
    owner="scoring",
    consumers=("operator CRMs",),
    event_types=(DETRACTOR_ALERT,),
    description="Detractor alerts for the CRMs' call-back queues.",
)

CRM_CALLBACK_COMPLETED = Topic(
    name="crm.callback.completed.v1",
    key="site_id",
    owner="operator CRMs",
    consumers=("scoring",),
    event_types=(CALLBACK_COMPLETED,),
    description=(
        "The CRMs report each detractor alert's call-back done, with its outcome (no agent "
        "name); scoring counts the alert handled."
    ),
)

TOPICS: tuple[Topic, ...] = (
    CRM_CONTACT_CLOSED,
    SURVEY_CONTACT,
    SURVEY_INVITATION,
    SURVEY_RESPONSE,
    SITE_INDICATORS,
    SCORING_ALERT,
    CRM_CALLBACK_COMPLETED,
)


def topic_named(name: str) -> Topic:
    for topic in TOPICS:
        if topic.name == name:
            return topic
    raise KeyError(name)


def all_topic_names() -> list[str]:
    """Every topic, DLQs included: what a fresh cluster must have."""
    names = []
    for topic in TOPICS:
        names.append(topic.name)
        names.append(topic.dlq_name)
    return names
