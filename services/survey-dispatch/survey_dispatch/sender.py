"""Sends the due invitations and reminders: rows picked with FOR UPDATE SKIP LOCKED, so several
loops and replicas never collide.

A send and its outbox row commit together; a crash before the commit re-sends (at-least-once
towards the provider, with a stable Message-ID so mail systems can dedupe). A provider whose
circuit is open is not called at all: its rows stay scheduled and spend no attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter as Tally
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import (
    Channel,
    InvitationFailed,
    InvitationReminded,
    InvitationSent,
    SurveyChannel,
)
from contracts.topics import (
    INVITATION_FAILED,
    INVITATION_REMINDED,
    INVITATION_SENT,
    SURVEY_INVITATION,
)
from plumbing.db import Connection
from plumbing.outbox import enqueue_many
from survey_dispatch import domain, repository
from survey_dispatch.breaker import CircuitBreaker, CircuitState
from survey_dispatch.channels import (
    MailComposer,
    PermanentFailure,
    SmsChannel,
    SmtpChannel,
    TemporaryFailure,
)
from survey_dispatch.settings import DispatchSettings

log = logging.getLogger(__name__)
SOURCE = "/survey-dispatch"
# Notified (in the deciding transaction, so delivered at its commit) when invitations are due
# now: the senders of every replica wake at once instead of polling the table.
DUE_CHANNEL = "dispatch_due"
Outbox = list[tuple[str, str, CloudEvent[Any]]]


class SendMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sends = Counter(
            "dispatch_sends_total", "Send attempts by channel and result", ["channel", "result"],
            registry=registry,
        )  # fmt: skip
        self.closed_to_sent = Histogram(
            "dispatch_contact_closed_to_sent_seconds", "From contact closed to invitation sent",
            ["channel"],
            buckets=(0.5, 1, 5, 30, 60, 300, 600, 1800, 3600, 6 * 3600, 24 * 3600, 72 * 3600),
            registry=registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "dispatch_scheduled_invitations", "Invitations scheduled and not yet sent",
            registry=registry,
        )  # fmt: skip
        self.provider_errors = Counter(
            "dispatch_provider_errors_total", "Provider errors by channel and kind",
            ["channel", "kind"], registry=registry,
        )  # fmt: skip
        self.circuit = Gauge(
            "dispatch_provider_circuit_state",
            "Circuit per provider: 0 closed, 0.5 half-open, 1 open",
            ["channel"], registry=registry,
        )  # fmt: skip


def new_breakers(settings: DispatchSettings) -> dict[str, CircuitBreaker]:
    return {
        channel.value: CircuitBreaker(
            failures=settings.breaker_failures, cooldown_seconds=settings.breaker_cooldown_seconds
        )
        for channel in SurveyChannel
    }


def backoff(attempt: int, settings: DispatchSettings) -> timedelta:
    """Exponential, capped, with ±50 % jitter against thundering herds."""
    base = min(settings.retry_base_seconds * 2**attempt, settings.retry_max_seconds)
    return timedelta(seconds=base * random.uniform(0.5, 1.5))


class Sender:
    def __init__(
        self, *, settings: DispatchSettings, pool: asyncpg.Pool, smtp: SmtpChannel,
        sms: SmsChannel, composer: MailComposer, metrics: SendMetrics,
        breakers: dict[str, CircuitBreaker],
    ) -> None:  # fmt: skip
        self.settings = settings
        self.pool = pool
        self.smtp = smtp
        self.sms = sms
        self.composer = composer
        self.metrics = metrics
        self.breakers = breakers
        self._idle: list[asyncio.Event] = []  # sender loops waiting for work
        self._missed = False  # a wake-up came while every loop was busy

    # ----------------------------------------------------------------------- loops

    async def run(self) -> None:
        """One sender loop. A decision's notification wakes one idle loop; a loop that found
        a full batch wakes another before going on, so the loops join in only when there is
        enough work for them. The poll interval covers retries, delayed sends and any missed
        notification."""
        limit = self.settings.send_concurrency
        wake = asyncio.Event()
        while True:
            full = await self.send_due(limit=limit) >= limit
            if full:
                self._wake_one()
            if full or self._missed:
                self._missed = False
                continue
            wake.clear()
            self._idle.append(wake)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.settings.sender_poll_seconds)
            finally:
                if wake in self._idle:
                    self._idle.remove(wake)

    def _wake_one(self) -> None:
        if self._idle:
            self._idle.pop().set()
        else:
            self._missed = True

    async def listen(self) -> None:
        """Wake a sender loop when a decision made invitations due (any replica)."""
        connection = await self.pool.acquire()
        try:
            await connection.add_listener(DUE_CHANNEL, self._on_due)
            await asyncio.Event().wait()  # until cancelled
        finally:
            with contextlib.suppress(Exception):
                await connection.remove_listener(DUE_CHANNEL, self._on_due)
            await self.pool.release(connection)

    def _on_due(self, *_: object) -> None:
        self._wake_one()

    async def run_reminders(self) -> None:
        limit = self.settings.send_concurrency
        while True:
            if await self.remind_due(limit=limit) < limit:
                await asyncio.sleep(max(self.settings.sender_poll_seconds, 1.0))

    async def watch_queue(self) -> None:
        """The queue depth gauge, on its own slow clock: a count is not free on a big table."""
        while True:
            async with self.pool.acquire() as conn:
                self.metrics.queue_depth.set(await repository.scheduled_count(conn))
            for channel, breaker in self.breakers.items():
                self.metrics.circuit.labels(channel).set(breaker.state.value)
            await asyncio.sleep(5.0)

    def _batch_size(self, channel: str, limit: int) -> int:
        """0 while the provider's circuit is open; one row to probe it when half-open."""
        state = self.breakers[channel].state
        self.metrics.circuit.labels(channel).set(state.value)
        return {CircuitState.CLOSED: limit, CircuitState.HALF_OPEN: 1}.get(state, 0)

    # ----------------------------------------------------------------------- invitations

    async def send_due(self, *, limit: int) -> int:
        """Send a batch of due invitations: the channels whose circuit is closed together, in
        one transaction; a half-open channel's single probe on its own."""
        sizes = {channel.value: self._batch_size(channel.value, limit) for channel in SurveyChannel}
        together = [channel for channel, size in sizes.items() if size == limit]
        done = await self._send_batch(together, limit) if together else 0
        for channel, size in sizes.items():
            if 0 < size < limit:
                done += await self._send_batch([channel], size)
        return done

    async def _send_batch(self, channels: list[str], limit: int) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            records = await repository.lock_due_invitations(
                conn, now=utc_now(), channels=channels, limit=limit
            )
            if not records:
                return 0
            rows = [dict(record) for record in records]
            outcomes = await self._deliver_by_channel(rows)
            await self._record(conn, rows, outcomes)
        return len(rows)

    async def _deliver_by_channel(
        self, rows: list[dict[str, Any]], *, reminder: bool = False
    ) -> list[Exception | None]:
        """Each channel's rows to its provider, the channels side by side; outcomes in the
        rows' order."""
        positions: dict[str, list[int]] = {}
        for position, row in enumerate(rows):
            positions.setdefault(row["survey_channel"], []).append(position)
        results = await asyncio.gather(*(
            self._deliver(channel, [rows[i] for i in where], reminder=reminder)
            for channel, where in positions.items()
        ))  # fmt: skip
        outcomes: list[Exception | None] = [None] * len(rows)
        for (channel, where), channel_outcomes in zip(positions.items(), results, strict=True):
            self._observe(channel, channel_outcomes)
            for position, outcome in zip(where, channel_outcomes, strict=True):
                outcomes[position] = outcome
        return outcomes

    async def _deliver(
        self, channel: str, rows: list[dict[str, Any]], *, reminder: bool = False
    ) -> list[Exception | None]:
        """Hand the rows' messages to the channel's provider; None for each accepted one."""
        if channel == SurveyChannel.SMS.value:
            return list(await asyncio.gather(*(self._deliver_sms(row) for row in rows)))
        return await self.smtp.send_many(
            [(row["address"], self.email_for(row, reminder=reminder)) for row in rows]
        )

    async def _deliver_sms(self, row: dict[str, Any]) -> Exception | None:
        try:
            await self.sms.send(to=row["address"], text=self.sms_for(row))
        except (PermanentFailure, TemporaryFailure) as error:
            return error
        except ValueError as error:  # e.g. a link too long for one SMS segment: never retried
            return PermanentFailure(str(error))
        return None

    def _observe(self, channel: str, outcomes: list[Exception | None]) -> None:
        """Feed the provider's circuit: only temporary failures say the provider is down."""
        breaker = self.breakers[channel]
        for outcome in outcomes:
            if outcome is None:
                breaker.record_success()
            elif isinstance(outcome, TemporaryFailure):
                breaker.record_failure()
                self.metrics.provider_errors.labels(channel, "temporary").inc()
            else:
                self.metrics.provider_errors.labels(channel, "permanent").inc()
        self.metrics.circuit.labels(channel).set(breaker.state.value)

    async def _record(
        self, conn: Connection, rows: list[dict[str, Any]], outcomes: list[Exception | None]
    ) -> None:
        sent_at = utc_now()
        sent: list[tuple[str, datetime, datetime, datetime | None]] = []
        events: Outbox = []
        rules: dict[tuple[str, str], domain.Rules] = {}
        results: Tally[tuple[str, str]] = Tally()
        for row, outcome in zip(rows, outcomes, strict=True):
            channel = row["survey_channel"]
            if outcome is None:
                row_rules = await self._rules(conn, row, rules)
                sent.append(self._sent(row, row_rules, sent_at, events))
                results[channel, "sent"] += 1
            elif self._retryable(outcome, row["attempts"]):
                await repository.mark_retry(
                    conn, invitation_id=row["invitation_id"], error=str(outcome),
                    send_at=utc_now() + backoff(row["attempts"], self.settings),
                )  # fmt: skip
                results[channel, "retry"] += 1
            else:
                await repository.mark_failed(
                    conn, invitation_id=row["invitation_id"], error=str(outcome)
                )
                events.append(_failed_event(row, str(outcome)))
                results[channel, "failed"] += 1
        if sent:
            await repository.mark_sent(conn, sent=sent)
        await enqueue_many(conn, events)
        for (channel, result), count in results.items():
            self.metrics.sends.labels(channel, result).inc(count)

    def _retryable(self, outcome: Exception, attempts: int) -> bool:
        return (
            isinstance(outcome, TemporaryFailure) and attempts + 1 < self.settings.max_send_attempts
        )

    def _sent(
        self, row: dict[str, Any], rules: domain.Rules, sent_at: datetime, events: Outbox
    ) -> tuple[str, datetime, datetime, datetime | None]:
        channel = SurveyChannel(row["survey_channel"])
        expires_at = domain.expiry_time(sent_at, rules)
        self.metrics.closed_to_sent.labels(channel.value).observe(
            (sent_at - row["closed_at"]).total_seconds()
        )
        data = InvitationSent(
            invitation_id=row["invitation_id"], contact_id=row["contact_id"],
            site_id=row["site_id"], site_name=row["site_name"], network=row["network"],
            channel=Channel(row["channel"]), motif=row["motif"], profile=row["profile"],
            request_nature=row["request_nature"], survey_channel=channel,
            user_pseudo_id=row["user_pseudo_id"],
            questionnaire_version=row["questionnaire_version"], token_sha256=row["token_sha256"],
            sent_at=sent_at, expires_at=expires_at,
        )  # fmt: skip
        events.append(_event(INVITATION_SENT.type, data, row["site_id"], sent_at))
        remind_at = domain.reminder_time(sent_at, channel, rules)
        return row["invitation_id"], sent_at, expires_at, remind_at

    async def _rules(
        self,
        conn: Connection,
        row: dict[str, Any],
        cache: dict[tuple[str, str], domain.Rules],
    ) -> domain.Rules:
        key = (row["network"], row["site_id"])
        if key not in cache:
            network_rules, site_rules = await repository.rules_for(
                conn, network=row["network"], site_id=row["site_id"]
            )
            cache[key] = domain.Rules.from_mapping(network_rules, site_rules)
        return cache[key]

    # ----------------------------------------------------------------------- reminders

    async def remind_due(self, *, limit: int) -> int:
        done = 0
        for channel in SurveyChannel:
            batch = self._batch_size(channel.value, limit)
            if batch:
                done += await self._remind_channel(channel.value, batch)
        return done

    async def _remind_channel(self, channel: str, limit: int) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            records = await repository.lock_due_reminders(
                conn, now=utc_now(), channel=channel, limit=limit
            )
            rows = [dict(record) for record in records]
            outcomes = await self._deliver(channel, rows, reminder=True)
            self._observe(channel, outcomes)
            events: Outbox = []
            for row, outcome in zip(rows, outcomes, strict=True):
                await self._record_reminder(conn, row, outcome, events)
            await enqueue_many(conn, events)
        return len(rows)

    async def _record_reminder(
        self, conn: Connection, row: dict[str, Any], outcome: Exception | None,
        events: Outbox,
    ) -> None:  # fmt: skip
        channel = row["survey_channel"]
        now = utc_now()
        if outcome is None:
            await repository.mark_reminded(conn, invitation_id=row["invitation_id"], at=now)
            data = InvitationReminded(
                invitation_id=row["invitation_id"], site_id=row["site_id"], network=row["network"],
                survey_channel=SurveyChannel(channel), reminded_at=now,
            )  # fmt: skip
            events.append(_event(INVITATION_REMINDED.type, data, row["site_id"], now))
            self.metrics.sends.labels(channel, "reminded").inc()
            return
        retry_at: datetime | None = None
        if self._retryable(outcome, row["reminder_attempts"]):
            retry_at = now + backoff(row["reminder_attempts"], self.settings)
            retry_at = retry_at if retry_at < row["expires_at"] else None  # none after expiry
        await repository.postpone_reminder(
            conn, invitation_id=row["invitation_id"], remind_at=retry_at, error=str(outcome)
        )
        self.metrics.sends.labels(
            channel, "reminder_retry" if retry_at else "reminder_failed"
        ).inc()

    # ----------------------------------------------------------------------- messages

    def survey_link(self, token: str) -> str:
        return self.composer.survey_link(token)

    def sms_for(self, row: dict[str, Any]) -> str:
        return domain.sms_text(
            site_name=row["site_name"] or "Service public", link=self.survey_link(row["token"])
        )

    def email_for(self, row: dict[str, Any], *, reminder: bool = False) -> bytes:
        return self.composer.invitation(
            to=row["address"], site_name=row["site_name"] or "Service public",
            token=row["token"], invitation_id=row["invitation_id"], reminder=reminder,
        )  # fmt: skip


def _failed_event(row: dict[str, Any], error: str) -> tuple[str, str, CloudEvent[Any]]:
    failed_at = utc_now()
    data = InvitationFailed(
        invitation_id=row["invitation_id"], contact_id=row["contact_id"], site_id=row["site_id"],
        network=row["network"], survey_channel=SurveyChannel(row["survey_channel"]),
        reason=error[:500], failed_at=failed_at,
    )  # fmt: skip
    return _event(INVITATION_FAILED.type, data, row["site_id"], failed_at)


def _event(type_: str, data: Any, site_id: str, at: datetime) -> tuple[str, str, CloudEvent[Any]]:
    event = CloudEvent[type(data)](  # type: ignore[misc,operator]
        id=new_event_id(), source=SOURCE, type=type_, time=at, subject=site_id, data=data
    )
    return SURVEY_INVITATION.name, site_id, event
