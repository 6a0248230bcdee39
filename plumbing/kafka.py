"""Kafka glue: producer, topic creation, decoding a record against the topic registry."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts.envelope import STRUCTURED_CONTENT_TYPE, CloudEvent, InvalidEvent, decode
from contracts.topics import TOPICS, Topic
from plumbing.settings import ServiceSettings

log = logging.getLogger(__name__)


Headers = list[tuple[str, bytes]]
CONTENT_TYPE_HEADER = ("content-type", STRUCTURED_CONTENT_TYPE.encode())


def cloudevents_headers(topic: str, headers: Headers | None) -> Headers | None:
    """The Kafka protocol binding's `content-type` header for a structured-mode event.

    Left as they are: records that already name their content type or are in binary mode
    (`ce_specversion`), and dead letters, which keep the failed record's own headers.
    """
    if topic.endswith(".dlq"):
        return headers
    present = {name.lower() for name, _ in headers or ()}
    if "content-type" in present or "ce_specversion" in present:
        return headers
    return [CONTENT_TYPE_HEADER, *(headers or ())]


class CloudEventsProducer(AIOKafkaProducer):  # type: ignore[misc]  # aiokafka is untyped
    """Every record it sends carries `content-type: application/cloudevents+json`."""

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> Any:
        return await super().send(
            topic, value, key, partition, timestamp_ms, cloudevents_headers(topic, headers)
        )


def new_producer(settings: ServiceSettings, *, client_id: str) -> AIOKafkaProducer:
    # Tansu has no idempotent producer: at-least-once plus the consumers' inbox instead.
    return CloudEventsProducer(
        client_id=client_id,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        **settings.kafka_client_options(),
    )


def _topic_config(topic: Topic) -> dict[str, str]:
    if topic.compacted:
        return {"cleanup.policy": "compact"}
    config = {"cleanup.policy": "delete"}
    if topic.retention_ms:
        config["retention.ms"] = str(topic.retention_ms)
    return config


def _dlq_config(topic: Topic) -> dict[str, str]:
    config = {"cleanup.policy": "delete"}
    if topic.dlq_retention_ms:
        config["retention.ms"] = str(topic.dlq_retention_ms)
    return config


async def ensure_topics(settings: ServiceSettings, topics: tuple[Topic, ...] = TOPICS) -> None:
    """Create every registry topic and its DLQ when missing (dev and tests; Strimzi in prod)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = []
        for topic in topics:
            if topic.name not in existing:
                wanted.append(
                    NewTopic(topic.name, topic.partitions, 1, topic_configs=_topic_config(topic))
                )
            if topic.dlq and topic.dlq_name not in existing:
                wanted.append(NewTopic(topic.dlq_name, 1, 1, topic_configs=_dlq_config(topic)))
        for new_topic in wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another service won the race
                await admin.create_topics([new_topic])
    finally:
        await admin.close()


def event_type_name(value: bytes | None, headers: dict[str, bytes]) -> str:
    if "ce_type" in headers:
        return headers["ce_type"].decode()
    if value is None:
        raise InvalidEvent("empty record (tombstone) where an event was expected")
    try:
        found = json.loads(value).get("type")
    except (ValueError, AttributeError) as error:
        raise InvalidEvent(f"not a JSON object: {str(error)[:200]}") from error
    if not isinstance(found, str):
        raise InvalidEvent("no CloudEvents `type` attribute")
    return found


def _binary_mode(headers: list[tuple[str, bytes]] | tuple[Any, ...] | None) -> bool:
    """Whether the record carries its attributes as headers (CloudEvents binary mode). Most
    records have no header: no map of them is built for those (a hot path, once per record)."""
    if not headers:
        return False
    return any(str(name).lower() == "ce_specversion" for name, _ in headers)


def decode_record(
    topic: Topic, value: bytes | None, headers: list[tuple[str, bytes]] | tuple[Any, ...]
) -> CloudEvent[Any]:
    """The event in a record, checked against the topic's registered types."""
    if len(topic.event_types) == 1 and value is not None and not _binary_mode(headers):
        # A topic with one event type, in structured mode: parse the bytes once, straight into
        # the model, instead of a first json.loads to read the type. Anything unexpected goes
        # the full way below, which gives the reason.
        only = topic.event_types[0]
        try:
            event = only.envelope.model_validate_json(value)
        except ValueError:
            pass
        else:
            if event.type == only.type:
                return event
    header_map = {str(name).lower(): bytes(raw) for name, raw in headers or ()}
    type_name = event_type_name(value, header_map)
    try:
        event_type = topic.event_type(type_name)
    except KeyError as error:
        raise InvalidEvent(str(error.args[0])) from error
    return decode(event_type.envelope, value, list(header_map.items()))
