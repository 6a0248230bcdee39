"""survey-dispatch alone: contact-closed events decided and handed to the SMTP sink per second,
and the time from event to hand-off with no delay configured.

Two phases against one running service:
1. paced: steady rates, for the event → hand-off latency (p50/p95) at each offered rate;
2. burst: a large backlog produced at once, for the sustained decisions and sends per second,
   and the CPU milliseconds each invitation cost in survey-dispatch, PostgreSQL, the broker,
   the SMTP sink's thread, this harness, and the whole machine (both cores, everything on
   them included: on a shared machine, other people's work too).
survey-dispatch runs as one process with its shipped defaults (4 sender loops claiming up to
200 due invitations each, 8 SMTP connections with pipelining, the senders woken by a
notification at each decision's commit); the tables start empty, without statistics.
Hand-off time is the invitation's `sent_at` (written right after the SMTP server accepted it);
event time is when the bench produced it. Both clocks are this machine's.

Run twice: against the devstack's maildir sink (`sink_*` figures: aiosmtpd writing every message
to a maildir, what `make demo` and the tests use), and against a null SMTP server that accepts
and drops (`null_*` figures), which measures survey-dispatch itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import psutil
from aiokafka import AIOKafkaProducer

from contracts.envelope import CloudEvent, encode
from contracts.events import ContactClosed, SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED
from loadtests import cpu
from loadtests.stats import latency_figures
from plumbing.crm_simulator import CrmSimulator
from plumbing.services import start_system

NAME = "dispatch_throughput"
DESCRIPTION = "contact closed → decided and handed to SMTP: per second (burst), p95 latency (paced)"
PACED_SECONDS = 10
RUNS = {  # name: (paced events per second, burst size)
    "sink": ((500, 1000), 20_000),
    "null": ((1000,), 20_000),
}
RULES = {"delay_minutes": 0, "email_uses_sms_window": False, "fatigue_days": 0}
SERVICE_ENV = {  # the shipped defaults for everything else: one process, 4 sender loops,
    # batches of 200, 8 pipelined SMTP connections
    "DEFAULT_RULES": json.dumps(RULES),
    "LOG_LEVEL": "WARNING",
}


async def run(ctx: Any) -> dict[str, float]:
    figures: dict[str, float] = {}
    null_smtp = await NullSmtp.start()
    try:
        for name, (rates, burst) in RUNS.items():
            smtp = {"SMTP_URL": f"smtp://127.0.0.1:{null_smtp.port}"} if name == "null" else {}
            figures |= await _measure(ctx, name, rates, burst, smtp)
    finally:
        null_smtp.close()
    return figures


def _probes(ctx: Any, dispatch_pid: int, with_sink: bool) -> dict[str, cpu.Probe]:
    def child(name: str) -> int:
        return int(
            next(c.pid for c in ctx.stack._children if name in str(c.args[0]).rsplit("/")[-1])
        )

    probes = {
        "dispatch": cpu.process_tree(dispatch_pid),
        "postgres": cpu.process_tree(child("postgres")),
        "kafka": cpu.process_tree(child("tansu")),
    }
    sink = cpu.thread(ctx.stack.smtp_sink.thread_id) if ctx.stack.smtp_sink else None
    if with_sink and sink is not None:
        probes["smtp_sink"] = sink
    own = psutil.Process()

    def harness() -> float:  # this process (producer, polling) without the sink's thread
        times = own.cpu_times()
        return float(times.user + times.system) - (sink() if sink else 0.0)

    probes["bench_harness"] = harness
    probes["machine"] = _machine_busy
    return probes


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


async def _measure(
    ctx: Any, name: str, rates: tuple[int, ...], burst: int, env: dict[str, str]
) -> dict[str, float]:
    log_dir = ctx.workdir / name
    log_dir.mkdir(parents=True, exist_ok=True)
    system = await asyncio.to_thread(
        start_system, ctx.stack.env(), log_dir, only=("survey-dispatch",),
        extra_env={**SERVICE_ENV, **env},
    )  # fmt: skip
    process = system["survey-dispatch"].process
    assert process is not None
    meter = cpu.CpuMeter(_probes(ctx, process.pid, with_sink=name == "sink"))
    simulator = CrmSimulator(seed=hash(name) % 1000, email_share=1.0)
    db = await asyncpg.connect(
        ctx.stack.database_url, server_settings={"search_path": "survey_dispatch"}
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=ctx.stack.kafka_bootstrap_servers, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        figures: dict[str, float] = {}
        first_user = _first_user(name)
        for rate in rates:
            figures |= await _paced(producer, db, simulator, rate, first_user=first_user)
            first_user += rate * PACED_SECONDS
        figures |= await _burst(
            producer, db, simulator, burst, first_user=_first_user(name) + 500_000, meter=meter
        )
        return {f"{name}_{key}": value for key, value in figures.items()}
    finally:
        await producer.stop()
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
                writer.write(b"250-null\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
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


async def _send(producer: AIOKafkaProducer, records: list[tuple[bytes, bytes]]) -> None:
    pending = [
        await producer.send(CRM_CONTACT_CLOSED.name, value, key=key) for key, value in records
    ]
    await asyncio.gather(*pending)


def _records(events: list[CloudEvent[ContactClosed]]) -> list[tuple[bytes, bytes]]:
    return [((event.subject or "k").encode(), encode(event)) for event in events]


async def _paced(
    producer: AIOKafkaProducer, db: asyncpg.Connection, simulator: CrmSimulator, rate: int,
    first_user: int,
) -> dict[str, float]:  # fmt: skip
    """A batch every 100 ms, built ahead of time so the bench's own work does not skew the
    pace; event time is taken just before each batch goes to the broker."""
    batch = rate // 10
    ticks = [
        _records(_events(simulator, batch, start=first_user + tick * batch))
        for tick in range(PACED_SECONDS * 10)
    ]
    ids = [[json.loads(value)["data"]["contact_id"] for _, value in records] for records in ticks]
    produced_at: dict[str, float] = {}
    before = await _sent_count(db)
    next_tick = time.monotonic()
    for records, contact_ids in zip(ticks, ids, strict=True):
        now = datetime.now(UTC).timestamp()
        produced_at |= dict.fromkeys(contact_ids, now)
        await _send(producer, records)
        next_tick += 0.1
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    sent = await _wait_sent(db, set(produced_at), before=before, timeout=60)
    latencies = [sent[cid] - produced_at[cid] for cid in sent]
    prefix = f"paced{rate}"
    return {
        f"{prefix}_per_second": rate,
        **latency_figures(latencies, f"{prefix}_event_to_smtp_handoff"),
        f"{prefix}_unsent": len(produced_at) - len(sent),
    }


async def _burst(
    producer: AIOKafkaProducer, db: asyncpg.Connection, simulator: CrmSimulator, size: int,
    first_user: int, meter: cpu.CpuMeter,
) -> dict[str, float]:  # fmt: skip
    events = _events(simulator, size, start=first_user)
    ids = {event.data.contact_id for event in events}
    records = _records(events)
    before = await _sent_count(db)
    meter.start()
    started = datetime.now(UTC).timestamp()
    await _send(producer, records)
    produced_in = datetime.now(UTC).timestamp() - started
    sent = await _wait_sent(db, ids, before=before, timeout=300)
    cpu_figures = meter.ms_per_item(len(sent), "burst_cpu_ms_per_invitation")
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
        **cpu_figures,
    }


async def _sent_count(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM invitations WHERE status = 'sent'"))


async def _wait_sent(
    db: asyncpg.Connection, ids: set[str], *, before: int, timeout: float
) -> dict[str, float]:
    """contact id → sent_at (epoch seconds) once every invitation was handed to SMTP.

    Polls a cheap count (a lookup of thousands of ids every half second would itself cost
    PostgreSQL a measurable share of the CPU being measured), then reads the ids once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _sent_count(db) >= before + len(ids):
            break
        await asyncio.sleep(0.5)
    rows = await db.fetch(
        "SELECT contact_id, extract(epoch FROM sent_at) AS sent FROM invitations "
        "WHERE status = 'sent' AND contact_id = ANY($1::text[])",
        list(ids),
    )
    return {row["contact_id"]: float(row["sent"]) for row in rows}
