"""What a dead-letter record may keep of the record that failed.

A DLQ keeps a failed record so a person can read why it failed and send it again after a fix.
For a topic that carries personal data (`Topic.personal_fields`), the copy keeps the event with
those fields removed, and never an error text that could quote them: the original stays on its
source topic, for that topic's short retention, at the offset the DLQ record names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from contracts.topics import Topic


@dataclass(frozen=True)
class DeadLetter:
    value: bytes
    detail: str
    headers: tuple[tuple[str, bytes], ...] = ()


def dead_letter(
    topic: Topic,
    value: bytes | None,
    headers: tuple[tuple[str, bytes], ...],
    *,
    detail: str,
    error_type: str | None = None,
) -> DeadLetter:
    """The DLQ copy of a record: as it was, or without personal fields for such topics.

    `detail` is the decoding reason (locations and rules, never input values) or, for a handler
    error, its message; `error_type` names the exception of a handler error, which alone is kept
    for a personal-data topic since a message may quote what the handler was looking at.
    """
    if not topic.personal_data:
        return DeadLetter(value or b"", detail)
    if error_type is not None:
        detail = f"{error_type} (message withheld: personal-data topic)"
    binary_mode = any(name.lower() == "ce_specversion" for name, _ in headers)
    redacted = _without_personal_fields(value, topic.personal_fields, binary_mode=binary_mode)
    if redacted is None:
        return DeadLetter(b"", detail, (("dlq-value-withheld", b"not a JSON object"),))
    fields = ",".join(topic.personal_fields).encode()
    return DeadLetter(redacted, detail, (("dlq-redacted", fields),))


def _without_personal_fields(
    value: bytes | None, fields: tuple[str, ...], *, binary_mode: bool
) -> bytes | None:
    try:
        document = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    data = document if binary_mode else document.get("data")
    if data is not None and not isinstance(data, dict):
        return None
    for field in fields:
        if data is not None:
            data.pop(field, None)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
