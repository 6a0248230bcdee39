"""The shared mechanisms against the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from prometheus_client import CollectorRegistry

from contracts.envelope import CloudEvent, encode
from contracts.topics import CRM_CONTACT_CLOSED
from plumbing import db
from plumbing.consumer import ConsumerMetrics, EventConsumer
from plumbing.crm_simulator import CrmSimulator
from plumbing.kafka import ensure_topics, new_producer
from plumbing.outbox import OutboxMetrics, OutboxRelay, enqueue, enqueue_many
from plumbing.settings import ServiceSettings
from plumbing.testing import async_wait_for, produce, read_topic
from plumbing.tracing import Tracing

pytestmark = pytest.mark.integration


@pytest.fixture
async def schema(stack, tmp_path):
    name = f"t_{uuid.uuid4().hex[:10]}"
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_seen.sql").write_text("CREATE TABLE seen (contact_id text PRIMARY KEY);")
    await db.migrate(stack.database_url, schema=name, migrations_dir=migrations)
    return name, migrations


async def test_migrations_apply_once_even_when_two_runners_race(stack, schema):
    name, migrations = schema
    (migrations / "0002_more.sql").write_text("ALTER TABLE seen ADD COLUMN note text;")
    results = await asyncio.gather(
        db.migrate(stack.database_url, schema=name, migrations_dir=migrations),
        db.migrate(stack.database_url, schema=name, migrations_dir=migrations),
    )
    assert sorted(results, key=len) == [[], ["0002_more"]]


class Recorder:
    """A handler that records contacts, and fails on one marked contact id."""

    def __init__(self, poison: str) -> None:
        self.poison = poison

    async def __call__(self, conn: Any, topic: str, event: CloudEvent[Any]) -> None:
        if event.data.contact_id == self.poison:
            raise RuntimeError("this record cannot be handled")
        await conn.execute("INSERT INTO seen VALUES ($1)", event.data.contact_id)


async def test_consumer_dedupes_dead_letters_a_failing_record_and_goes_on(stack, schema):
    name, _ = schema
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings)
    simulator = CrmSimulator(seed=3)
    first, poison, last = (simulator.event(simulator.contact()) for _ in range(3))
    async with _consuming(settings, stack, name, Recorder(poison.data.contact_id)) as pool:
        await produce(
            stack.kafka_bootstrap_servers,
            CRM_CONTACT_CLOSED.name,
            [first, first, poison, last, first],
        )

        async def seen() -> set[str]:
            rows = await pool.fetch("SELECT contact_id FROM seen")
            return {row["contact_id"] for row in rows}

        await async_wait_for(lambda: _has(seen, last.data.contact_id), timeout=60)
        assert await seen() == {first.data.contact_id, last.data.contact_id}
        dead = await read_topic(
            stack.kafka_bootstrap_servers,
            CRM_CONTACT_CLOSED.dlq_name,
            until=lambda records: any(
                b"RuntimeError" in dict(r.headers)["dlq-error"] for r in records
            ),
        )
        poisoned = [r for r in dead if dict(r.headers)["dlq-reason"] == b"handler_error"]
        assert len(poisoned) == 1
        kept = json.loads(poisoned[0].value)
        assert kept["id"] == poison.id
        assert kept["data"]["contact_id"] == poison.data.contact_id


class ClaimingRecorder:
    """A batch handler that claims each contact by its own id (issue #14), as scoring claims
    responses: an event that comes again, under its id or a new one, changes nothing."""

    async def __call__(self, conn: Any, topic: str, events: list[CloudEvent[Any]]) -> set[str]:
        contacts = [event.data.contact_id for event in events]
        rows = await conn.fetch(
            "INSERT INTO seen SELECT unnest($1::text[]) ON CONFLICT DO NOTHING "
            "RETURNING contact_id",
            contacts,
        )
        fresh, done = {row["contact_id"] for row in rows}, set()
        for event in events:
            if event.data.contact_id in fresh:
                fresh.discard(event.data.contact_id)
            else:
                done.add(event.id)
        return done


async def test_a_topic_claimed_by_its_handler_writes_no_inbox_row_and_counts_duplicates(
    stack, schema
):
    name, _ = schema
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings)
    simulator = CrmSimulator(seed=5)
    first, last = (simulator.event(simulator.contact()) for _ in range(2))
    copy = first.model_copy(update={"id": f"evt-{uuid.uuid4().hex}"})  # sent again, new id
    registry = CollectorRegistry()
    async with _consuming(
        settings, stack, name, batch_handler=ClaimingRecorder(), registry=registry,
        claimed_by_handler={CRM_CONTACT_CLOSED.name},
    ) as pool:  # fmt: skip
        await produce(
            stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [first, first, copy, last]
        )

        async def seen() -> set[str]:
            rows = await pool.fetch("SELECT contact_id FROM seen")
            return {row["contact_id"] for row in rows}

        await async_wait_for(lambda: _has(seen, last.data.contact_id), timeout=60)
        assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
        # The topic also holds the other tests' records: what the group read is every record
        # up to `last`; one effect per contact, the rest counted as duplicates.
        records = await read_topic(
            stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name,
            until=lambda records: any(last.id.encode() in r.value for r in records),
        )  # fmt: skip
        contacts = [json.loads(record.value)["data"]["contact_id"] for record in records]
        assert await seen() == set(contacts)
        assert contacts.count(first.data.contact_id) == 3  # twice under its id, once under a new

        def outcome(kind: str) -> float:
            return (
                registry.get_sample_value(
                    "consumer_events_total",
                    {"topic": CRM_CONTACT_CLOSED.name, "type": first.type, "outcome": kind},
                )
                or 0.0
            )

        expected = (len(set(contacts)), len(contacts) - len(set(contacts)))
        await async_wait_for(lambda: (outcome("handled"), outcome("duplicate")) == expected,
                             timeout=10)  # fmt: skip


class SnapshotRecorder:
    """Records every event it is given (a read model of snapshots, keyed by subject)."""

    def __init__(self) -> None:
        self.handled: list[str] = []

    async def __call__(self, conn: Any, topic: str, event: CloudEvent[Any]) -> None:
        self.handled.append(event.id)


async def test_a_replayed_snapshot_topic_handles_only_the_newest_record_of_each_key(stack, schema):
    """Publication's read model after a rebalance re-reads its compacted topic from the start;
    the broker had not compacted the snapshots yet, and reading every one of them held the
    screens still for a minute (chaos bench). Of a fetched batch, each key's newest counts."""
    name, _ = schema
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings)
    simulator = CrmSimulator(seed=7)
    site = f"snapshots-{uuid.uuid4().hex[:8]}"
    older, old, newest = (
        simulator.event(simulator.contact()).model_copy(update={"subject": site}) for _ in range(3)
    )
    await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [older, old, newest])
    recorder, registry = SnapshotRecorder(), CollectorRegistry()
    async with _consuming(
        settings, stack, name, recorder, registry=registry, replay_from_start=True,
        latest_per_key=True,
    ):  # fmt: skip
        await async_wait_for(lambda: newest.id in recorder.handled, timeout=60)
    assert older.id not in recorder.handled and old.id not in recorder.handled
    skipped = registry.get_sample_value(
        "consumer_superseded_records_total", {"topic": CRM_CONTACT_CLOSED.name}
    )
    assert skipped is not None and skipped >= 2


class HeldSite:
    """A batch handler that holds the batches of one site until released, as a long transaction
    or a lock wait holds a partition; it records what it handled."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.handled: set[str] = set()

    async def __call__(self, conn: Any, topic: str, events: list[CloudEvent[Any]]) -> None:
        if any(event.subject == self.site for event in events):
            self.holding.set()
            await self.release.wait()
        self.handled.update(event.id for event in events)


def _sites_on_two_partitions(partitions: int) -> tuple[str, str]:
    """Two site ids (record keys) that the producer's default partitioner puts apart."""
    by_partition: dict[int, str] = {}
    while len(by_partition) < 2:
        site = f"site-{uuid.uuid4().hex[:8]}"
        by_partition.setdefault((murmur2(site.encode()) & 0x7FFFFFFF) % partitions, site)
    first, second = by_partition.values()
    return first, second


async def test_a_slow_partition_does_not_hold_the_others_when_a_fetch_comes_back_empty(
    stack, schema
):
    """concurrent_partitions: a fetch that came back empty while a partition's batch was still in
    its transaction made the loop wait for that batch before fetching again, so a slow partition
    held every other one; records of another partition are now taken as they come."""
    name, _ = schema
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings)
    slow_site, other_site = _sites_on_two_partitions(CRM_CONTACT_CLOSED.partitions)
    simulator = CrmSimulator(seed=11)
    first, slow, other = (
        simulator.event(simulator.contact()).model_copy(update={"subject": site})
        for site in (other_site, slow_site, other_site)
    )
    handler = HeldSite(slow_site)
    async with _consuming(
        settings, stack, name, batch_handler=handler, concurrent_partitions=True,
        fetch_max_wait_ms=5,
    ):  # fmt: skip
        try:
            # Caught up with the topic (the other tests' records too) before the slow batch.
            await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [first])
            await async_wait_for(lambda: _handled(handler, first.id), timeout=60)
            await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [slow])
            await asyncio.wait_for(handler.holding.wait(), timeout=30)
            await asyncio.sleep(1)  # fetches come back empty meanwhile (200 ms each at most)
            await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [other])
            await async_wait_for(lambda: _handled(handler, other.id), timeout=15)
            assert slow.id not in handler.handled  # still held: the other was not behind it
        finally:
            handler.release.set()
        await async_wait_for(lambda: _handled(handler, slow.id), timeout=15)


async def test_a_held_partition_lets_two_fetches_be_decoded_ahead_and_no_more(
    stack, schema, monkeypatch
):
    """concurrent_partitions: while the oldest fetch's transaction runs, the next two fetches
    are decoded (the database is not left idle meanwhile), and the loop fetches nothing more
    until it commits: at most three fetches are held in memory, however far behind it is."""
    name, _ = schema
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings)
    held_site, _ = _sites_on_two_partitions(CRM_CONTACT_CLOSED.partitions)
    simulator = CrmSimulator(seed=12)
    first, *held = (
        simulator.event(simulator.contact()).model_copy(update={"subject": site})
        for site in ["site-sync"] + [held_site] * 6
    )
    decoded: list[str] = []
    real_decode = EventConsumer._decode

    def counting_decode(topic: Any, records: list[Any]) -> Any:
        decoded.extend(record.key.decode() for record in records)  # the site
        return real_decode(topic, records)

    monkeypatch.setattr(EventConsumer, "_decode", staticmethod(counting_decode))
    handler = HeldSite(held_site)
    async with _consuming(
        settings, stack, name, batch_handler=handler, concurrent_partitions=True,
        fetch_max_wait_ms=5, max_records=1,
    ):  # fmt: skip
        try:
            # Caught up with the topic (the other tests' records too) before the held batches.
            await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [first])
            await async_wait_for(lambda: _handled(handler, first.id), timeout=60)
            await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, held)
            await asyncio.wait_for(handler.holding.wait(), timeout=30)
            await asyncio.sleep(2)  # time for every further fetch the loop would make
            assert decoded.count(held_site) == 3  # the held batch and two ahead, one record each
        finally:
            handler.release.set()
        for event in held:
            await async_wait_for(lambda event=event: _handled(handler, event.id), timeout=15)
    assert decoded.count(held_site) == 6


async def _handled(handler: HeldSite, event_id: str) -> bool:
    return event_id in handler.handled


@contextlib.asynccontextmanager
async def _consuming(
    settings, stack, schema_name, handler=None, *, registry=None, **options
) -> AsyncIterator[Any]:
    """An EventConsumer on the CRM topic running `handler` in `schema_name`; yields its pool."""
    pool = await db.create_pool(stack.database_url, schema=schema_name)
    producer = new_producer(settings, client_id="test")
    await producer.start()
    consumer = EventConsumer(
        settings=settings,
        group_id=f"g-{schema_name}",
        topics=[CRM_CONTACT_CLOSED],
        pool=pool,
        producer=producer,
        handler=handler,
        metrics=ConsumerMetrics(registry or CollectorRegistry()),
        **options,
    )
    task = asyncio.create_task(consumer.run())
    try:
        yield pool
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await pool.close()


async def _has(seen: Any, contact_id: str) -> bool:
    return contact_id in await seen()


async def test_outbox_relay_sends_then_deletes(stack, schema):
    name, _ = schema
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings)
    pool = await db.create_pool(stack.database_url, schema=name)
    producer = new_producer(settings, client_id="relay-test")
    await producer.start()
    event = CrmSimulator(seed=4).event(CrmSimulator(seed=4).contact())
    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, topic=CRM_CONTACT_CLOSED.name, key="site", event=event)
        relay = OutboxRelay(
            pool=pool, producer=producer, metrics=OutboxMetrics(CollectorRegistry())
        )
        assert await relay.relay_once() == 1
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
        records = await read_topic(
            stack.kafka_bootstrap_servers,
            CRM_CONTACT_CLOSED.name,
            until=lambda rs: any(r.value == encode(event) for r in rs),
        )
        assert records
    finally:
        await producer.stop()
        await pool.close()


async def test_a_pool_without_session_reset_still_ends_what_a_connection_left_open(stack, schema):
    """`reset_session=False` skips asyncpg's reset query, not the rest of a release: an open
    transaction is rolled back before another task gets the connection."""
    name, _ = schema
    pool = await db.create_pool(stack.database_url, schema=name, max_size=1, reset_session=False)
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO seen VALUES ('left-open')")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend  # the same one
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM seen") == 0
            assert await conn.fetchval("SHOW search_path") == name
    finally:
        await pool.close()


class CountingRelay(OutboxRelay):
    """The real relay, counting its rounds that moved something."""

    rounds = 0

    async def relay_once(self) -> int:
        moved = await super().relay_once()
        self.rounds += bool(moved)
        return moved


async def test_a_lingering_relay_sends_a_flow_of_single_rows_in_few_rounds(stack, schema):
    name, _ = schema
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings)
    pool = await db.create_pool(stack.database_url, schema=name)
    producer = new_producer(settings, client_id="linger-test")
    await producer.start()
    simulator = CrmSimulator(seed=5)
    events = [simulator.event(simulator.contact()) for _ in range(10)]
    relay = CountingRelay(
        pool=pool, producer=producer, metrics=OutboxMetrics(CollectorRegistry()),
        linger_seconds=0.3,
    )  # fmt: skip
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # listening
        for event in events:  # one transaction and one NOTIFY each, 20 ms apart
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, topic=CRM_CONTACT_CLOSED.name, key="site", event=event)
            await asyncio.sleep(0.02)
        await async_wait_for(lambda: _outbox_empty(pool), timeout=10, interval=0.05)
        assert 1 <= relay.rounds <= 2  # not one round per row
        ids = {event.id for event in events}
        records = await read_topic(
            stack.kafka_bootstrap_servers,
            CRM_CONTACT_CLOSED.name,
            until=lambda rs: ids <= {json.loads(r.value)["id"] for r in rs},
        )
        assert ids <= {json.loads(r.value)["id"] for r in records}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await pool.close()


async def _outbox_empty(pool: Any) -> bool:
    return bool(await pool.fetchval("SELECT count(*) = 0 FROM outbox"))


async def test_dead_letters_of_the_crm_topic_keep_no_contact_point_and_come_once(stack, schema):
    """An invalid contact closed (unknown channel) lands once in the DLQ, with its reason but
    without the e-mail, phone or CRM user reference it carried (issue #12, item 2)."""
    name, _ = schema
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings)
    simulator = CrmSimulator(seed=11)
    good = simulator.event(simulator.contact())
    marker = uuid.uuid4().hex[:12]
    bad = json.loads(encode(simulator.event(simulator.contact())))
    bad["data"].update(
        channel="pigeon_voyageur",
        email=f"jean.dupont.{marker}@exemple.fr",
        mobile_phone="+33612345678",
        user_ref=f"usager-{marker}",
    )
    async with _consuming(settings, stack, name, Recorder(poison="none")) as pool:
        bad_record = json.dumps(bad).encode()
        await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [bad_record, good])

        async def seen() -> set[str]:
            rows = await pool.fetch("SELECT contact_id FROM seen")
            return {row["contact_id"] for row in rows}

        await async_wait_for(lambda: _has(seen, good.data.contact_id), timeout=60)
        dead = await read_topic(
            stack.kafka_bootstrap_servers,
            CRM_CONTACT_CLOSED.dlq_name,
            until=lambda records: any(bad["id"].encode() in (r.value or b"") for r in records),
        )
        ours = [r for r in dead if bad["id"].encode() in (r.value or b"")]
        assert len(ours) == 1
        record = ours[0]
        headers = dict(record.headers)
        assert headers["dlq-reason"] == b"invalid_event"
        assert b"channel" in headers["dlq-error"]
        everything = record.value + b"".join(value for _, value in record.headers)
        for personal in (marker.encode(), b"+33612345678", b"jean.dupont"):
            assert personal not in everything
        kept = json.loads(record.value)
        assert kept["data"]["contact_id"] == bad["data"]["contact_id"]
        assert not {"email", "mobile_phone", "user_ref"} & set(kept["data"])


async def test_an_event_stored_in_the_outbox_keeps_the_trace_it_was_built_in(stack, schema):
    """The outbox stores the event with the current span's context, so it survives until the
    relay sends it; an event that already carries one keeps its own; outside a trace, none."""
    name, _ = schema
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    simulator = CrmSimulator(seed=16)
    first, second, third, outside = (simulator.event(simulator.contact()) for _ in range(4))
    third = third.model_copy(update={"traceparent": own})
    pool = await db.create_pool(stack.database_url, schema=name)
    try:
        async with pool.acquire() as conn, conn.transaction():
            with Tracing().span("handle", parent=parent):  # no collector: context passed on
                await enqueue(conn, topic=CRM_CONTACT_CLOSED.name, key="site", event=first)
                await enqueue_many(conn, [
                    (CRM_CONTACT_CLOSED.name, "site", second),
                    (CRM_CONTACT_CLOSED.name, "site", third),
                ])  # fmt: skip
            await enqueue(conn, topic=CRM_CONTACT_CLOSED.name, key="site", event=outside)
        rows = await pool.fetch("SELECT value FROM outbox ORDER BY id")
        stored = [json.loads(row["value"]).get("traceparent") for row in rows]
        assert stored == [parent, parent, own, None]
    finally:
        await pool.close()
