"""A CRM's call-back queue fed by `scoring.alert.v1`: a runnable example.

    pip install 'enquetes-contracts[kafka]'        # or, in this repository: uv run
    python examples/callback_queue.py consume --bootstrap 127.0.0.1:9092 --db callbacks.sqlite3
    python examples/callback_queue.py list --db callbacks.sqlite3
    python examples/callback_queue.py done ALERT_ID --outcome rappele_resolu --team accueil-75 \
        --bootstrap 127.0.0.1:9092 --db callbacks.sqlite3

`consume` reads the detractor alerts and stores each one, once, in a local SQLite queue, then
prints what an agent would call back. The read position of each partition is stored in the same
SQLite transaction as the alerts it brought: a crash at any instant neither loses nor doubles
an alert, and no consumer group is needed. An alert holds no e-mail or phone: the agent looks
the contact up in the CRM by its `contact_id`.

`done` reports a call-back made back to scoring, on `crm.callback.completed.v1` (the
`CallbackCompleted` contract: the alert, its outcome among « rappelé et résolu », « rappelé sans
solution », « injoignable », « refus », when, and the team; never the agent's name). The report's
`callback_id` is chosen once and kept in the queue before it is sent: running `done` again after
a crash sends the same report, which scoring records once. See examples/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.envelope import STRUCTURED_CONTENT_TYPE, CloudEvent, InvalidEvent, decode, encode
from contracts.events import CALLBACK_OUTCOME_LABELS, CallbackCompleted, CallbackOutcome
from contracts.topics import (
    CALLBACK_COMPLETED,
    CRM_CALLBACK_COMPLETED,
    DETRACTOR_ALERT,
    SCORING_ALERT,
)

REASONS = {
    "low_recommendation": "ne recommanderait pas le service (NPS détracteur)",
    "low_satisfaction": "peu satisfait(e) du traitement de sa demande",
    "repeat_contact_with_suggestion": "a dû recontacter le service et a laissé une suggestion",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS callbacks (
    alert_id TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    network TEXT NOT NULL,
    reasons TEXT NOT NULL,
    answers TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    queued_at TEXT NOT NULL DEFAULT (datetime('now')),
    status TEXT NOT NULL DEFAULT 'à rappeler'
);
CREATE TABLE IF NOT EXISTS reports (
    alert_id TEXT PRIMARY KEY REFERENCES callbacks (alert_id),
    callback_id TEXT NOT NULL UNIQUE,
    outcome TEXT NOT NULL,
    team TEXT,
    completed_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


def open_queue(path: Path) -> sqlite3.Connection:
    queue = sqlite3.connect(path)
    queue.executescript(SCHEMA)
    return queue


def describe(row: tuple[Any, ...]) -> str:
    alert_id, contact_id, site_id, network, reasons, answers, raised_at = row[:7]
    said = "; ".join(REASONS.get(reason, reason) for reason in reasons.split(","))
    return (
        f"À rappeler : contact {contact_id} (site {site_id}, réseau {network}), "
        f"alerte {alert_id} du {raised_at} — {said} — réponses : {answers}"
    )


def store(queue: sqlite3.Connection, record: Any) -> str | None:
    """One record into the queue (if it is a valid alert not seen before) and the partition's
    next offset, in one transaction. Returns the line to print for a new alert."""
    line = None
    try:
        event = decode(DETRACTOR_ALERT.envelope, record.value, record.headers or ())
    except InvalidEvent as error:
        print(f"ignored {record.topic}[{record.partition}]@{record.offset}: {error}",
              file=sys.stderr)  # fmt: skip
        event = None
    with queue:  # one SQLite transaction
        if event is not None:
            alert = event.data
            row = (
                alert.alert_id, alert.contact_id, alert.site_id, alert.network,
                ",".join(str(reason) for reason in alert.reasons),
                ", ".join(f"{item}={value}" for item, value in sorted(alert.answers.items())),
                alert.raised_at.isoformat(),
            )  # fmt: skip
            inserted = queue.execute(
                "INSERT INTO callbacks (alert_id, contact_id, site_id, network, reasons, answers,"
                " raised_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO NOTHING",
                row,
            ).rowcount
            line = describe(row) if inserted else None
        queue.execute(
            "INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
            "DO UPDATE SET next_offset = excluded.next_offset",
            (record.topic, record.partition, record.offset + 1),
        )
    return line


async def consume(args: argparse.Namespace) -> int:
    queue = open_queue(args.db)
    consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False)
    await consumer.start()
    new = 0
    try:
        partitions = consumer.partitions_for_topic(SCORING_ALERT.name)
        deadline = time.monotonic() + 10
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(SCORING_ALERT.name)
        assigned = [TopicPartition(SCORING_ALERT.name, p) for p in sorted(partitions or ())]
        consumer.assign(assigned)
        known = dict(
            queue.execute(
                "SELECT partition, next_offset FROM positions WHERE topic = ?",
                (SCORING_ALERT.name,),
            ).fetchall()
        )
        for partition in assigned:
            if partition.partition in known:
                consumer.seek(partition, known[partition.partition])
            elif args.from_beginning:
                await consumer.seek_to_beginning(partition)
            else:
                await consumer.seek_to_end(partition)
        last_record = time.monotonic()
        while args.max is None or new < args.max:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                last_record = time.monotonic()
                for record in records:
                    line = store(queue, record)
                    if line:
                        new += 1
                        print(line, flush=True)
            if args.idle_timeout is not None and time.monotonic() - last_record > args.idle_timeout:
                break
    finally:
        await consumer.stop()
        queue.close()
    return 0


def list_queue(args: argparse.Namespace) -> int:
    queue = open_queue(args.db)
    rows = queue.execute(
        "SELECT alert_id, contact_id, site_id, network, reasons, answers, raised_at "
        "FROM callbacks WHERE status = 'à rappeler' ORDER BY raised_at"
    ).fetchall()
    for row in rows:
        print(describe(row))
    print(f"{len(rows)} rappel(s) en attente", file=sys.stderr)
    return 0


def report_for(queue: sqlite3.Connection, args: argparse.Namespace) -> CallbackCompleted | None:
    """The call-back report of an alert of the queue: chosen once (id, outcome, time), stored,
    then the same one on every later run until it is sent."""
    alert = queue.execute(
        "SELECT site_id, network FROM callbacks WHERE alert_id = ?", (args.alert_id,)
    ).fetchone()
    if alert is None:
        return None
    with queue:
        queue.execute(
            "INSERT INTO reports (alert_id, callback_id, outcome, team, completed_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO NOTHING",
            (args.alert_id, f"rap-{uuid.uuid4().hex}", args.outcome, args.team,
             datetime.now(UTC).isoformat()),
        )  # fmt: skip
        queue.execute(
            "UPDATE callbacks SET status = 'rappelé' WHERE alert_id = ?", (args.alert_id,)
        )
    callback_id, outcome, team, completed_at = queue.execute(
        "SELECT callback_id, outcome, team, completed_at FROM reports WHERE alert_id = ?",
        (args.alert_id,),
    ).fetchone()
    return CallbackCompleted(
        callback_id=callback_id, alert_id=args.alert_id, site_id=alert[0], network=alert[1],
        outcome=CallbackOutcome(outcome), completed_at=datetime.fromisoformat(completed_at),
        team=team,
    )  # fmt: skip


async def done(args: argparse.Namespace) -> int:
    queue = open_queue(args.db)
    try:
        report = report_for(queue, args)
        if report is None:
            print(f"alerte {args.alert_id} absente de la file", file=sys.stderr)
            return 1
        event = CloudEvent[CallbackCompleted](
            id=f"evt-{report.callback_id}", source="/examples/callback-queue",
            type=CALLBACK_COMPLETED.type, time=report.completed_at, subject=report.site_id,
            data=report,
        )  # fmt: skip
        producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                CRM_CALLBACK_COMPLETED.name, encode(event), key=report.site_id.encode(),
                headers=[("content-type", STRUCTURED_CONTENT_TYPE.encode())],
            )  # fmt: skip
        finally:
            await producer.stop()
        with queue:
            queue.execute(
                "UPDATE reports SET sent_at = datetime('now') WHERE alert_id = ?", (args.alert_id,)
            )
    finally:
        queue.close()
    label = CALLBACK_OUTCOME_LABELS[report.outcome]
    print(f"Rappel {report.callback_id} de l'alerte {args.alert_id} signalé : {label}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    reading = commands.add_parser("consume", help="read scoring.alert.v1 into the queue")
    reading.add_argument("--bootstrap", required=True, help="Kafka HOST:PORT")
    reading.add_argument("--db", type=Path, default=Path("callbacks.sqlite3"))
    reading.add_argument("--from-beginning", action="store_true",
                         help="on a first run, read the alerts already on the topic")  # fmt: skip
    reading.add_argument("--max", type=int, help="stop after N new alerts")
    reading.add_argument("--idle-timeout", type=float, help="stop after S seconds without one")
    listing = commands.add_parser("list", help="print the call-backs still to make")
    listing.add_argument("--db", type=Path, default=Path("callbacks.sqlite3"))
    finishing = commands.add_parser("done", help="report a call-back made, to scoring")
    finishing.add_argument("alert_id")
    finishing.add_argument("--outcome", required=True, choices=[o.value for o in CallbackOutcome])
    finishing.add_argument("--team", help="the team that called back (never an agent's name)")
    finishing.add_argument("--bootstrap", required=True, help="Kafka HOST:PORT")
    finishing.add_argument("--db", type=Path, default=Path("callbacks.sqlite3"))
    args = parser.parse_args(argv)
    if args.command == "consume":
        return asyncio.run(consume(args))
    if args.command == "done":
        return asyncio.run(done(args))
    return list_queue(args)


if __name__ == "__main__":
    sys.exit(main())
