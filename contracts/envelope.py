"""CloudEvents 1.0 envelope: structured JSON mode on the wire, binary mode accepted on read."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

DataT = TypeVar("DataT", bound=BaseModel)

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
SCHEMA_ID_PREFIX = "urn:enquetes:schema:"
"""`$id` of an event type's JSON Schema is this prefix and the type (see contracts.generate)."""
OUR_TYPE_PREFIX = "fr.enquetes."


# W3C Trace Context, version 00: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower
# case, the all-zero ids invalid. Carried by the CloudEvents distributed tracing extension.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
# W3C tracestate: at most 32 comma-separated `key=value` members of printable ASCII.
# A space may pad a member; tabs and other control characters are refused.
_TRACESTATE_MEMBER = re.compile(
    r"[a-z0-9][a-z0-9_\-*/@]{0,255}="
    r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
TRACESTATE_MAX_MEMBERS = 32


def is_traceparent(value: str) -> bool:
    """Whether `value` is a W3C `traceparent` of version 00 (ids not all zero)."""
    return _TRACEPARENT.fullmatch(value) is not None


def is_tracestate(value: str) -> bool:
    """Whether `value` is a W3C `tracestate`: at most 32 `key=value` members, printable ASCII."""
    members = [member for member in (part.strip(" ") for part in value.split(",")) if member]
    return len(members) <= TRACESTATE_MAX_MEMBERS and all(
        _TRACESTATE_MEMBER.fullmatch(member) for member in members
    )


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
    traceparent: str | None = Field(
        default=None,
        max_length=55,
        description="W3C Trace Context `traceparent` (CloudEvents distributed tracing extension).",
        json_schema_extra={"pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"},
    )
    tracestate: str | None = Field(
        default=None,
        max_length=512,
        description="W3C Trace Context `tracestate`, vendor-specific; only with a traceparent.",
    )
    data: DataT

    @field_validator("traceparent")
    @classmethod
    def _w3c_traceparent(cls, value: str | None) -> str | None:
        if value is not None and not is_traceparent(value):
            raise ValueError("not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>, lower case)")
        return value

    @field_validator("tracestate")
    @classmethod
    def _w3c_tracestate(cls, value: str | None) -> str | None:
        if value is not None and not is_tracestate(value):
            raise ValueError("not a W3C tracestate (key=value members of printable ASCII)")
        return value


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
