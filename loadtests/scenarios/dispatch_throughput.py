"""survey-dispatch alone: contact-closed events decided and handed to the SMTP sink per second,
and the time from event to hand-off with no delay configured.

Two phases against one running service:
1. paced: a steady rate below capacity, for the event → hand-off latency (p50/p95);
2. burst: a large backlog produced at once, for the sustained decisions and sends per second.
Hand-off time is the invitation's `sent_at` (written right after the SMTP server accepted it);
event time is when the bench produced it. Both clocks are this machine's.

Run twice: against the devstack's maildir sink (`sink_*` figures), whose own cost per message
(parse, re-serialise, maildir write) bounds what any sender can reach, and against a null SMTP
server that accepts and drops (`null_*` figures), which measures survey-dispatch itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts.envelope import CloudEvent
from contracts.events import ContactClosed, SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED
from loadtests.stats import latency_figures
from plumbing.crm_simulator import CrmSimulator
from plumbing.services import start_system
from plumbing.testing import produce

NAME = "dispatch_throughput"
DESCRIPTION = "contact closed → decided and handed to SMTP: per second (burst), p95 latency (paced)"
PACED_SECONDS = 10
RUNS = {  # name: (paced events per second, burst size)
    "sink": (50, 5_000),
    "null": (500, 20_000),
}
RULES = {"delay_minutes": 0, "email_uses_sms_window": False, "fatigue_days": 0}


async def run(ctx: Any) -> dict[str, float]:
    figures: dict[str, float] = {}
    null_smtp = await NullSmtp.start()
    try:
        for name, (rate, burst) in RUNS.items():
            smtp = {"SMTP_URL": f"smtp://127.0.0.1:{null_smtp.port}"} if name == "null" else {}
            figures |= await _measure(ctx, name, rate, burst, smtp)
    finally:
        null_smtp.close()
    return figures


async def _measure(
    ctx: Any, name: str, rate: int, burst: int, env: dict[str, str]
) -> dict[str, float]:
    log_dir = ctx.workdir / name
    log_dir.mkdir(parents=True, exist_ok=True)
    system = await asyncio.to_thread(
        start_system,
        ctx.stack.env(),
        log_dir,
        only=("survey-dispatch",),
        extra_env={
            "DEFAULT_RULES": json.dumps(RULES),
            "SENDER_POLL_SECONDS": "0.02",
            "SEND_CONCURRENCY": "200",
            "SEND_WORKERS": "4",
            "SMTP_CONNECTIONS": "8",
            "DATABASE_POOL_SIZE": "20",
            "LOG_LEVEL": "WARNING",
            **env,
        },
    )
    simulator = CrmSimulator(seed=hash(name) % 1000, email_share=1.0)
    db = await asyncpg.connect(
        ctx.stack.database_url, server_settings={"search_path": "survey_dispatch"}
    )
    try:
        figures = await _paced(ctx, db, simulator, rate, first_user=_first_user(name))
        figures |= await _burst(ctx, db, simulator, burst, first_user=_first_user(name) + 500_000)
        return {f"{name}_{key}": value for key, value in figures.items()}
    finally:
        await db.close()
        await asyncio.to_thread(system.stop)


def _first_user(run_name: str) -> int:
    return list(RUNS).index(run_name) * 1_000_000


class NullSmtp:
    """An SMTP server that says yes to everything and keeps nothing: the sender's own ceiling."""

    def __init__(self, server: asyncio.Server) -> None:
        self.server = server
        self.port = server.sockets[0].getsockname()[1]

    @classmethod
    async def start(cls) -> NullSmtp:
        return cls(await asyncio.start_server(_null_session, "127.0.0.1", 0))

    def close(self) -> None:
        self.server.close()


async def _null_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 null ESMTP\r\n")
    in_data = False
    try:
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    writer.write(b"250 OK\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-null\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                in_data = True
                writer.write(b"354 go on\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()
    finally:
        writer.close()


def _events(simulator: CrmSimulator, count: int, start: int) -> list[CloudEvent[ContactClosed]]:
    """Email contacts of distinct users, so every one of them is invited."""
    events = []
    for number in range(start, start + count):
        contact = simulator.contact(user=number).model_copy(
            update={"preferred_channel": SurveyChannel.EMAIL, "email": f"u{number}@exemple.fr"}
        )
        events.append(simulator.event(contact))
    return events


async def _paced(
    ctx: Any, db: asyncpg.Connection, simulator: CrmSimulator, rate: int, first_user: int
) -> dict[str, float]:
    produced_at: dict[str, float] = {}
    batch = rate // 10
    for tick in range(PACED_SECONDS * 10):  # a batch every 100 ms
        started = time.monotonic()
        events = _events(simulator, batch, start=first_user + tick * batch)
        now = datetime.now(UTC).timestamp()
        produced_at |= {event.data.contact_id: now for event in events}
        await produce(ctx.stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events)
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
    sent = await _wait_sent(db, set(produced_at), timeout=60)
    latencies = [sent[cid] - produced_at[cid] for cid in sent]
    figures = latency_figures(latencies, "paced_event_to_smtp_handoff")
    return {"paced_per_second": rate, **figures}


async def _burst(
    ctx: Any, db: asyncpg.Connection, simulator: CrmSimulator, size: int, first_user: int
) -> dict[str, float]:
    events = _events(simulator, size, start=first_user)
    ids = {event.data.contact_id for event in events}
    started = datetime.now(UTC).timestamp()
    await produce(ctx.stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events)
    produced_in = datetime.now(UTC).timestamp() - started
    sent = await _wait_sent(db, ids, timeout=300)
    decided_last = await db.fetchval(
        "SELECT extract(epoch FROM max(decided_at)) FROM contacts WHERE contact_id = ANY($1)",
        list(ids),
    )
    sent_last = max(sent.values())
    return {
        "burst_events": size,
        "burst_produce_seconds": round(produced_in, 2),
        "burst_decided_per_second": round(size / (float(decided_last) - started), 1),
        "burst_sent_per_second": round(len(sent) / (sent_last - started), 1),
        "burst_sent": len(sent),
    }


async def _wait_sent(db: asyncpg.Connection, ids: set[str], *, timeout: float) -> dict[str, float]:
    """contact id → sent_at (epoch seconds) once every invitation was handed to SMTP."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await db.fetch(
            "SELECT contact_id, extract(epoch FROM sent_at) AS sent FROM invitations "
            "WHERE status = 'sent' AND contact_id = ANY($1::text[])",
            list(ids),
        )
        if len(rows) == len(ids) or time.monotonic() > deadline:
            return {row["contact_id"]: float(row["sent"]) for row in rows}
        await asyncio.sleep(0.5)
