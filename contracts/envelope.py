"""CloudEvents 1.0 envelope: structured JSON mode on the wire, binary mode accepted on read."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

DataT = TypeVar("DataT", bound=BaseModel)

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
SCHEMA_ID_PREFIX = "urn:enquetes:schema:"
"""`$id` of an event type's JSON Schema is this prefix and the type (see contracts.generate)."""
OUR_TYPE_PREFIX = "fr.enquetes."


def schema_id(event_type: str) -> str:
    return f"{SCHEMA_ID_PREFIX}{event_type}"


def _default_dataschema(attributes: dict[str, Any]) -> str | None:
    """Our event types point at their JSON Schema; any other type is left without one."""
    event_type = attributes.get("type")
    if isinstance(event_type, str) and event_type.startswith(OUR_TYPE_PREFIX):
        return schema_id(event_type)
    return None


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 envelope whose `data` is one of the event models."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=200, description="Unique per event; the inbox key.")
    source: str = Field(min_length=1, description="URI-reference of the emitting service.")
    type: str = Field(
        min_length=1, description="Reverse-DNS event type, e.g. fr.enquetes.contact.closed.v1"
    )
    time: AwareDatetime = Field(description="When the fact happened (event time, with offset).")
    subject: str | None = Field(default=None, description="The site the event is about.")
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = Field(
        default_factory=_default_dataschema,
        description="The event's JSON Schema `$id` (urn:enquetes:schema:<type>), set by default.",
    )
    data: DataT


class InvalidEvent(ValueError):
    """The bytes are not a valid event of the expected type; the reason is human-readable."""


def new_event_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


def encode(event: CloudEvent[Any]) -> bytes:
    """Structured-mode JSON, the form every producer of this project writes.

    Unset optional attributes of the envelope are left out; inside `data`, a null stays a null
    (a figure with no answers has `"value": null`, which is not the same as no value field).
    """
    attributes = event.model_dump(mode="json")
    envelope = {name: value for name, value in attributes.items() if value is not None}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def _binary_mode_dict(value: bytes, headers: dict[str, bytes]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        name.removeprefix("ce_"): raw.decode()
        for name, raw in headers.items()
        if name.startswith("ce_")
    }
    attributes["data"] = json.loads(value)
    return attributes


def decode(
    model: type[CloudEvent[Any]],
    value: bytes | None,
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...] = (),
) -> CloudEvent[Any]:
    """Parse a Kafka record into `model`, in structured or binary content mode."""
    if value is None:
        raise InvalidEvent("empty record (tombstone) where an event was expected")
    header_map = {name.lower(): raw for name, raw in headers}
    try:
        if "ce_specversion" in header_map:
            return model.model_validate(_binary_mode_dict(value, header_map))
        return model.model_validate_json(value)
    except json.JSONDecodeError as error:
        raise InvalidEvent(f"not JSON: {error}") from error
    except UnicodeDecodeError as error:
        raise InvalidEvent(f"not UTF-8: {error}") from error
    except ValueError as error:
        raise InvalidEvent(_short_reason(error)) from error


def _short_reason(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    parts = []
    for item in errors()[:5]:
        location = ".".join(str(part) for part in item.get("loc", ()))
        parts.append(f"{location}: {item.get('msg')}")
    return "; ".join(parts)
