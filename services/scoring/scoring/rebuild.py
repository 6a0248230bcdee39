"""`python -m scoring rebuild`: recompute every tally from scratch and prove it equals the
incremental one.

Source: the topics, replayed from the beginning, not the responses service's export. Why:
- the tallies also count invitations (`survey.invitation.v1`) and closed contacts (the
  pseudonymous `survey.contact.v1`, never the CRM's own topic with its contact points); no
  export of the responses service holds those;
- replaying the very events the incremental consumer read, through the very same handler
  (`ScoringHandler.collect`, `tally_vectors.fold`) and the inbox's de-duplication (by event
  id, here in memory), tests exactly what we claim: the
  incremental tallies equal a fold of the event log, whatever crashes and redeliveries happened;
- `survey.response.v1` keeps 400 days, more than the longest window (year to date, previous
  rolling 90 days). The price: the two other topics keep less, so a rebuild after their
  retention has passed recounts fewer invitations and contacts; the report says which tables
  differ, and a rebuild is meant to be run while the retention covers the reporting windows;
- scoring's own retention purge deletes facts, verbatims and contacts long before the topics
  do: the replay writes them again. The purge records how far it went (`retention_horizon`), and
  a rebuilt row past that horizon is counted apart (`past_retention`), not as a difference. The
  breakdowns the purge archived are compared as the API reads them: `tallies` (archive plus
  facts) live, the fold of every replayed fact rebuilt.

How: a throw-away consumer with no group (assign + seek_to_beginning: no 5 s join, no offsets
committed, the service's group untouched) folds the events into fresh tables in the schema
`scoring_rebuild`, then each table is compared with `scoring` both ways (EXCEPT ALL). One process
reads the whole log once, so it folds like a stream processor: each fetched batch is decoded,
de-duplicated by event id in memory and by response and invitation id (the same
`first_counted` as live), collected by the handler's own `ScoringHandler.collect` and folded
into in-memory count vectors by the same `tally_vectors.fold`; the vectors, cohorts and sites
are written once at the end. The rows kept one per fact (responses' and invitations' facts,
verbatims, contacts) go to the database in big chunks while the next batches are decoded, by the
handler's own `write_rows`, on a second connection (PostgreSQL works on one core while Python
decodes on the other). Run it on a
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
import contextlib
import gc
import json
import queue
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

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
from scoring import repository, tally_vectors
from scoring.collector import tune_collector
from scoring.consumer import Collected, CountKey, ScoringHandler, first_counted
from scoring.settings import ScoringSettings

LIVE_SCHEMA = "scoring"
REBUILD_SCHEMA = "scoring_rebuild"
REPLAYED_TOPICS = (SURVEY_RESPONSE, SURVEY_INVITATION, SURVEY_CONTACT)
# Not tally_vectors: the breakdowns of the facts the purge deleted (migration 0270), which a
# replay never writes (it writes the facts again). The breakdowns are compared as the API reads
# them, through `tallies`: the archived vectors plus the facts live, the facts rebuilt.
REBUILT_TABLES = (
    "site_day_vectors", "invitation_tallies", "contacts", "verbatims",
    "response_facts", "invitation_facts",  # issue #15 (migration 0200)
    "site_day_cohorts",  # issue #14 (migration 0260): add_invitations keeps it, live
)  # fmt: skip
# tally_cells: the live positions, copied, so equal tallies are equal vectors; alerts: written,
# not compared. No inbox: the rebuild de-duplicates in memory.
SCRATCH_TABLES = (*REBUILT_TABLES, "tally_cells", "sites", "alerts")
# Written once per key, in bulk (COPY or one INSERT), never updated.
COPIED_TABLES = (
    "site_day_vectors", "response_facts", "invitation_tallies", "site_day_cohorts",
)  # fmt: skip
NOT_COMPARED = {"counted_at"}  # when a fact was stored (migration 0255), not what it says
BREAKDOWNS = "tallies"  # the API's breakdowns: live a view, rebuilt a table (`fold_breakdowns`)
GIVING_UP_SECONDS = 30  # without a record while short of the end: the broker is away
FETCH_RECORDS = 20_000  # per getmany: one process reads the whole log, big fetches cost less
FLUSH_ROWS = 20_000  # rows (facts, verbatims, contacts) sent to PostgreSQL per statement


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
    # A batch job whose objects all go with their reference counts: after 50,000 responses the
    # cyclic collector found 15 objects to free, but its passes over the batches in flight took
    # ~13 % of the rebuild. It is off until the end (`tune_collector`).
    tune_collector()
    try:
        await fresh_tables(connection)
        started = time.perf_counter()
        handler = ScoringHandler(settings, raise_alerts=False, defer_erasures=True)
        folded = Folded(positions=await repository.cell_positions(connection))
        async with _row_writer(settings) as rows:
            counts = await replay(settings, connection, handler, folded, rows)
            await rows.flush()  # the last rows go in while the tallies are written
            await folded.write(connection)
        async with connection.transaction():  # every row in: the teams, then the erasures
            await repository.fill_response_teams(connection)
            await handler.erase_deferred(connection)
        seconds = time.perf_counter() - started
        async with connection.transaction():  # the live schema's horizon
            await connection.execute(f"SET LOCAL search_path = {LIVE_SCHEMA}")
            horizon = await repository.retention_horizon(connection)
        await fold_breakdowns(connection)
        tables = {
            name: await compare(connection, name, horizon) for name in (*REBUILT_TABLES, BREAKDOWNS)
        }
    finally:
        gc.enable()
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


@dataclass
class Folded:
    """Every batch folded so far, in memory: tallies grow with sites x days, not
    with responses. Written once, at the end (`write`)."""

    positions: dict[tally_vectors.Cell, int]
    vectors: tally_vectors.Vectors = field(default_factory=dict)
    totals: Collected = field(default_factory=Collected)  # cohorts, sites, clocks
    event_ids: set[str] = field(default_factory=set)  # the inbox, in memory
    counted: set[CountKey] = field(default_factory=set)  # responses, invitations: in memory

    async def add(self, connection: Connection, batch: Collected) -> None:
        if missing := sorted(tally_vectors.cells_of(batch.responses) - self.positions.keys()):
            self.positions |= await repository.add_cells(connection, missing)
        tally_vectors.fold(batch.responses, self.positions, into=self.vectors)
        totals = self.totals
        totals.invitations.update(batch.invitations)
        totals.cohort_answers.update(batch.cohort_answers)
        for cohort, until in batch.cohort_open_until.items():
            if cohort not in totals.cohort_open_until or until > totals.cohort_open_until[cohort]:
                totals.cohort_open_until[cohort] = until
        totals.sites |= batch.sites
        for site, moment in batch.pending_since.items():
            if site not in totals.pending_since or moment < totals.pending_since[site]:
                totals.pending_since[site] = moment
        for site, (zone, told) in batch.zones.items():  # a told clock replaces; a default fills
            if told or site not in totals.zones:
                totals.zones[site] = (zone, told)

    async def write(self, connection: Connection) -> None:
        """The tallies, cohorts and sites, as `ScoringHandler.write` writes a batch's (fresh
        tables)."""
        totals = self.totals
        async with connection.transaction():
            await repository.copy_vectors(connection, vectors=self.vectors)
            await repository.copy_cohorts(
                connection, increments=totals.invitations, answered=totals.cohort_answers,
                open_until=totals.cohort_open_until,
            )  # fmt: skip
            await repository.mark_sites_dirty(
                connection, sites=totals.sites, pending_since=totals.pending_since
            )
            await repository.set_site_timezones(connection, zones=totals.zones)


class _RowWriter:
    """Sends the collected rows to PostgreSQL in chunks of about FLUSH_ROWS, in their order, from
    a thread of its own with its own event loop and connection: the fold holds the main loop
    for long stretches, and a writer on it would only move between them."""

    def __init__(self, database_url: str) -> None:
        self.pending = Collected()
        self.size = 0
        self.response_ids: set[str] = set()
        self.queue: queue.Queue[Collected | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.stopping = False
        self.thread = threading.Thread(
            target=self._thread, args=(database_url,), name="rebuild-rows", daemon=True
        )
        self.thread.start()

    async def add(self, batch: Collected) -> None:
        fresh = []  # the first fact of each response id, as ON CONFLICT DO NOTHING keeps it
        for row in batch.facts:
            if row[0] not in self.response_ids:
                self.response_ids.add(row[0])
                fresh.append(row)
        batch.facts = fresh
        pending = self.pending
        for name in ("contacts", "verbatims", "facts", "sent", "reminded"):
            rows = getattr(batch, name)
            getattr(pending, name).extend(rows)
            self.size += len(rows)
        if self.size >= FLUSH_ROWS:
            await self.flush()

    async def flush(self) -> None:
        if self.size:
            await self._put(self.pending)
            self.pending, self.size = Collected(), 0

    async def close(self) -> None:
        """Every row written; the writer's error, if it had one."""
        await self.flush()
        await self._put(None)
        await asyncio.to_thread(self.thread.join)
        self._raise()

    def abort(self) -> None:
        self.stopping = True
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)

    async def _put(self, item: Collected | None) -> None:
        while True:
            self._raise()  # a writer that failed drains no queue
            try:
                self.queue.put_nowait(item)
                return
            except queue.Full:
                await asyncio.to_thread(self.thread.join, 0.05)  # or until it ends

    def _raise(self) -> None:
        if self.error is not None:
            raise RuntimeError("rebuild: writing the rows failed") from self.error

    def _thread(self, database_url: str) -> None:
        try:
            asyncio.run(self._run(database_url))
        except BaseException as error:  # handed to the main thread
            self.error = error

    async def _run(self, database_url: str) -> None:
        connection = await db.connect(database_url, schema=REBUILD_SCHEMA)
        try:
            while not self.stopping and (chunk := self.queue.get()) is not None:
                facts, chunk.facts = chunk.facts, []
                await ScoringHandler.write_rows(connection, chunk)
                await repository.copy_response_facts(connection, rows=facts)
        finally:
            await connection.close()


@contextlib.asynccontextmanager
async def _row_writer(settings: ScoringSettings) -> AsyncIterator[_RowWriter]:
    writer = _RowWriter(settings.database_url)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    await writer.close()


async def fresh_tables(connection: Connection) -> None:
    await connection.execute(f"DROP SCHEMA IF EXISTS {REBUILD_SCHEMA} CASCADE")
    await connection.execute(f"CREATE SCHEMA {REBUILD_SCHEMA}")
    for table in SCRATCH_TABLES:
        # Tables written only by COPY need no index: none to maintain row by row, and the
        # comparison (EXCEPT ALL) would show a row written twice all the same.
        indexes = " EXCLUDING INDEXES" if table in COPIED_TABLES else ""
        await connection.execute(
            f"CREATE TABLE {REBUILD_SCHEMA}.{table} "
            f"(LIKE {LIVE_SCHEMA}.{table} INCLUDING ALL{indexes})"
        )
    await connection.execute(
        f"INSERT INTO {REBUILD_SCHEMA}.tally_cells SELECT * FROM {LIVE_SCHEMA}.tally_cells"
    )
    await connection.execute(  # cells first seen by the rebuild come after the live ones
        f"SELECT setval(pg_get_serial_sequence('{REBUILD_SCHEMA}.tally_cells', 'position'), "
        f"coalesce(max(position), 0) + 1, false) FROM {REBUILD_SCHEMA}.tally_cells"
    )


async def replay(
    settings: ScoringSettings, connection: Connection, handler: ScoringHandler,
    folded: Folded, rows: _RowWriter,
) -> ReplayCounts:  # fmt: skip
    """Reads with confluent-kafka: librdkafka fetches ahead in its own threads while Python
    folds (aiokafka fetches on the event loop, which a fold of thousands of records holds)."""
    consumer = Consumer({
        **settings.librdkafka_options(), "group.id": "scoring-rebuild",  # assign(): never joined
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        # Nothing is written in transactions (Tansu has none), and librdkafka's default,
        # read_committed, stops at the last stable offset Tansu reports: short of the end.
        "isolation.level": "read_uncommitted",
    })  # fmt: skip
    counts = ReplayCounts()
    try:
        ends = await asyncio.to_thread(_assign_from_start, consumer)
        waited = 0.0  # seconds without a record while short of the end
        while not _at_end(consumer, ends):
            messages = consumer.consume(FETCH_RECORDS, 0)  # what librdkafka holds already
            if not messages:
                messages = await asyncio.to_thread(consumer.consume, FETCH_RECORDS, 0.1)
            waited = 0.0 if messages else waited + 0.1
            if waited >= GIVING_UP_SECONDS:
                raise RuntimeError(f"rebuild: no record for 30 s, short of the end {ends}")
            for (topic, number), records in _by_partition(messages).items():
                seen = counts.offsets.setdefault(f"{topic}/{number}", [records[0].offset(), 0, 0])
                seen[1:] = [records[-1].offset(), seen[2] + len(records)]
                events = _fresh(_topic(topic), records, counts, folded.event_ids)
                collected = handler.collect(first_counted(events, folded.counted))
                handler.deferred_erasures += collected.erasures  # applied once all is folded
                await folded.add(connection, collected)
                await rows.add(collected)
    finally:
        await asyncio.to_thread(consumer.close)
    return counts


def _by_partition(messages: list[Message]) -> dict[tuple[str, int], list[Message]]:
    """Each partition's records, in their order."""
    partitions: dict[tuple[str, int], list[Message]] = {}
    for message in messages:
        if (error := message.error()) is not None:
            raise KafkaException(error)
        partitions.setdefault((message.topic(), message.partition()), []).append(message)
    return partitions


def _assign_from_start(consumer: Consumer) -> dict[TopicPartition, tuple[int, int]]:
    """Assign every partition of the replayed topics from its first record (no group: no join,
    no offsets committed, the service's group untouched); each one's (first, end) offsets as
    the broker tells them now."""
    partitions = []
    for topic in REPLAYED_TOPICS:
        metadata = consumer.list_topics(topic.name, timeout=30).topics[topic.name]
        if metadata.error is not None and metadata.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise KafkaException(metadata.error)  # a topic not created yet has nothing to read
        partitions += [TopicPartition(topic.name, number) for number in sorted(metadata.partitions)]
    ends = {tp: consumer.get_watermark_offsets(tp, timeout=30) for tp in partitions}
    consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions])
    return ends


def _at_end(consumer: Consumer, ends: dict[TopicPartition, tuple[int, int]]) -> bool:
    positions = consumer.position(list(ends))
    for partition in positions:
        first, end_at_start = ends[TopicPartition(partition.topic, partition.partition)]
        # Before its first record the position is unset: the partition's first offset.
        position = partition.offset if partition.offset >= 0 else first
        highwater = consumer.get_watermark_offsets(partition, cached=True)[1]
        if not caught_up(position, highwater if highwater >= 0 else None, end_at_start):
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


def _fresh(
    topic: Topic, records: list[Message], counts: ReplayCounts, seen: set[str]
) -> list[CloudEvent[Any]]:
    """The records' events not seen before (the live consumer's inbox, in memory)."""
    events: list[CloudEvent[Any]] = []
    by_type = counts.by_type
    for record in records:
        try:
            event = decode_record(topic, record.value(), record.headers())
        except InvalidEvent:
            counts.invalid += 1  # the live consumer sent it to the DLQ: not counted there either
            continue
        if event.id in seen:
            counts.duplicates += 1
            continue
        seen.add(event.id)
        events.append(event)
        by_type[event.type] = by_type.get(event.type, 0) + 1
    counts.records += len(records)
    return events


async def compare(
    connection: Connection, table: str, horizon: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Rows only in one schema, both ways (as many times as they are there: a row written
    twice shows), on every column but when a row was stored. Rows only rebuilt that the
    retention purge deleted (`horizon`, `repository.PAST_RETENTION`) are counted apart."""
    names = await connection.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
        "AND table_name = $2 ORDER BY ordinal_position",
        LIVE_SCHEMA, table,
    )  # fmt: skip
    columns = ", ".join(f'"{row[0]}"' for row in names if row[0] not in NOT_COMPARED)
    live = f"SELECT {columns} FROM {LIVE_SCHEMA}.{table}"
    rebuilt = f"SELECT {columns} FROM {REBUILD_SCHEMA}.{table}"
    only_live = await connection.fetchval(f"SELECT count(*) FROM ({live} EXCEPT ALL {rebuilt}) d")
    only_rebuilt = f"({rebuilt} EXCEPT ALL {live}) d"
    # A row the replay writes again past what the purge deleted is expected, not a difference.
    past, bound = repository.PAST_RETENTION.get(table, (None, None))
    limit = (horizon or {}).get(bound) if bound else None
    if past is None or limit is None:
        differ, expected = await connection.fetchval(f"SELECT count(*) FROM {only_rebuilt}"), 0
    else:
        split = await connection.fetchrow(
            f"SELECT count(*) FILTER (WHERE NOT ({past})), count(*) FILTER (WHERE {past}) "
            f"FROM {only_rebuilt}",
            limit,
        )  # fmt: skip
        assert split is not None  # an aggregate: one row
        differ, expected = split[0], split[1]
    rows = await connection.fetchval(f"SELECT count(*) FROM {REBUILD_SCHEMA}.{table}")
    return {
        "rows": int(rows), "only_incremental": int(only_live), "only_rebuilt": int(differ),
        "past_retention": int(expected), "equal": only_live == 0 and differ == 0,
    }  # fmt: skip


async def fold_breakdowns(connection: Connection) -> None:
    """The rebuilt breakdowns, as the live view `tallies` gives them (the archived vectors plus
    the facts kept): here every replayed fact, the replay archiving none. Compared as a table."""
    await connection.execute(
        f"CREATE TABLE {REBUILD_SCHEMA}.{BREAKDOWNS} AS SELECT site_id, day, channel, motif, "
        "nature, profile, e.item, e.value, count(*) AS count "
        f"FROM {REBUILD_SCHEMA}.response_facts CROSS JOIN LATERAL jsonb_each_text(cells) "
        "AS e(item, value) GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
    )


def command(settings: ScoringSettings) -> None:
    """The CLI entry point: the report as one JSON line, last on stdout (after the JSON logs);
    exit status 1 when the tallies differ."""
    report = asyncio.run(rebuild(settings))
    print(json.dumps(report), flush=True)
    sys.exit(0 if report["equal"] else 1)
