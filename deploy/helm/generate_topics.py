"""Write the chart's Kafka topic list from the contracts' topic registry.

    uv run python deploy/helm/generate_topics.py          # rewrite the file
    uv run python deploy/helm/generate_topics.py --check  # exit 1 if it is stale

The chart renders one Strimzi KafkaTopic per entry of `enquetes/files/kafka-topics.json`: every
topic of `contracts.topics.TOPICS` with its partitions, retention and compaction, and its
dead-letter topic `<name>.dlq` (one partition, never compacted, kept for the registry's
`dlq_retention_ms`: 3 days for a topic with personal data, whatever its own retention).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contracts.topics import TOPICS, all_topic_names

TOPICS_FILE = Path(__file__).resolve().parent / "enquetes" / "files" / "kafka-topics.json"
DLQ_PARTITIONS = 1


def _cleanup_policy(*, compacted: bool, retention_ms: int | None) -> str:
    if compacted and retention_ms is not None:
        return "compact,delete"
    return "compact" if compacted else "delete"


def topic_entries() -> list[dict[str, Any]]:
    """The registry as the chart reads it, DLQs included, in registry order."""
    entries: list[dict[str, Any]] = []
    for topic in TOPICS:
        entries.append(
            {
                "name": topic.name,
                "partitions": topic.partitions,
                "retentionMs": topic.retention_ms,
                "compacted": topic.compacted,
                "cleanupPolicy": _cleanup_policy(
                    compacted=topic.compacted, retention_ms=topic.retention_ms
                ),
                "dlqOf": None,
                "personalData": topic.personal_data,
            }
        )
        entries.append(
            {
                "name": topic.dlq_name,
                "partitions": DLQ_PARTITIONS,
                "retentionMs": topic.dlq_retention_ms,
                "compacted": False,
                "cleanupPolicy": "delete",
                "dlqOf": topic.name,
                "personalData": topic.personal_data,
            }
        )
    names = [entry["name"] for entry in entries]
    if sorted(names) != sorted(all_topic_names()):
        raise SystemExit(f"registry disagrees with all_topic_names(): {names}")
    return entries


def render() -> str:
    document = {
        "_generated": "by deploy/helm/generate_topics.py from contracts/topics.py; do not edit",
        "topics": topic_entries(),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    expected = render()
    current = TOPICS_FILE.read_text(encoding="utf-8") if TOPICS_FILE.exists() else ""
    if args.check:
        if current != expected:
            print(f"{TOPICS_FILE} is stale: run deploy/helm/generate_topics.py", file=sys.stderr)
            return 1
        return 0
    if current != expected:
        TOPICS_FILE.parent.mkdir(parents=True, exist_ok=True)
        TOPICS_FILE.write_text(expected, encoding="utf-8")
        print(f"wrote {TOPICS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
