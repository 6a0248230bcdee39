"""Generate JSON Schemas and the AsyncAPI 3.0 document from the models.

`python -m contracts.generate` rewrites `schemas/` and `asyncapi.yaml`;
`python -m contracts.generate --check` exits 1 when the committed files drift from the models.
AsyncAPI is written as JSON, which is valid YAML, so this module needs no YAML library.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from contracts.topics import TOPICS, EventType

HERE = Path(__file__).parent
SCHEMA_DIR = HERE / "schemas"
ASYNCAPI_PATH = HERE / "asyncapi.yaml"


def schema_file_name(event_type: EventType) -> str:
    return f"{event_type.type}.json"


def event_schema(event_type: EventType) -> dict[str, Any]:
    schema: dict[str, Any] = event_type.envelope.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:enquetes:schema:{event_type.type}"
    schema["title"] = event_type.type
    schema["description"] = event_type.summary
    schema["properties"]["type"] = {"const": event_type.type, "type": "string"}
    return schema


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in TOPICS:
        channel_id = topic.name.replace(".", "_").replace("-", "_")
        channel_messages = {}
        for event_type in topic.event_types:
            message_id = event_type.type.replace(".", "_").replace("-", "_")
            messages[message_id] = {
                "name": event_type.type,
                "summary": event_type.summary,
                "contentType": "application/cloudevents+json",
                "payload": {"$ref": f"schemas/{schema_file_name(event_type)}"},
            }
            channel_messages[message_id] = {"$ref": f"#/components/messages/{message_id}"}
        channels[channel_id] = {
            "address": topic.name,
            "description": topic.description,
            "messages": channel_messages,
            "bindings": {
                "kafka": {
                    "partitions": topic.partitions,
                    "topicConfiguration": {
                        "cleanup.policy": ["compact"] if topic.compacted else ["delete"],
                        **({"retention.ms": topic.retention_ms} if topic.retention_ms else {}),
                    },
                }
            },
            "x-owner": topic.owner,
            "x-consumers": list(topic.consumers),
            "x-key": topic.key,
            "x-dlq": topic.dlq_name,
            "x-dlq-retention-ms": topic.dlq_retention_ms,
            "x-personal-data": topic.personal_data,
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"{topic.owner} publishes",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Enquêtes à chaud: events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 on Kafka. Generated from contracts/.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def rendered_files() -> dict[Path, str]:
    files = {}
    for topic in TOPICS:
        for event_type in topic.event_types:
            path = SCHEMA_DIR / schema_file_name(event_type)
            files[path] = json.dumps(event_schema(event_type), indent=2, ensure_ascii=False) + "\n"
    files[ASYNCAPI_PATH] = json.dumps(asyncapi_document(), indent=2, ensure_ascii=False) + "\n"
    return files


def drifted_files() -> list[Path]:
    return [
        path
        for path, text in rendered_files().items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        drifted = drifted_files()
        for path in drifted:
            print(f"drift: {path.relative_to(HERE.parent)} (run: make contracts)")
        return 1 if drifted else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for path, text in rendered_files().items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
