"""Helpers for tests and benchmarks that talk to the real broker, database and mail sink."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.envelope import CloudEvent, encode
from plumbing.sinks import read_maildir

LINK = re.compile(r"https?://[^\s\"<>]+/s/([A-Za-z0-9_-]+)")


async def produce(
    bootstrap: str, topic: str, events: list[CloudEvent[Any]] | list[bytes], key: str = "k"
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        pending = []
        for event in events:
            value = event if isinstance(event, bytes) else encode(event)
            event_key = key if isinstance(event, bytes) else (event.subject or key)
            pending.append(await producer.send(topic, value, key=event_key.encode()))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, until: Callable[[list[Any]], bool], timeout: float = 30.0
) -> list[Any]:
    """Every record of a topic from the start (no consumer group: no 5 s join), until `until`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions or ())]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
            if until(records):
                return records
        raise TimeoutError(
            f"{topic}: condition not met after {timeout}s with {len(records)} records"
        )
    finally:
        await consumer.stop()


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


async def async_wait_for(
    check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


def survey_tokens(maildir: Path) -> list[str]:
    """Tokens of the survey links found in the mails, oldest first."""
    tokens = []
    for message in read_maildir(maildir):
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body else ""
        tokens.extend(LINK.findall(text))
    return tokens
