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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import ValidationError

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

    def on_due(self, *_: object) -> None:
        """A decision made invitations due (any replica; `DUE_CHANNEL`, through the runtime's
        re-opening listener), or that listener just (re)opened: wake a sender loop."""
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
                done += await self._send_batch([channel], size, probe=True)
        return done

    async def _send_batch(self, channels: list[str], limit: int, *, probe: bool = False) -> int:
        """Everything a send needs (rules, message, event) is built and checked for each row
        before anything is handed to a provider: a row that cannot be prepared fails alone,
        and nothing that could fail is left for after a delivery, so a mail handed over is
        recorded as sent once."""
        async with self.pool.acquire() as conn, conn.transaction():
            records = await repository.lock_due_invitations(
                conn, now=utc_now(), channels=channels, limit=limit, probe=probe
            )
            if not records:
                return 0
            rows = [dict(record) for record in records]
            rules: dict[tuple[str, str], domain.Rules | Exception] = {}
            prepared = [await self._prepare(conn, row, rules) for row in rows]
            ready = [i for i, item in enumerate(prepared) if isinstance(item, _Prepared)]
            outcomes: list[Exception | None] = [
                item if isinstance(item, Exception) else None for item in prepared
            ]
            delivered = await self._deliver_by_channel(
                [rows[i] for i in ready], [cast(_Prepared, prepared[i]).message for i in ready]
            )
            for position, outcome in zip(ready, delivered, strict=True):
                outcomes[position] = outcome
            await self._record(conn, rows, outcomes, prepared)
        return len(rows)

    async def _prepare(
        self, conn: Connection, row: dict[str, Any],
        rules_cache: dict[tuple[str, str], domain.Rules | Exception] | None, *,
        reminder: bool = False,
    ) -> _Prepared | Exception:  # fmt: skip
        """The row's message and `invitation sent` event, or why it cannot go."""
        if not row["address"] or not row["token"]:  # purged meanwhile: nobody to write to
            return Unprepared("coordonnées effacées", retry=False)
        rules = domain.Rules()
        if rules_cache is not None:
            found = await self._rules(conn, row, rules_cache)
            if isinstance(found, Exception):  # stored rules that no longer combine
                return Unprepared(f"règles invalides pour ce site : {found}", retry=True)
            rules = found
        try:
            remaining = (
                row["expires_at"] - utc_now() if reminder else timedelta(days=rules.expiry_days)
            )
            message = self._message(
                row, reminder=reminder, validity=domain.link_validity(remaining, reminder=reminder)
            )
        except ValueError as error:  # a header that could not be made safe, a too long SMS
            return Unprepared(f"message impossible à composer : {error}", retry=False)
        if reminder:
            return _Prepared(message, rules, None)
        try:
            event = self._sent_event(row, rules)
        except ValidationError as error:
            fields = ", ".join(sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]}))
            return Unprepared(f"invitation invalide ({fields})", retry=False)
        return _Prepared(message, rules, event)

    def _message(self, row: dict[str, Any], *, reminder: bool, validity: str) -> bytes | str:
        if row["survey_channel"] == SurveyChannel.SMS.value:
            return self.sms_for(row)
        return self.email_for(row, reminder=reminder, validity=validity)

    async def _deliver_by_channel(
        self, rows: list[dict[str, Any]], messages: list[bytes | str]
    ) -> list[Exception | None]:
        """Each channel's rows to its provider, the channels side by side; outcomes in the
        rows' order."""
        positions: dict[str, list[int]] = {}
        for position, row in enumerate(rows):
            positions.setdefault(row["survey_channel"], []).append(position)
        results = await asyncio.gather(*(
            self._deliver(channel, [rows[i] for i in where], [messages[i] for i in where])
            for channel, where in positions.items()
        ))  # fmt: skip
        outcomes: list[Exception | None] = [None] * len(rows)
        for (channel, where), channel_outcomes in zip(positions.items(), results, strict=True):
            self._observe(channel, channel_outcomes)
            for position, outcome in zip(where, channel_outcomes, strict=True):
                outcomes[position] = outcome
        return outcomes

    async def _deliver(
        self, channel: str, rows: list[dict[str, Any]], messages: list[bytes | str]
    ) -> list[Exception | None]:
        """Hand the rows' prepared messages to the channel's provider; None for each accepted
        one."""
        if channel == SurveyChannel.SMS.value:
            sends = [
                self._deliver_sms(row["address"], str(text))
                for row, text in zip(rows, messages, strict=True)
            ]
            return list(await asyncio.gather(*sends))
        return await self.smtp.send_many([
            (row["address"], cast(bytes, mail)) for row, mail in zip(rows, messages, strict=True)
        ])  # fmt: skip

    async def _deliver_sms(self, to: str, text: str) -> Exception | None:
        try:
            await self.sms.send(to=to, text=text)
        except (PermanentFailure, TemporaryFailure) as error:
            return error
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
        self, conn: Connection, rows: list[dict[str, Any]], outcomes: list[Exception | None],
        prepared: list[_Prepared | Exception],
    ) -> None:  # fmt: skip
        """The sent rows first, with values computed from what was prepared (nothing there can
        fail but the database); then each other row in a savepoint of its own, so that a
        failure to record one of them never undoes the record of a mail handed over."""
        sent_at = utc_now()
        sent: list[tuple[str, datetime, datetime, datetime | None]] = []
        events: Outbox = []
        results: Tally[tuple[str, str]] = Tally()
        for row, outcome, item in zip(rows, outcomes, prepared, strict=True):
            if outcome is None and isinstance(item, _Prepared):
                sent.append(self._sent(row, item, sent_at, events))
                results[row["survey_channel"], "sent"] += 1
        if sent:
            await repository.mark_sent(conn, sent=sent)
        await enqueue_many(conn, events)
        for row, outcome in zip(rows, outcomes, strict=True):
            if outcome is None:
                continue
            try:
                async with conn.transaction():  # a savepoint
                    results[
                        row["survey_channel"], await self._record_failure(conn, row, outcome)
                    ] += 1
            except (asyncpg.PostgresError, ValueError, TypeError):
                # Not delivered: the row stays due and is tried again; its address is not logged.
                log.exception("could not record a failed send", extra={
                    "invitation_id": row["invitation_id"]
                })  # fmt: skip
        for (channel, result), count in results.items():
            self.metrics.sends.labels(channel, result).inc(count)

    async def _record_failure(
        self, conn: Connection, row: dict[str, Any], outcome: Exception
    ) -> str:
        reason = failure_reason(outcome)
        if self._retryable(outcome, row["attempts"]):
            await repository.mark_retry(
                conn, invitation_id=row["invitation_id"], error=reason,
                retry_at=utc_now() + backoff(row["attempts"], self.settings),
            )  # fmt: skip
            return "retry"
        await repository.mark_failed(conn, invitation_id=row["invitation_id"], error=reason)
        failed = _failed_event(row, reason)
        if failed is not None:
            await enqueue_many(conn, [failed])
        return "failed"

    def _retryable(self, outcome: Exception, attempts: int) -> bool:
        retryable = isinstance(outcome, TemporaryFailure) or (
            isinstance(outcome, Unprepared) and outcome.retry
        )
        return retryable and attempts + 1 < self.settings.max_send_attempts

    def _sent_event(self, row: dict[str, Any], rules: domain.Rules) -> InvitationSent:
        """The event as it will be sent, validated now; only its times change at the send."""
        provisional = utc_now()
        return InvitationSent(
            invitation_id=row["invitation_id"], contact_id=row["contact_id"],
            site_id=row["site_id"], site_name=row["site_name"], network=row["network"],
            channel=Channel(row["channel"]), motif=row["motif"], profile=row["profile"],
            request_nature=row["request_nature"],
            survey_channel=SurveyChannel(row["survey_channel"]),
            user_pseudo_id=row["user_pseudo_id"],
            questionnaire_version=row["questionnaire_version"], token_sha256=row["token_sha256"],
            sent_at=provisional, expires_at=domain.expiry_time(provisional, rules),
            site_timezone=rules.timezone,
        )  # fmt: skip

    def _sent(
        self, row: dict[str, Any], item: _Prepared, sent_at: datetime, events: Outbox
    ) -> tuple[str, datetime, datetime, datetime | None]:
        assert item.event is not None
        channel = item.event.survey_channel
        expires_at = domain.expiry_time(sent_at, item.rules)
        try:
            remind_at = domain.reminder_time(sent_at, channel, item.rules)
        except ValueError:  # never with checked rules; a reminder is a courtesy anyway
            remind_at = None
        self.metrics.closed_to_sent.labels(channel.value).observe(
            (sent_at - row["closed_at"]).total_seconds()
        )
        data = item.event.model_copy(update={"sent_at": sent_at, "expires_at": expires_at})
        events.append(_event(INVITATION_SENT.type, data, row["site_id"], sent_at, row))
        return row["invitation_id"], sent_at, expires_at, remind_at

    async def _rules(
        self, conn: Connection, row: dict[str, Any],
        cache: dict[tuple[str, str], domain.Rules | Exception],
    ) -> domain.Rules | Exception:  # fmt: skip
        key = (row["network"], row["site_id"])
        if key not in cache:
            network_rules, site_rules = await repository.rules_for(
                conn, network=row["network"], site_id=row["site_id"]
            )
            try:
                cache[key] = domain.effective_rules(
                    network_rules, site_rules, network=row["network"], site_id=row["site_id"]
                )
            except (ValueError, TypeError) as error:
                cache[key] = error
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
            prepared = [await self._prepare(conn, row, None, reminder=True) for row in rows]
            ready = [i for i, item in enumerate(prepared) if isinstance(item, _Prepared)]
            outcomes: list[Exception | None] = [
                item if isinstance(item, Exception) else None for item in prepared
            ]
            delivered = await self._deliver(
                channel, [rows[i] for i in ready],
                [cast(_Prepared, prepared[i]).message for i in ready],
            )  # fmt: skip
            self._observe(channel, delivered)
            for position, outcome in zip(ready, delivered, strict=True):
                outcomes[position] = outcome
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
            events.append(_event(INVITATION_REMINDED.type, data, row["site_id"], now, row))
            self.metrics.sends.labels(channel, "reminded").inc()
            return
        retry_at: datetime | None = None
        if self._retryable(outcome, row["reminder_attempts"]):
            retry_at = now + backoff(row["reminder_attempts"], self.settings)
            retry_at = retry_at if retry_at < row["expires_at"] else None  # none after expiry
        await repository.postpone_reminder(
            conn, invitation_id=row["invitation_id"], remind_at=retry_at,
            error=failure_reason(outcome),
        )  # fmt: skip
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

    def email_for(
        self, row: dict[str, Any], *, reminder: bool = False, validity: str | None = None
    ) -> bytes:
        return self.composer.invitation(
            to=row["address"], site_name=row["site_name"] or "Service public",
            token=row["token"], invitation_id=row["invitation_id"], reminder=reminder,
            validity=validity,
        )  # fmt: skip


class Unprepared(Exception):
    """A row that could not be made ready to send (its rules, its message, its event): it
    fails alone, before any delivery. Rules may be repaired, so those are retried."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


@dataclass(frozen=True)
class _Prepared:
    message: bytes | str  # the e-mail as bytes, the SMS text
    rules: domain.Rules
    event: InvitationSent | None  # None for a reminder


def failure_reason(outcome: Exception) -> str:
    """What is kept and published of a failure: codes and our own words, never an address."""
    return domain.scrubbed(str(outcome)) or type(outcome).__name__


def _failed_event(row: dict[str, Any], reason: str) -> tuple[str, str, CloudEvent[Any]] | None:
    failed_at = utc_now()
    try:
        data = InvitationFailed(
            invitation_id=row["invitation_id"], contact_id=row["contact_id"],
            site_id=row["site_id"], network=row["network"],
            survey_channel=SurveyChannel(row["survey_channel"]), reason=reason[:500],
            failed_at=failed_at,
        )  # fmt: skip
    except ValidationError:  # a row a contract now refuses: failed, without an event
        log.warning(
            "invitation failed event not valid", extra={"invitation_id": row["invitation_id"]}
        )
        return None
    return _event(INVITATION_FAILED.type, data, row["site_id"], failed_at, row)


def _event(
    type_: str, data: Any, site_id: str, at: datetime, row: dict[str, Any] | None = None
) -> tuple[str, str, CloudEvent[Any]]:
    """The event; `row`: its invitation, whose trace (the contact's) the event continues."""
    trace = (
        {"traceparent": row.get("traceparent"), "tracestate": row.get("tracestate")}
        if (row is not None and row.get("traceparent"))
        else {}
    )
    event = CloudEvent[type(data)](  # type: ignore[misc,operator]
        id=new_event_id(),
        source=SOURCE,
        type=type_,
        time=at,
        subject=site_id,
        data=data,
        **trace,
    )
    return SURVEY_INVITATION.name, site_id, event
