"""The consumer loop every service uses: decode, handle in one transaction, then commit.

For each partition of a fetched batch:
1. decode every record against the topic registry; invalid ones go to the topic's DLQ;
2. in one database transaction, claim the event ids in the inbox and hand only the new ones
   to the service's handler (which writes its state and its outbox rows in that transaction);
   a topic whose handler claims each effect by its own natural key (`claimed_by_handler`)
   skips the inbox: the handler tells which events it found done already;
3. commit the partition's offset (`last offset + 1`) only after that transaction committed.
A crash anywhere re-delivers from the last committed offset, and the inbox drops what was done.
A handler error that is not an infrastructure failure is retried message by message, and the
message that still fails goes to the DLQ with the error: the loop never crash-loops on one record.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from contracts.envelope import CloudEvent, InvalidEvent
from contracts.topics import Topic
from plumbing import failpoints
from plumbing.db import Connection, claim_events
from plumbing.dead_letters import dead_letter
from plumbing.kafka import decode_record
from plumbing.settings import ServiceSettings
from plumbing.tracing import Tracing

log = logging.getLogger(__name__)

# A batch that met a database or broker outage is retried at most this long after the last try:
# once the dependency is back the service catches up within seconds, and a retry costs little.
MAX_RETRY_DELAY_SECONDS = 2.0

Handler = Callable[[Connection, str, CloudEvent[Any]], Awaitable[None]]
BatchHandler = Callable[[Connection, str, list[CloudEvent[Any]]], Awaitable[Collection[str] | None]]
"""Returns None, or (topics `claimed_by_handler`) the ids of the events it found done already."""
INFRASTRUCTURE_ERRORS = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "consumer_events_total",
            "Events consumed, by topic, type and outcome",
            ["topic", "type", "outcome"],
            registry=registry,
        )
        self.dlq = Counter(
            "consumer_dlq_events_total",
            "Records sent to a dead-letter topic",
            ["topic", "reason"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "consumer_batch_size_records",
            "Records handled per partition batch",
            ["topic"],
            buckets=(1, 5, 10, 50, 100, 500, 1000, 5000),
            registry=registry,
        )
        self.lag = Gauge(
            "consumer_lag_records",
            "Records behind the partition high-water mark",
            ["topic", "partition"],
            registry=registry,
        )
        self.superseded = Counter(
            "consumer_superseded_records_total",
            "Snapshots skipped for a newer one of the same key in the same batch",
            ["topic"],
            registry=registry,
        )
        self.handle_seconds = Histogram(
            "consumer_batch_duration_seconds",
            "Time to handle and commit a partition batch",
            ["topic"],
            registry=registry,
        )


class _JoinedListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Marks the consumer joined once the group gave it its partitions (possibly none), and
    rewinds them first when the consumer rebuilds its state from the topic at each start."""

    def __init__(self, joined: asyncio.Event, rewind: AIOKafkaConsumer | None) -> None:
        self.joined = joined
        self.rewind = rewind

    async def on_partitions_revoked(self, revoked: object) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.rewind is not None and assigned:
            await self.rewind.seek_to_beginning(*assigned)
        self.joined.set()


def _all_done(tasks: list[asyncio.Task[None]]) -> bool:
    return all(task.done() for task in tasks)


@dataclass
class _Decoded:
    record: ConsumerRecord[bytes, bytes]
    event: CloudEvent[Any]


class EventConsumer:
    def __init__(
        self,
        *,
        settings: ServiceSettings,
        group_id: str,
        topics: Sequence[Topic],
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        metrics: ConsumerMetrics,
        max_records: int = 2000,
        replay_from_start: bool = False,
        concurrent_partitions: bool = False,
        fetch_max_wait_ms: int = 500,
        partition_fetch_bytes: int = 1024 * 1024,
        claimed_by_handler: Collection[str] = (),
        latest_per_key: bool = False,
        tracing: Tracing | None = None,
    ) -> None:
        """`replay_from_start`: for a read model that is a function of a compacted topic. Every
        start (and rebalance) re-reads the topic from its beginning and skips the inbox, so a lost
        or wiped table is rebuilt by a restart; the handler must be idempotent and keep the
        newest state when an older event comes again.

        `concurrent_partitions`: the partitions of a fetched batch are handled side by side, each
        in its own transaction on its own pooled connection (and committed on its own), so the
        database works on one while Python decodes another. Only for handlers whose partitions
        never touch the same rows (state keyed like the partitions), else they wait on locks.
        Fetches overlap too: the next two are decoded while one's transactions run, and a
        partition's batch is handled and committed only after its previous batch (`_dispatch`).

        `fetch_max_wait_ms`: how long the broker may hold a fetch for new records. Tansu answers
        a waiting fetch ~115 ms after a record arrives with the default 500, ~10 ms with 50:
        lower it when the time from event to effect matters more than idle fetch requests.

        `partition_fetch_bytes`: the most a fetch brings of one partition (the client's
        max_partition_fetch_bytes, 1 MiB by default): with `max_records`, how big a partition's
        batch, and so its transaction, can be when the consumer is behind.

        `claimed_by_handler`: topics whose batch handler claims every effect by the event's
        natural key in the transaction (an INSERT ... ON CONFLICT DO NOTHING RETURNING on a
        primary key, which also waits for a concurrent claim of the same key), so that an event
        redelivered, or sent again under a new id, changes nothing. They write no inbox row:
        one write fewer per event. The handler returns the ids of the events it found done.

        `latest_per_key` (with `replay_from_start`): each record is a snapshot of its key (a
        compacted topic): of a fetched batch, only each key's newest record is handled."""
        self.settings = settings
        self.group_id = group_id
        self.topics = {topic.name: topic for topic in topics}
        self.pool = pool
        self.producer = producer
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler (per event) or batch_handler")
        self.handler = handler
        self.batch_handler = batch_handler
        self.metrics = metrics
        self.max_records = max_records
        self.replay_from_start = replay_from_start
        self.concurrent_partitions = concurrent_partitions
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.partition_fetch_bytes = partition_fetch_bytes
        self.claimed_by_handler = frozenset(claimed_by_handler)
        self.latest_per_key = latest_per_key
        if self.claimed_by_handler and handler is not None:
            raise ValueError("claimed_by_handler needs a batch_handler, which reports duplicates")
        self.consumer: AIOKafkaConsumer | None = None
        self.joined = asyncio.Event()
        # concurrent_partitions: the tasks of each fetched batch still running, oldest first,
        # and each partition's latest task (its next batch waits for it).
        self._waves: collections.deque[list[asyncio.Task[None]]] = collections.deque()
        self._tails: dict[TopicPartition, asyncio.Task[None]] = {}
        # Each event handled continues its trace (a batch: the first traced event's, linking the
        # others'); without a collector, only the context is passed on to what the handler emits.
        self.tracing = tracing if tracing is not None else Tracing()

    async def run(self) -> None:
        self.consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_records,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            max_partition_fetch_bytes=self.partition_fetch_bytes,
            **self.settings.kafka_client_options(),
        )
        rewind = self.consumer if self.replay_from_start else None
        self.consumer.subscribe(list(self.topics), listener=_JoinedListener(self.joined, rewind))
        await self.consumer.start()
        try:
            while True:
                batch = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
                if self.concurrent_partitions:
                    self._dispatch(batch)
                    # Up to two fetches are decoded while the oldest one's transactions run; no
                    # further (a bound on memory: three fetches). One fetch ahead left the
                    # database idle while the next partitions decoded (bench: backlog ratio
                    # 0.77 against 1.00 with two ahead). A fetch that came back empty waits for
                    # nothing: the next records are taken as soon as they come.
                    while len(self._waves) > 2 or (self._waves and _all_done(self._waves[0])):
                        await asyncio.gather(*self._waves.popleft())
                else:
                    for partition, records in batch.items():
                        await self._process_with_retry(partition, self._worth_handling(records))
                await self._update_lag()
        finally:
            for wave in self._waves:  # stopped or failed: the batches in flight are redelivered
                for task in wave:
                    task.cancel()
            await asyncio.gather(*(t for wave in self._waves for t in wave), return_exceptions=True)
            self._waves.clear()
            self._tails.clear()
            await self.consumer.stop()

    def _dispatch(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """One task per partition of the fetched batch, each decoding at once, then handling
        and committing after the partition's previous batch (`_in_order`): a partition's
        batches commit in their order, the partitions side by side, and a fetch's decoding
        overlaps the database work of the fetch before it."""
        wave = []
        for partition, records in batch.items():
            previous = self._tails.get(partition)
            records = self._worth_handling(records)
            task = asyncio.create_task(self._in_order(previous, partition, records))
            self._tails[partition] = task
            wave.append(task)
        if wave:
            self._waves.append(wave)

    async def _in_order(
        self,
        previous: asyncio.Task[None] | None,
        partition: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> None:
        decoded = self._decode(self.topics[partition.topic], records)
        if previous is not None:
            await previous  # its failure is this batch's too: never commit past it
        await self._process_with_retry(partition, records, decoded=decoded)

    def _worth_handling(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """A replayed snapshot topic (`replay_from_start` on a compacted topic): only the newest
        record of each key in the fetched batch, what compaction keeps; the others are never
        decoded. A replay after a rebalance read every snapshot ever sent, as the broker had
        not compacted them yet (55 kB each, two a second per busy site): the screens stood
        still for a minute after a publication replica restarted. The last record stays, so
        the offset committed is the batch's."""
        if not (self.replay_from_start and self.latest_per_key):
            return records
        newest = {record.key: index for index, record in enumerate(records)}
        if len(newest) == len(records) or any(key is None for key in newest):
            return records
        kept = sorted(newest.values())
        self.metrics.superseded.labels(records[0].topic).inc(len(records) - len(kept))
        return [records[index] for index in kept]

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the offsets of the partitions still assigned to this member. A rebalance during
        a batch may have given its partition to another member: this member cannot commit it
        any more, and need not; the new owner reads again from the last committed offset and
        its inbox drops what this batch's committed transaction already did."""
        assert self.consumer is not None
        owned = self.consumer.assignment()
        still_ours = {
            partition: offset for partition, offset in offsets.items() if partition in owned
        }
        try:
            if still_ours:
                await self.consumer.commit(still_ours)
        except (CommitFailedError, IllegalStateError) as error:  # a rebalance in between
            still_ours = {}
            log.warning("offsets not committed: the group rebalanced", extra={"error": repr(error)})
        for partition in offsets.keys() - still_ours.keys():
            log.info(
                "partition moved to another member during its batch; offset left to the new owner",
                extra={"topic": partition.topic, "partition": partition.partition},
            )

    async def _update_lag(self) -> None:
        # Lag from highwater(), which Tansu reports correctly (its end offsets can be wrong).
        assert self.consumer is not None
        for partition in self.consumer.assignment():
            highwater = self.consumer.highwater(partition)
            if highwater is None:
                continue
            position = await self.consumer.position(partition)
            self.metrics.lag.labels(partition.topic, str(partition.partition)).set(
                max(0, highwater - position)
            )

    async def _process_with_retry(
        self,
        partition: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
        *,
        decoded: list[_Decoded | InvalidEvent] | None = None,
    ) -> None:
        assert self.consumer is not None
        delay = 0.5
        while True:
            try:
                started = time.perf_counter()
                await self._process(partition, records, decoded)
                failpoints.hit("consumer.after_db_commit")
                await self._commit({partition: records[-1].offset + 1})
                self.metrics.handle_seconds.labels(partition.topic).observe(
                    time.perf_counter() - started
                )
                return
            except INFRASTRUCTURE_ERRORS as error:
                log.warning(
                    "infrastructure error, retrying the batch",
                    extra={"topic": partition.topic, "error": repr(error), "retry_in": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_SECONDS)

    @staticmethod
    def _decode(
        topic: Topic, records: list[ConsumerRecord[bytes, bytes]]
    ) -> list[_Decoded | InvalidEvent]:
        """Each record's event, or why it is invalid (pure: no I/O)."""
        results: list[_Decoded | InvalidEvent] = []
        for record in records:
            try:
                results.append(_Decoded(record, decode_record(topic, record.value, record.headers)))
            except InvalidEvent as error:
                results.append(error)
        return results

    async def _process(
        self,
        partition: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
        results: list[_Decoded | InvalidEvent] | None = None,
    ) -> None:
        topic = self.topics[partition.topic]
        decoded: list[_Decoded] = []
        for record, result in zip(
            records, self._decode(topic, records) if results is None else results, strict=True
        ):
            if isinstance(result, InvalidEvent):
                await self._dead_letter(topic, record, "invalid_event", str(result))
            else:
                decoded.append(result)
        self.metrics.batch_size.labels(topic.name).observe(len(records))
        if not decoded:
            return
        try:
            await self._handle_in_one_transaction(topic, decoded)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
            log.warning("batch failed, retrying record by record", extra={"error": repr(error)})
            for item in decoded:
                try:
                    await self._handle_in_one_transaction(topic, [item])
                except INFRASTRUCTURE_ERRORS:
                    raise
                except Exception as single_error:
                    if topic.personal_data:  # a traceback may quote the record's contact points
                        log.warning(
                            "record failed, sent to the DLQ",
                            extra={"error_type": type(single_error).__name__},
                        )
                    else:
                        log.exception("record failed, sent to the DLQ")
                    await self._dead_letter(
                        topic,
                        item.record,
                        "handler_error",
                        f"{type(single_error).__name__}: {single_error}",
                        error_type=type(single_error).__name__,
                    )

    async def _handle_in_one_transaction(self, topic: Topic, items: list[_Decoded]) -> None:
        async with self.pool.acquire() as connection, connection.transaction():
            event_ids = [item.event.id for item in items]
            fresh = (
                set(event_ids)
                if self.replay_from_start or topic.name in self.claimed_by_handler
                else await claim_events(connection, topic=topic.name, event_ids=event_ids)
            )
            to_handle: list[CloudEvent[Any]] = []
            for item in items:
                if item.event.id in fresh:
                    fresh.discard(item.event.id)  # a repeat inside the same batch is a duplicate
                    to_handle.append(item.event)
            done_already: Collection[str] | None = None
            if self.batch_handler is not None:
                with self.tracing.consume_batch(topic.name, to_handle):
                    done_already = await self.batch_handler(connection, topic.name, to_handle)
            else:
                assert self.handler is not None
                for event in to_handle:
                    with self.tracing.consume(topic.name, event):
                        await self.handler(connection, topic.name, event)
            if to_handle:
                failpoints.hit("consumer.before_db_commit")
        handled = {event.id for event in to_handle} - set(done_already or ())
        outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        for item in items:
            outcome = "handled" if item.event.id in handled else "duplicate"
            handled.discard(item.event.id)  # a repeat inside the same batch is a duplicate
            outcomes[(item.event.type, outcome)] += 1
        for (type_name, outcome), count in outcomes.items():  # one label lookup per kind
            self.metrics.events.labels(topic.name, type_name, outcome).inc(count)

    async def _dead_letter(
        self,
        topic: Topic,
        record: ConsumerRecord[bytes, bytes],
        reason: str,
        detail: str,
        *,
        error_type: str | None = None,
    ) -> None:
        letter = dead_letter(
            topic, record.value, tuple(record.headers or ()), detail=detail, error_type=error_type
        )
        detail = letter.detail
        headers = [
            *(record.headers or ()),
            *letter.headers,
            ("dlq-reason", reason.encode()),
            ("dlq-error", detail[:2000].encode()),
            ("dlq-original-topic", record.topic.encode()),
            ("dlq-original-partition", str(record.partition).encode()),
            ("dlq-original-offset", str(record.offset).encode()),
            ("dlq-consumer-group", self.group_id.encode()),
        ]
        await self.producer.send_and_wait(
            topic.dlq_name, letter.value, key=record.key, headers=headers
        )
        self.metrics.dlq.labels(topic.name, reason).inc()
        log.warning(
            "record sent to the DLQ",
            extra={
                "topic": record.topic,
                "offset": record.offset,
                "reason": reason,
                "detail": detail[:300],
            },
        )
