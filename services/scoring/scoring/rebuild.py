"""`python -m scoring rebuild`: recompute every tally from scratch and prove it equals the
incremental one.

Source: the topics, replayed from the beginning, not the responses service's export. Why:
- the tallies also count invitations (`survey.invitation.v1`) and closed contacts (the
  pseudonymous `survey.contact.v1`, never the CRM's own topic with its contact points); no
  export of the responses service holds those;
- replaying the very events the incremental consumer read, through the very same handler
  (`ScoringHandler`) and the same inbox de-duplication, tests exactly what we claim: the
  incremental tallies equal a fold of the event log, whatever crashes and redeliveries happened;
- `survey.response.v1` keeps 400 days, more than the longest window (year to date, previous
  rolling 90 days). The price: the two other topics keep less, so a rebuild after their
  retention has passed recounts fewer invitations and contacts; the report says which tables
  differ, and a rebuild is meant to be run while the retention covers the reporting windows.

How: a throw-away consumer with no group (assign + seek_to_beginning: no 5 s join, no offsets
committed, the service's group untouched) folds the events into fresh tables in the schema
`scoring_rebuild`, then each table is compared with `scoring` both ways (EXCEPT). Run it on a
quiet system (or accept that events arriving meanwhile show up as differences). Detractor alerts
are not raised again. Users' erasures (on `survey.invitation.v1`) are applied once every topic is
folded: the topics are read side by side, so an erasure may come before the user's responses.
The response rate's cohorts (`invitation_tallies`: invitations per send day, the answers to them,
when their links expire) are sums and maxima, so the side-by-side order gives the same rows, and
they are compared like the tallies (a response without `invited_at` counts on its answer day in
both).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from contracts.envelope import CloudEvent, InvalidEvent
from contracts.topics import (
    RESPONSE_SUBMITTED,
    SURVEY_CONTACT,
    SURVEY_INVITATION,
    SURVEY_RESPONSE,
    Topic,
)
from plumbing import db
from plumbing.db import Connection
from plumbing.kafka import decode_record
from scoring.collector import tune_collector
from scoring.consumer import ScoringHandler
from scoring.settings import ScoringSettings

LIVE_SCHEMA = "scoring"
REBUILD_SCHEMA = "scoring_rebuild"
REPLAYED_TOPICS = (SURVEY_RESPONSE, SURVEY_INVITATION, SURVEY_CONTACT)
REBUILT_TABLES = (
    "tally_vectors", "site_day_vectors", "invitation_tallies", "contacts", "verbatims",
    "response_facts", "invitation_facts",  # issue #15 (migration 0200)
)  # fmt: skip
# tally_cells: the live positions, copied, so equal tallies are equal vectors; alerts: written,
# not compared.
SCRATCH_TABLES = (*REBUILT_TABLES, "tally_cells", "sites", "inbox", "alerts")
IDLE_POLLS_AT_END = 3
IDLE_POLLS_GIVING_UP = 100  # 30 s without a record while short of the end: the broker is away


@dataclass
class ReplayCounts:
    records: int = 0
    invalid: int = 0
    duplicates: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    # per partition: first offset read, last offset read, records read (a gap shows)
    offsets: dict[str, list[int]] = field(default_factory=dict)

    @property
    def responses(self) -> int:
        return self.by_type.get(RESPONSE_SUBMITTED.type, 0)


async def rebuild(settings: ScoringSettings) -> dict[str, Any]:
    connection = await db.connect(settings.database_url, schema=REBUILD_SCHEMA)
    try:
        tune_collector()
        await fresh_tables(connection)
        started = time.perf_counter()
        handler = ScoringHandler(settings, raise_alerts=False, defer_erasures=True)
        counts = await replay(settings, connection, handler)
        async with connection.transaction():
            await handler.erase_deferred(connection)
        seconds = time.perf_counter() - started
        tables = {name: await compare(connection, name) for name in REBUILT_TABLES}
    finally:
        await connection.close()
    return {
        "equal": all(table["equal"] for table in tables.values()),
        "tables": tables,
        "replayed_records": counts.records, "invalid_records": counts.invalid,
        "duplicates": counts.duplicates, "events_by_type": counts.by_type,
        "offsets": counts.offsets,
        "seconds": round(seconds, 3),
        "responses_per_second": round(counts.responses / seconds, 1) if seconds else None,
    }  # fmt: skip


async def fresh_tables(connection: Connection) -> None:
    await connection.execute(f"DROP SCHEMA IF EXISTS {REBUILD_SCHEMA} CASCADE")
    await connection.execute(f"CREATE SCHEMA {REBUILD_SCHEMA}")
    for table in SCRATCH_TABLES:
        await connection.execute(
            f"CREATE TABLE {REBUILD_SCHEMA}.{table} (LIKE {LIVE_SCHEMA}.{table} INCLUDING ALL)"
        )
    await connection.execute(
        f"INSERT INTO {REBUILD_SCHEMA}.tally_cells SELECT * FROM {LIVE_SCHEMA}.tally_cells"
    )
    await connection.execute(  # cells first seen by the rebuild come after the live ones
        f"SELECT setval(pg_get_serial_sequence('{REBUILD_SCHEMA}.tally_cells', 'position'), "
        f"coalesce(max(position), 0) + 1, false) FROM {REBUILD_SCHEMA}.tally_cells"
    )


async def replay(
    settings: ScoringSettings, connection: Connection, handler: ScoringHandler
) -> ReplayCounts:
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **settings.kafka_client_options())
    await consumer.start()
    counts = ReplayCounts()
    try:
        partitions = await _assign_from_start(consumer)
        ends = await consumer.end_offsets(partitions)  # what was there when the rebuild began
        idle = 0
        while idle < IDLE_POLLS_AT_END or not await _at_end(consumer, ends):
            batch = await consumer.getmany(timeout_ms=300, max_records=5000)
            idle = 0 if batch else idle + 1
            if idle >= IDLE_POLLS_GIVING_UP:
                raise RuntimeError(f"rebuild: no record for 30 s, short of the end {ends}")
            for partition, records in batch.items():
                seen = counts.offsets.setdefault(
                    f"{partition.topic}/{partition.partition}", [records[0].offset, 0, 0]
                )
                seen[1:] = [records[-1].offset, seen[2] + len(records)]
                await _fold(connection, handler, _topic(partition.topic), records, counts)
    finally:
        await consumer.stop()
    return counts


async def _assign_from_start(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    await consumer._client.force_metadata_update()  # no group: ask the broker for the partitions
    partitions = [
        TopicPartition(topic.name, number)
        for topic in REPLAYED_TOPICS
        for number in sorted(consumer.partitions_for_topic(topic.name) or ())
    ]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    return partitions


async def _at_end(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for partition, end_at_start in ends.items():
        position = await consumer.position(partition)
        if not caught_up(position, consumer.highwater(partition), end_at_start):
            return False
    return True


def caught_up(position: int, highwater: int | None, end_at_start: int) -> bool:
    """Whether a partition is read to its end, by two marks that each may fall short.

    The end offset asked when the rebuild began: Kafka's is exact; Tansu's is one past the
    first record of the last batch, and a fetch brings a batch whole, so reaching it means the
    batch is in hand. The highwater of the latest fetch: exact on both, but unknown before the
    first fetch, and under load a rebuild once stopped on it one record short of the end (the
    idle polls had run out while the last fetch was still on its way)."""
    return position >= end_at_start and (highwater is None or position >= highwater)


def _topic(name: str) -> Topic:
    return next(topic for topic in REPLAYED_TOPICS if topic.name == name)


async def _fold(
    connection: Connection, handler: ScoringHandler, topic: Topic,
    records: list[ConsumerRecord[bytes, bytes]], counts: ReplayCounts,
) -> None:  # fmt: skip
    events: list[CloudEvent[Any]] = []
    for record in records:
        counts.records += 1
        try:
            events.append(decode_record(topic, record.value, record.headers))
        except InvalidEvent:
            counts.invalid += 1  # the live consumer sent it to the DLQ: not counted there either
    async with connection.transaction():
        fresh = await db.claim_events(
            connection, topic=topic.name, event_ids=[e.id for e in events]
        )
        to_fold = []
        for event in events:
            if event.id in fresh:
                fresh.discard(event.id)
                to_fold.append(event)
                counts.by_type[event.type] = counts.by_type.get(event.type, 0) + 1
            else:
                counts.duplicates += 1
        await handler(connection, topic.name, to_fold)


async def compare(connection: Connection, table: str) -> dict[str, Any]:
    live, rebuilt = f"{LIVE_SCHEMA}.{table}", f"{REBUILD_SCHEMA}.{table}"
    only_live = await connection.fetchval(
        f"SELECT count(*) FROM (TABLE {live} EXCEPT TABLE {rebuilt}) d"
    )
    only_rebuilt = await connection.fetchval(
        f"SELECT count(*) FROM (TABLE {rebuilt} EXCEPT TABLE {live}) d"
    )
    rows = await connection.fetchval(f"SELECT count(*) FROM {rebuilt}")
    return {
        "rows": int(rows), "only_incremental": int(only_live), "only_rebuilt": int(only_rebuilt),
        "equal": only_live == 0 and only_rebuilt == 0,
    }  # fmt: skip


def command(settings: ScoringSettings) -> None:
    """The CLI entry point: the report as one JSON line, last on stdout (after the JSON logs);
    exit status 1 when the tallies differ."""
    report = asyncio.run(rebuild(settings))
    print(json.dumps(report), flush=True)
    sys.exit(0 if report["equal"] else 1)
