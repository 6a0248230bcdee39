"""Two replicas of a service share the work without breaking what one guarantees (issue #13):
the outbox of a schema relayed in order per key when two relays run, and the partitions of a
topic spread over the members of a consumer group, each event handled once.
Real broker and database; the relays and consumers are the ones every service runs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from contracts.envelope import CloudEvent
from contracts.topics import CRM_CONTACT_CLOSED
from plumbing import db
from plumbing.consumer import ConsumerMetrics, EventConsumer
from plumbing.crm_simulator import CrmSimulator
from plumbing.kafka import ensure_topics, new_producer
from plumbing.outbox import RELAY_LOCK, OutboxMetrics, OutboxRelay
from plumbing.settings import ServiceSettings
from plumbing.testing import async_wait_for, produce, read_topic

pytestmark = pytest.mark.integration

ROWS = 3000
KEYS = 4


@pytest.fixture
async def schema(stack, tmp_path):
    name = f"t_{uuid.uuid4().hex[:10]}"
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_handled.sql").write_text(
        "CREATE TABLE handled (event_id text NOT NULL, member text NOT NULL);"
    )
    await db.migrate(stack.database_url, schema=name, migrations_dir=migrations)
    return name


async def new_topic(bootstrap: str, partitions: int) -> str:
    name = f"two-replicas-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def fill_outbox(pool: asyncpg.Pool, topic: str) -> None:
    """ROWS rows over KEYS keys, inserted in order (one transaction per 100 rows)."""
    for start in range(0, ROWS, 100):
        numbers = list(range(start, start + 100))
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO outbox (topic, key, value) SELECT $1, key, value FROM "
                "unnest($2::bytea[], $3::bytea[]) WITH ORDINALITY AS r (key, value, n) ORDER BY n",
                topic,
                [f"key-{n % KEYS}".encode() for n in numbers],
                [json.dumps({"n": n}).encode() for n in numbers],
            )


def first_seen_per_key(records: list[Any]) -> dict[bytes, list[int]]:
    """Per key, the row numbers in the order the topic holds them, a re-send dropped (as the
    consumers' inbox drops it)."""
    seen: set[int] = set()
    order: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        number = json.loads(record.value)["n"]
        if number not in seen:
            seen.add(number)
            order[record.key].append(number)
    return order


async def test_two_relays_send_the_rows_of_each_key_in_insert_order(stack, schema):
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    topic = await new_topic(stack.kafka_bootstrap_servers, partitions=2)
    replicas = []
    for n in range(2):  # each relay with its own pool and producer, as in two processes
        pool = await db.create_pool(stack.database_url, schema=schema, max_size=3)
        producer = new_producer(settings, client_id=f"relay-{n}")
        await producer.start()
        replicas.append((pool, producer))
    await fill_outbox(replicas[0][0], topic)
    relays = [
        OutboxRelay(
            pool=pool,
            producer=producer,
            metrics=OutboxMetrics(CollectorRegistry()),
            batch_size=50,
            idle_poll_seconds=0.1,
        )
        for pool, producer in replicas
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        records = await read_topic(
            stack.kafka_bootstrap_servers,
            topic,
            until=lambda rs: len({r.value for r in rs}) >= ROWS,
            timeout=45,
        )
        order = first_seen_per_key(records)
        assert sum(len(numbers) for numbers in order.values()) == ROWS
        for key, numbers in order.items():
            assert numbers == sorted(numbers), f"{key!r} relayed out of order"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pool, producer in replicas:
            await producer.stop()
            await pool.close()


async def test_a_standby_relay_takes_over_when_the_sending_one_dies(stack, schema):
    """While another relay holds the schema's relay lock, a relay sends nothing (but reports the
    age of the waiting rows); when the holder's connection dies, its lock goes with it and the
    standby sends."""
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    topic = await new_topic(stack.kafka_bootstrap_servers, partitions=1)
    pool = await db.create_pool(stack.database_url, schema=schema, max_size=3)
    producer = new_producer(settings, client_id="standby")
    await producer.start()
    holder = await db.connect(stack.database_url, schema=schema)
    metrics = OutboxMetrics(CollectorRegistry())
    relay = OutboxRelay(pool=pool, producer=producer, metrics=metrics, idle_poll_seconds=0.1)
    task = None
    try:
        await holder.execute("BEGIN")
        assert await holder.fetchval(RELAY_LOCK)  # a relay in the middle of its round
        await pool.execute(
            "INSERT INTO outbox (topic, key, value, created_at) "
            "VALUES ($1, 'k', '{\"n\": 0}', now() - interval '5 seconds')",
            topic,
        )
        assert await relay.relay_once() == 0
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
        assert metrics.oldest_age._value.get() >= 5

        task = asyncio.create_task(relay.run())
        await pool.execute("SELECT pg_terminate_backend($1)", holder.get_server_pid())
        await async_wait_for(
            lambda: pool.fetchval("SELECT count(*) = 0 FROM outbox"), timeout=10, interval=0.05
        )
        await read_topic(stack.kafka_bootstrap_servers, topic, until=lambda rs: len(rs) == 1)
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        holder.terminate()
        await producer.stop()
        await pool.close()


class RelayWithARowDuringItsRound(OutboxRelay):
    """The real relay; during its first round that sends something, another transaction commits
    a row (and its NOTIFY), as a standby's or the leader's own traffic would."""

    def __init__(self, *, topic: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.topic = topic
        self.inserted = False

    async def relay_once(self) -> int:
        moved = await super().relay_once()
        if moved and not self.inserted:
            self.inserted = True
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO outbox (topic, key, value) VALUES ($1, 'k', '{\"n\": 1}')",
                    self.topic,
                )
                await conn.execute("NOTIFY outbox")
            await asyncio.sleep(0.2)  # the notification reaches the listener
        return moved


async def test_a_row_committed_during_a_round_is_relayed_without_waiting_for_the_idle_poll(
    stack, schema
):
    """With one relay sending for all replicas, rows that others commit while it sends must not
    wait for its idle poll: the wake-up that came during a round calls for another round."""
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    topic = await new_topic(stack.kafka_bootstrap_servers, partitions=1)
    pool = await db.create_pool(stack.database_url, schema=schema, max_size=3)
    producer = new_producer(settings, client_id="wake")
    await producer.start()
    relay = RelayWithARowDuringItsRound(
        topic=topic,
        pool=pool,
        producer=producer,
        metrics=OutboxMetrics(CollectorRegistry()),
        idle_poll_seconds=30,
    )
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # listening
        await pool.execute(
            "INSERT INTO outbox (topic, key, value) VALUES ($1, 'k', '{\"n\": 0}')", topic
        )
        await pool.execute("NOTIFY outbox")
        await async_wait_for(lambda: relay.inserted, timeout=5, interval=0.05)
        await async_wait_for(
            lambda: pool.fetchval("SELECT count(*) = 0 FROM outbox"), timeout=3, interval=0.05
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await pool.close()


async def handled(pool: asyncpg.Pool, events: list[CloudEvent[Any]]) -> list[Any]:
    """The handler calls recorded for these events (the topic holds other tests' events too)."""
    return await pool.fetch(
        "SELECT event_id, member FROM handled WHERE event_id = ANY($1::text[])",
        [event.id for event in events],
    )


async def handled_all(pool: asyncpg.Pool, events: list[CloudEvent[Any]]) -> bool:
    return len({row["event_id"] for row in await handled(pool, events)}) == len(events)


class Member:
    """A handler that records which group member handled each event."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, conn: Any, topic: str, event: CloudEvent[Any]) -> None:
        await conn.execute("INSERT INTO handled VALUES ($1, $2)", event.id, self.name)


async def test_two_consumers_of_a_group_split_the_partitions_and_handle_each_event_once(
    stack, schema
):
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings)
    pool = await db.create_pool(stack.database_url, schema=schema)
    producer = new_producer(settings, client_id="group-test")
    await producer.start()
    simulator = CrmSimulator(seed=13)
    sites = [(f"site-group-{n}", f"Accueil {n}", "urssaf") for n in range(24)]
    events = [simulator.event(simulator.contact(site=sites[n % len(sites)])) for n in range(240)]
    consumers = [
        EventConsumer(
            settings=settings,
            group_id=f"g-{schema}",
            topics=[CRM_CONTACT_CLOSED],
            pool=pool,
            producer=producer,
            handler=Member(name),
            metrics=ConsumerMetrics(CollectorRegistry()),
        )
        for name in ("a", "b")
    ]
    tasks = [asyncio.create_task(consumer.run()) for consumer in consumers]
    try:
        # Half the stream before the second member joins, half after: a rebalance mid-stream.
        await consumers[0].joined.wait()
        await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events[:120])

        def split() -> bool:
            owned = [c.consumer.assignment() if c.consumer else set() for c in consumers]
            return all(owned) and not owned[0] & owned[1]

        await async_wait_for(split, timeout=30, interval=0.1)
        await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events[120:])
        await async_wait_for(lambda: handled_all(pool, events), timeout=30)
        await asyncio.sleep(1.0)  # a double would come now
        assert all(not task.done() for task in tasks), "a consumer stopped"
        owned = [c.consumer.assignment() for c in consumers if c.consumer]
        assert len(owned[0] | owned[1]) == CRM_CONTACT_CLOSED.partitions
        rows = await handled(pool, events)
        assert sorted(row["event_id"] for row in rows) == sorted(event.id for event in events)
        assert {row["member"] for row in rows} == {"a", "b"}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await pool.close()


class HeldMember(Member):
    """Holds its first batch's transaction open until told, as a slow batch would."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, conn: Any, topic: str, event: CloudEvent[Any]) -> None:
        if not self.holding.is_set():
            self.holding.set()
            await self.release.wait()
        await super().__call__(conn, topic, event)


async def test_a_member_whose_partitions_moved_during_its_batch_goes_on_and_nothing_is_doubled(
    stack, schema
):
    """A batch that ends after a rebalance took its partition away cannot commit its offset: the
    member goes on (its transaction is done; the new owner's inbox drops the repeat)."""
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings)
    pool = await db.create_pool(stack.database_url, schema=schema)
    producer = new_producer(settings, client_id="rebalance-test")
    await producer.start()
    simulator = CrmSimulator(seed=19)
    sites = [(f"site-moved-{n}", f"Accueil {n}", "urssaf") for n in range(24)]
    events = [simulator.event(simulator.contact(site=sites[n % len(sites)])) for n in range(120)]
    held = HeldMember("a")
    consumers = [
        EventConsumer(
            settings=settings,
            group_id=f"g-{schema}",
            topics=[CRM_CONTACT_CLOSED],
            pool=pool,
            producer=producer,
            handler=handler,
            metrics=ConsumerMetrics(CollectorRegistry()),
        )
        for handler in (held, Member("b"))
    ]
    tasks = [asyncio.create_task(consumers[0].run())]
    try:
        await consumers[0].joined.wait()
        await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events[:60])
        await asyncio.wait_for(held.holding.wait(), 20)
        tasks.append(asyncio.create_task(consumers[1].run()))
        await asyncio.wait_for(consumers[1].joined.wait(), 30)
        held.release.set()
        await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events[60:])
        await async_wait_for(lambda: handled_all(pool, events), timeout=30)
        await asyncio.sleep(1.0)  # a double would come now
        assert all(not task.done() for task in tasks), [t.exception() for t in tasks if t.done()]
        rows = await handled(pool, events)
        assert sorted(row["event_id"] for row in rows) == sorted(event.id for event in events)
    finally:
        held.release.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await pool.close()
