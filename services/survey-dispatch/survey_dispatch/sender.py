"""Sends the due invitations: rows picked with FOR UPDATE SKIP LOCKED, so replicas never collide.

A send and its `invitation sent` outbox row commit together; a crash before the commit re-sends
(at-least-once towards the provider, with a stable Message-ID so mail systems can dedupe).
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from jinja2 import Environment
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import Channel, InvitationFailed, InvitationSent, SurveyChannel
from contracts.topics import INVITATION_FAILED, INVITATION_SENT, SURVEY_INVITATION
from plumbing.outbox import enqueue
from survey_dispatch import domain, repository
from survey_dispatch.channels import (
    Email,
    PermanentFailure,
    SmsChannel,
    SmtpChannel,
    TemporaryFailure,
    message_id_for,
)
from survey_dispatch.settings import DispatchSettings

log = logging.getLogger(__name__)
SOURCE = "/survey-dispatch"


class SendMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sends = Counter(
            "dispatch_sends_total", "Send attempts by channel and result", ["channel", "result"],
            registry=registry,
        )  # fmt: skip
        self.closed_to_sent = Histogram(
            "dispatch_contact_closed_to_sent_seconds", "From contact closed to invitation sent",
            ["channel"], buckets=(1, 5, 30, 60, 300, 600, 1800, 3600, 6 * 3600, 24 * 3600, 72 * 3600),
            registry=registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "dispatch_scheduled_invitations", "Invitations scheduled and not yet sent",
            registry=registry,
        )  # fmt: skip


def backoff(attempt: int) -> timedelta:
    """Exponential from 5 s, capped at 10 minutes, with ±50 % jitter against thundering herds."""
    base = min(5 * 2**attempt, 600)
    return timedelta(seconds=base * random.uniform(0.5, 1.5))


class Sender:
    def __init__(
        self, *, settings: DispatchSettings, pool: asyncpg.Pool, smtp: SmtpChannel,
        sms: SmsChannel, templates: Environment, metrics: SendMetrics,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.pool = pool
        self.smtp = smtp
        self.sms = sms
        self.templates = templates
        self.metrics = metrics

    async def run(self) -> None:
        while True:
            sent = await self.send_due(limit=self.settings.send_concurrency)
            if sent < self.settings.send_concurrency:
                await asyncio.sleep(self.settings.sender_poll_seconds)

    async def send_due(self, *, limit: int) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await repository.lock_due_invitations(conn, now=utc_now(), limit=limit)
            outcomes = await asyncio.gather(*(self._deliver(dict(row)) for row in rows))
            for row, outcome in zip(rows, outcomes, strict=True):
                await self._record(conn, dict(row), outcome)
            self.metrics.queue_depth.set(await repository.scheduled_count(conn))
        return len(rows)

    async def _deliver(self, row: dict[str, Any]) -> Exception | None:
        try:
            if row["survey_channel"] == SurveyChannel.SMS.value:
                await self.sms.send(to=row["address"], text=domain.sms_text(
                    site_name=row["site_name"] or "Service public", link=self.survey_link(row["token"])))  # fmt: skip
            else:
                await self.smtp.send(self.email_for(row))
        except (PermanentFailure, TemporaryFailure) as error:
            return error
        except ValueError as error:  # e.g. a link too long for one SMS segment: never retried
            return PermanentFailure(str(error))
        return None

    async def _record(self, conn: asyncpg.Connection, row: dict[str, Any], outcome: Exception | None) -> None:
        channel = row["survey_channel"]
        if outcome is None:
            await self._record_sent(conn, row)
            self.metrics.sends.labels(channel, "sent").inc()
        elif isinstance(outcome, TemporaryFailure) and row["attempts"] + 1 < self.settings.max_send_attempts:
            await repository.mark_retry(
                conn, invitation_id=row["invitation_id"], send_at=utc_now() + backoff(row["attempts"]),
                error=str(outcome),
            )  # fmt: skip
            self.metrics.sends.labels(channel, "retry").inc()
        else:
            await self._record_failed(conn, row, str(outcome))
            self.metrics.sends.labels(channel, "failed").inc()

    async def _record_sent(self, conn: asyncpg.Connection, row: dict[str, Any]) -> None:
        sent_at = utc_now()
        rules = await self._rules(conn, row)
        expires_at = domain.expiry_time(sent_at, rules)
        await repository.mark_sent(
            conn, invitation_id=row["invitation_id"], sent_at=sent_at, expires_at=expires_at
        )
        self.metrics.closed_to_sent.labels(row["survey_channel"]).observe(
            (sent_at - row["closed_at"]).total_seconds()
        )
        data = InvitationSent(
            invitation_id=row["invitation_id"], contact_id=row["contact_id"], site_id=row["site_id"],
            site_name=row["site_name"], network=row["network"], channel=Channel(row["channel"]),
            motif=row["motif"], profile=row["profile"], request_nature=row["request_nature"],
            survey_channel=SurveyChannel(row["survey_channel"]), user_pseudo_id=row["user_pseudo_id"],
            questionnaire_version=row["questionnaire_version"], token_sha256=row["token_sha256"],
            sent_at=sent_at, expires_at=expires_at,
        )  # fmt: skip
        await self._emit(conn, INVITATION_SENT.type, data, row["site_id"], sent_at)

    async def _record_failed(self, conn: asyncpg.Connection, row: dict[str, Any], error: str) -> None:
        failed_at = utc_now()
        await repository.mark_failed(conn, invitation_id=row["invitation_id"], error=error)
        data = InvitationFailed(
            invitation_id=row["invitation_id"], contact_id=row["contact_id"], site_id=row["site_id"],
            network=row["network"], survey_channel=SurveyChannel(row["survey_channel"]),
            reason=error[:500], failed_at=failed_at,
        )  # fmt: skip
        await self._emit(conn, INVITATION_FAILED.type, data, row["site_id"], failed_at)

    async def _emit(self, conn: asyncpg.Connection, type_: str, data: Any, site_id: str, at: datetime) -> None:
        event = CloudEvent[type(data)](  # type: ignore[misc]
            id=new_event_id(), source=SOURCE, type=type_, time=at, subject=site_id, data=data
        )
        await enqueue(conn, topic=SURVEY_INVITATION.name, key=site_id, event=event)

    async def _rules(self, conn: asyncpg.Connection, row: dict[str, Any]) -> domain.Rules:
        network_rules, site_rules = await repository.rules_for(
            conn, network=row["network"], site_id=row["site_id"]
        )
        return domain.Rules.from_mapping(network_rules, site_rules)

    def survey_link(self, token: str) -> str:
        return f"{self.settings.public_survey_base_url.rstrip('/')}/s/{token}"

    def optout_link(self, token: str) -> str:
        return f"{self.settings.public_optout_base_url.rstrip('/')}/o/{token}"

    def email_for(self, row: dict[str, Any]) -> Email:
        site_name = row["site_name"] or "Service public"
        context = {
            "site_name": site_name,
            "survey_link": self.survey_link(row["token"]),
            "optout_link": self.optout_link(row["token"]),
        }
        domain_part = self.settings.mail_from_address.rsplit("@", 1)[-1]
        return Email(
            to=row["address"],
            sender_name=site_name,
            subject=f"{site_name} : votre avis en une minute",
            text=self.templates.get_template("invitation.txt").render(context),
            html=self.templates.get_template("invitation.html").render(context),
            message_id=message_id_for(row["invitation_id"], domain_part),
            unsubscribe_url=context["optout_link"],
        )
