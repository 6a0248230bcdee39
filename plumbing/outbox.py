"""Transactional outbox: events are written in the handler's transaction, then relayed to Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, Counter, Gauge

from contracts.envelope import CloudEvent, encode
from plumbing.db import Connection
from plumbing.listener import Listener
from plumbing.tracing import stamped, stamped_all

log = logging.getLogger(__name__)
NOTIFY_CHANNEL = "outbox"
# One relay at a time per schema (advisory locks are per database, hence the schema in the key).
RELAY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('outbox-relay:' || current_schema()))"


async def enqueue(connection: Connection, *, topic: str, key: str, event: CloudEvent[Any]) -> None:
    """Stores the event (carrying the current trace context, see plumbing.tracing) for the relay."""
    await connection.execute(
        "INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)",
        topic,
        key.encode(),
        encode(stamped(event)),
    )
    await connection.execute(f"NOTIFY {NOTIFY_CHANNEL}")


async def enqueue_many(
    connection: Connection, rows: list[tuple[str, str, CloudEvent[Any]]]
) -> None:
    """Several (topic, key, event) rows in one statement, kept in the given order."""
    if not rows:
        return
    await connection.execute(
        "INSERT INTO outbox (topic, key, value) SELECT topic, key, value FROM "
        "unnest($1::text[], $2::bytea[], $3::bytea[]) WITH ORDINALITY AS r (topic, key, value, n) "
        "ORDER BY n",
        [topic for topic, _, _ in rows],
        [key.encode() for _, key, _ in rows],
        [encode(event) for event in stamped_all(event for _, _, event in rows)],
    )
    await connection.execute(f"NOTIFY {NOTIFY_CHANNEL}")


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.relayed = Counter(
            "outbox_events_relayed_total",
            "Events relayed from the outbox to Kafka",
            ["topic"],
            registry=registry,
        )
        self.oldest_age = Gauge(
            "outbox_oldest_event_age_seconds",
            "Age of the oldest event waiting in the outbox",
            registry=registry,
        )
        self.failures = Counter(
            "outbox_relay_failures_total",
            "Relay rounds that failed and will be retried",
            registry=registry,
        )


class OutboxRelay:
    """Moves outbox rows to Kafka; rows are deleted only after the broker acknowledged them.

    One relay of a schema sends at a time: a round runs under a transaction-level advisory lock
    (RELAY_LOCK), so two replicas never send rows of one key side by side, which could reorder
    them. The other replicas' relays try at each wake-up and stay standby; the lock ends with
    the holder's transaction, so a holder that dies (its connection gone) frees it at once.
    A crash after sending but before deleting re-sends: consumers dedupe by event id.
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        metrics: OutboxMetrics,
        batch_size: int = 1000,
        idle_poll_seconds: float = 1.0,
        linger_seconds: float = 0.0,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.metrics = metrics
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        # Woken by a NOTIFY, wait this long for more rows: under a steady flow of single-row
        # transactions, one relay round (and one produce request) per batch, not per row.
        self.linger_seconds = linger_seconds
        self._wake = asyncio.Event()
        # Re-opened by itself after a database restart; on each (re)open a relay round catches
        # up with the rows whose NOTIFY was missed meanwhile.
        self.listener = Listener(
            pool, {NOTIFY_CHANNEL: self._on_notify}, name="outbox", on_listening=self._wake.set
        )

    async def run(self) -> None:
        listening = asyncio.create_task(self.listener.run(), name="outbox-listener")
        try:
            while True:
                # Cleared before the round: a NOTIFY that comes during it calls for another.
                self._wake.clear()
                try:
                    moved = await self.relay_once()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                    self.metrics.failures.inc()
                    log.warning("outbox relay failed, retrying", extra={"error": str(error)})
                    await asyncio.sleep(1.0)
                    continue
                if moved < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.idle_poll_seconds)
                    if self.linger_seconds and self._wake.is_set():
                        await asyncio.sleep(self.linger_seconds)
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listening

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def relay_once(self) -> int:
        async with self.pool.acquire() as connection, connection.transaction():
            state = await connection.fetchrow(
                f"SELECT ({RELAY_LOCK}) AS sending, (SELECT extract(epoch FROM now() - created_at)"
                " FROM outbox ORDER BY id LIMIT 1) AS oldest"
            )
            assert state is not None
            self.metrics.oldest_age.set(float(state["oldest"] or 0))
            if not state["sending"]:
                return 0  # another replica's relay is sending
            rows = await connection.fetch(
                "SELECT id, topic, key, value FROM outbox ORDER BY id LIMIT $1 FOR UPDATE",
                self.batch_size,
            )
            if not rows:
                return 0
            pending = [
                await self.producer.send(row["topic"], row["value"], key=row["key"]) for row in rows
            ]
            await asyncio.gather(*pending)
            await connection.execute(
                "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [row["id"] for row in rows]
            )
        for row in rows:
            self.metrics.relayed.labels(row["topic"]).inc()
        return len(rows)
