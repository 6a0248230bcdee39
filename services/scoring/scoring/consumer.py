"""Folds a batch of events into the tallies, in the transaction that records them in the inbox."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts.envelope import CloudEvent, new_event_id
from contracts.events import ContactSeen, DetractorAlert, ResponseSubmitted, UserErased
from contracts.sites import site_timezone
from contracts.topics import (
    CONTACT_SEEN,
    DETRACTOR_ALERT,
    INVITATION_REMINDED,
    INVITATION_SENT,
    RESPONSE_SUBMITTED,
    SCORING_ALERT,
    USER_ERASED,
)
from plumbing.db import Connection
from plumbing.outbox import enqueue_many
from plumbing.tracing import current_traceparent
from scoring import domain, repository, tagging
from scoring.settings import ScoringSettings

SOURCE = "/scoring"
log = logging.getLogger(__name__)


Cohort = tuple[str, date, str, str]
"""site, day (on the site's clock), channel, motif."""


@dataclass
class Collected:
    """One batch of events, collected (`ScoringHandler.collect`), not yet stored."""

    responses: list[repository.TalliedResponse] = field(default_factory=list)
    invitations: Counter[Cohort] = field(default_factory=Counter)
    cohort_answers: Counter[Cohort] = field(default_factory=Counter)  # answers by cohort
    cohort_open_until: dict[Cohort, datetime] = field(default_factory=dict)
    contacts: list[tuple[Any, ...]] = field(default_factory=list)
    sites: set[tuple[str, str, str | None]] = field(default_factory=set)
    pending_since: dict[str, datetime] = field(default_factory=dict)
    alerts: list[DetractorAlert] = field(default_factory=list)
    verbatims: list[tuple[Any, ...]] = field(default_factory=list)
    erasures: list[UserErased] = field(default_factory=list)
    facts: list[tuple[Any, ...]] = field(default_factory=list)  # issue #15
    sent: list[tuple[Any, ...]] = field(default_factory=list)
    reminded: list[tuple[Any, ...]] = field(default_factory=list)
    zones: dict[str, tuple[str, bool]] = field(default_factory=dict)  # site_zones


CountKey = tuple[str, str]
"""What makes an event count once, whatever its event id: its type and its natural id."""


def count_key(event: CloudEvent[Any]) -> CountKey | None:
    """A response counts by its `response_id`, an invitation sent by its `invitation_id`; the
    other events (contacts, reminders, erasures) are stored by their own keys, idempotently."""
    if event.type == RESPONSE_SUBMITTED.type:
        return (event.type, event.data.response_id)
    if event.type == INVITATION_SENT.type:
        return (event.type, event.data.invitation_id)
    return None


def first_counted(events: list[CloudEvent[Any]], counted: set[CountKey]) -> list[CloudEvent[Any]]:
    """The events without those counted already: a response or an invitation that comes again
    (redelivered, or sent again under a new event id) counts once, the first time.
    `counted`: the keys counted before the batch; the batch's are added to it."""
    first = []
    for event in events:
        key = count_key(event)
        if key is not None:
            if key in counted:
                continue
            counted.add(key)
        first.append(event)
    return first


class ScoringHandler:
    def __init__(
        self,
        settings: ScoringSettings,
        rule: domain.DetractorRule | None = None,
        *,
        raise_alerts: bool = True,
        defer_erasures: bool = False,
        rules: Callable[[str], domain.DetractorRule] | None = None,
    ) -> None:
        self.zone = ZoneInfo(settings.reporting_timezone)
        self.zones: dict[tuple[str | None, str, str], ZoneInfo] = {}  # (told, site, network)
        self.rule = rule or domain.DetractorRule()
        # Per network (admin API, scoring.callbacks.RuleBook); `rule` for every network if None.
        self.rules = rules
        self.raise_alerts = raise_alerts  # a rebuild recounts; it must not call users back twice
        # A rebuild reads the topics side by side, not in their live order: it applies the
        # erasures once everything is folded (`erase_deferred`), as the live tables had them.
        self.defer_erasures = defer_erasures
        self.deferred_erasures: list[UserErased] = []
        # Positions of the tally cells in the count vectors, as committed (never change).
        self.cell_positions: dict[tuple[str, str], int] = {}

    def day_of(self, moment: datetime, site: Any = None) -> date:
        """The moment's day on the clock of the site an event is about (`zone_of`); on the
        reporting zone without an event."""
        return moment.astimezone(self.zone if site is None else self.zone_of(site)).date()

    def zone_of(self, data: Any) -> ZoneInfo:
        """The site's clock an event tells (`site_timezone`), else the shared default for its
        site (contracts.sites: the overseas regions), for events older than the field."""
        key = (data.site_timezone, data.site_id, data.network)
        zone = self.zones.get(key)
        if zone is None:
            name = site_timezone(data.site_timezone, site_id=data.site_id, network=data.network,
                                 metropolitan=self.zone.key)  # fmt: skip
            zone = self.zones[key] = ZoneInfo(name)
        return zone

    def site_zones(self, events: list[CloudEvent[Any]]) -> dict[str, tuple[str, bool]]:
        """Site -> (its clock, told by an event rather than defaulted), for the sites table."""
        zones: dict[str, tuple[str, bool]] = {}
        seen: set[tuple[str, str | None]] = set()  # a batch has few sites: look each up once
        for event in events:
            data = event.data
            if not hasattr(data, "site_timezone"):  # an erasure: about no site
                continue
            told: str | None = data.site_timezone
            if (data.site_id, told) in seen:
                continue
            seen.add((data.site_id, told))
            if told or data.site_id not in zones:
                zones[data.site_id] = (self.zone_of(data).key, told is not None)
        return zones

    async def __call__(
        self, conn: Connection, topic: str, events: list[CloudEvent[Any]]
    ) -> set[str]:
        """Store the batch, each response and invitation once (no inbox: `claim`); return the
        ids of the events counted already, for the consumer's metrics."""
        first = first_counted(events, set())
        batch = self.collect(first)
        if counted_before := await self.claim(conn, batch):  # redelivered after a crash, re-sent
            first = first_counted(first, counted_before)
            batch = self.collect(first)
        await self.write(conn, batch, claimed=True)
        return {event.id for event in events} - {event.id for event in first}

    @staticmethod
    async def claim(conn: Connection, batch: Collected) -> set[CountKey]:
        """Store the batch's response and invitation facts, once per response or invitation id:
        they are the record that it was counted, in the transaction that counts it. An insert
        on the primary key waits for a concurrent transaction claiming the same id (a partition
        moving to another replica mid-batch), so only one counts it. Returns the keys stored
        before: the batch must be collected again without them."""
        stored = await repository.add_response_facts(conn, rows=batch.facts)
        sent = await repository.add_invitation_facts(conn, sent=batch.sent, reminded=[])
        before = {(RESPONSE_SUBMITTED.type, row[0]) for row in batch.facts if row[0] not in stored}
        return before | {(INVITATION_SENT.type, row[0]) for row in batch.sent if row[0] not in sent}

    def collect(self, events: list[CloudEvent[Any]]) -> Collected:
        """The batch's rows and increments, in memory (no I/O): what `write` stores. The rebuild
        collects batch after batch the same way and stores them once (scoring.rebuild)."""
        batch = Collected()
        responses, facts, verbatims = batch.responses, batch.facts, batch.verbatims
        alerts, sites, pending_since = batch.alerts, batch.sites, batch.pending_since
        cohort_answers = batch.cohort_answers
        for event in events:
            data = event.data
            if event.type == RESPONSE_SUBMITTED.type:
                day = self.day_of(data.answered_at, data)
                responses.append(tallied := _tallied(data, day))
                facts.append(_fact_row(data, tallied))
                if (verbatim := self._verbatim_row(data, day)) is not None:
                    verbatims.append(verbatim)
                if self.raise_alerts and (alert := self._alert_for(data)) is not None:
                    alerts.append(alert)
                sites.add((data.site_id, data.network, None))
                _keep_oldest(pending_since, data.site_id, data.answered_at)
                # The answer's cohort: its invitation's send day (older events: its answer day).
                cohort = self.day_of(data.invited_at, data) if data.invited_at else day
                cohort_answers[(data.site_id, cohort, str(data.channel), data.motif)] += 1
            elif event.type == INVITATION_SENT.type:
                cohort_key = (data.site_id, self.day_of(data.sent_at, data), data.channel.value,
                              data.motif)  # fmt: skip
                batch.invitations[cohort_key] += 1
                batch.sent.append((data.invitation_id, data.site_id, data.survey_channel.value,
                                   cohort_key[1], data.sent_at))  # fmt: skip
                _keep_latest(batch.cohort_open_until, cohort_key, data.expires_at)
                sites.add((data.site_id, data.network, data.site_name))
            elif event.type == INVITATION_REMINDED.type:
                batch.reminded.append((data.invitation_id, data.site_id, data.reminded_at))
            elif event.type == CONTACT_SEEN.type:
                batch.contacts.append(_contact_row(data))
                sites.add((data.site_id, data.network, None))
            elif event.type == USER_ERASED.type:
                batch.erasures.append(data)
        batch.zones = self.site_zones(events)
        return batch

    async def write(self, conn: Connection, batch: Collected, *, claimed: bool = False) -> None:
        """Store a collected batch, in the caller's transaction; `claimed`: its facts are
        stored already (`claim`)."""
        await repository.add_tallies(conn, responses=batch.responses, positions=self.cell_positions)
        await self._raise_alerts(conn, batch.alerts)
        await repository.add_invitations(
            conn, increments=dict(batch.invitations), answered=dict(batch.cohort_answers),
            open_until=batch.cohort_open_until,
        )  # fmt: skip
        await self.write_rows(conn, batch, facts=not claimed)
        batch_trace = current_traceparent()  # the batch's span: the sites' publish continues it
        await repository.mark_sites_dirty(
            conn, sites=batch.sites, pending_since=batch.pending_since,
            traceparent=batch_trace[0] if batch_trace else None,
        )  # fmt: skip
        # The sites' clocks, once their rows exist.
        await repository.set_site_timezones(conn, zones=batch.zones)
        if self.defer_erasures:
            self.deferred_erasures += batch.erasures
        else:
            await self._erase(conn, batch.erasures)

    @staticmethod
    async def write_rows(conn: Connection, batch: Collected, *, facts: bool = True) -> None:
        """The batch's rows, one per fact (contacts, verbatims, responses' and invitations'
        facts): a contact and the rows it completes (team, pseudonym) meet in any order."""
        if batch.contacts:
            await repository.add_contacts(conn, rows=batch.contacts)
        if batch.verbatims:
            await repository.add_verbatims(conn, rows=batch.verbatims)
        if facts and batch.facts:
            await repository.add_response_facts(conn, rows=batch.facts)
        sent = batch.sent if facts else []
        if sent or batch.reminded:
            await repository.add_invitation_facts(conn, sent=sent, reminded=batch.reminded)

    async def erase_deferred(self, conn: Connection) -> None:
        await self._erase(conn, self.deferred_erasures)
        self.deferred_erasures = []

    async def _erase(self, conn: Connection, erasures: list[UserErased]) -> None:
        """After the batch's own rows: an erasure also covers what came in the same batch."""
        for erasure in erasures:
            erased = await repository.erase_user(conn, user_pseudo_id=erasure.user_pseudo_id)
            # Counts and the erasure id only: never the pseudonym.
            log.info("user erased", extra={"erasure_id": erasure.erasure_id, **erased})

    def _verbatim_row(self, response: ResponseSubmitted, day: date) -> tuple[Any, ...] | None:
        text = str(response.answers.get("suggestion", "")).strip()
        if not text:
            return None
        items = ("satisfaction_globale", "recommandation", "effort")
        scores = [response.answers.get(item) for item in items]
        return (response.response_id, response.site_id, day,
                response.channel.value, response.motif, text,
                *[score if isinstance(score, int) else None for score in scores],
                # Issue #17: tagged in the batch, on the text as stored (redacted upstream).
                response.contact_id, *tagging.verbatim_tags(text))  # fmt: skip

    def _alert_for(self, response: ResponseSubmitted) -> DetractorAlert | None:
        if not domain.consents_to_call_back(response.answers):
            return None  # counted in every figure, but nobody calls them back
        rule = self.rules(response.network) if self.rules is not None else self.rule
        reasons = domain.detractor_reasons(response.answers, rule)
        if not reasons:
            return None
        # Every field comes from the validated response, and the answers kept are ratings and
        # choice codes (domain.alert_answers): no second validation per alert.
        return DetractorAlert.model_construct(
            alert_id=f"alr-{uuid.uuid4().hex[:20]}", invitation_id=response.invitation_id,
            contact_id=response.contact_id, site_id=response.site_id, network=response.network,
            reasons=reasons, answers=domain.alert_answers(response.answers),
            raised_at=response.answered_at,
        )  # fmt: skip

    async def _raise_alerts(self, conn: Connection, alerts: list[DetractorAlert]) -> None:
        """One insert and one outbox write per batch; the unique invitation id makes a
        redelivered or resubmitted response raise no second alert."""
        first: dict[str, DetractorAlert] = {}
        for alert in alerts:
            first.setdefault(alert.invitation_id, alert)
        new = await repository.save_alerts(conn, alerts=list(first.values()))
        await enqueue_many(
            conn,
            [
                (SCORING_ALERT.name, alert.site_id, _alert_event(alert))
                for alert in first.values()
                if alert.invitation_id in new
            ],
        )


def _contact_row(contact: ContactSeen) -> tuple[Any, ...]:
    # The keyed pseudonym survey-dispatch computed: the only user identifier scoring holds.
    return (contact.contact_id, contact.site_id, contact.network, contact.user_pseudo_id,
            contact.channel.value, contact.motif, contact.closed_at, contact.team)  # fmt: skip


def _fact_row(response: ResponseSubmitted, tallied: repository.TalliedResponse) -> tuple[Any, ...]:
    """The response's row for the team, survey-channel and own-answer views (migration 0200):
    its tally cells (ratings and choice codes, never free text) and the ids that join it."""
    site, day, channel, motif, nature, profile, cells = tallied
    return (response.response_id, response.invitation_id, response.contact_id, site, day,
            response.answered_at, channel, motif, nature, profile, cells)  # fmt: skip


def _tallied(response: ResponseSubmitted, day: date) -> repository.TalliedResponse:
    """The response's tally key and its cells (domain.tally_rows)."""
    cells = domain.tally_cells(response.answers, version=response.questionnaire_version)
    nature = response.request_nature
    # str() of a StrEnum member is its value, without the enum's slow `.value` property.
    return (response.site_id, day.isoformat(), str(response.channel), response.motif,
            str(nature) if nature is not None else "", response.profile or "", cells)  # fmt: skip


def _alert_event(alert: DetractorAlert) -> CloudEvent[DetractorAlert]:
    return CloudEvent[DetractorAlert].model_construct(
        id=new_event_id(), source=SOURCE, type=DETRACTOR_ALERT.type, time=alert.raised_at,
        subject=alert.site_id, data=alert,
    )  # fmt: skip


def _keep_latest(
    latest: dict[tuple[str, date, str, str], datetime],
    cohort: tuple[str, date, str, str],
    moment: datetime,
) -> None:
    """A cohort is open until its last link expires."""
    if cohort not in latest or moment > latest[cohort]:
        latest[cohort] = moment


def _keep_oldest(oldest: dict[str, datetime], site_id: str, moment: datetime) -> None:
    if site_id not in oldest or moment < oldest[site_id]:
        oldest[site_id] = moment
