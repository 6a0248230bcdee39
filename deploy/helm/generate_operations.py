"""Write the chart's Kafka users and alert rules from their sources of truth.

    uv run python deploy/helm/generate_operations.py          # rewrite the files
    uv run python deploy/helm/generate_operations.py --check  # exit 1 if one is stale

- `enquetes/files/kafka-users.json`: one entry per service with the ACLs its Strimzi KafkaUser
  gets, derived from `contracts.topics.TOPICS`: a topic's owner may write it (and describe it);
  a consumer may read it (describe, read), read its consumer group (the service's name), and
  write the topic's dead-letter topic `<topic>.dlq`; a topic's writers are its owner and
  `also_written_by`.
- `enquetes/files/prometheus-rules.yml`: a copy of `deploy/prometheus/rules.yml` (the rules
  promtool checks and unit-tests), which the chart ships as a PrometheusRule: Helm can only read
  files inside the chart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contracts.topics import TOPICS

HELM_DIR = Path(__file__).resolve().parent
FILES = HELM_DIR / "enquetes" / "files"
USERS_FILE = FILES / "kafka-users.json"
RULES_SOURCE = HELM_DIR.parent / "prometheus" / "rules.yml"
RULES_FILE = FILES / "prometheus-rules.yml"
SERVICES = ("survey-dispatch", "responses", "scoring", "publication")


def _acl(kind: str, name: str, *operations: str) -> dict[str, Any]:
    return {
        "resource": {"type": kind, "name": name, "patternType": "literal"},
        "operations": list(operations),
        "host": "*",
    }


def access() -> dict[str, dict[str, set[str]]]:
    """Per service: the topics it reads and the topics it writes."""
    needs: dict[str, dict[str, set[str]]] = {
        service: {"read": set(), "write": set()} for service in SERVICES
    }
    for topic in TOPICS:
        for writer in (topic.owner, *topic.also_written_by):
            if writer in needs:
                needs[writer]["write"].add(topic.name)
        for consumer in topic.consumers:
            if consumer in needs:
                needs[consumer]["read"].add(topic.name)
    return needs


def user_entries() -> list[dict[str, Any]]:
    dlq_of = {topic.name: topic.dlq_name for topic in TOPICS if topic.dlq}
    entries = []
    for service, need in access().items():
        acls = []
        for name in sorted(need["read"]):
            acls.append(_acl("topic", name, "Describe", "Read"))
            if name in dlq_of:  # an invalid record goes to the topic's DLQ
                acls.append(_acl("topic", dlq_of[name], "Describe", "Write"))
        for name in sorted(need["write"]):
            acls.append(_acl("topic", name, "Describe", "Write"))
        if need["read"]:
            acls.append(_acl("group", service, "Describe", "Read"))  # group id = service name
        entries.append({"service": service, "acls": acls})
    return entries


def render_users() -> str:
    document = {
        "_generated": "by deploy/helm/generate_operations.py from contracts/topics.py; do not edit",
        "users": user_entries(),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_rules() -> str:
    header = "# Copied by deploy/helm/generate_operations.py from deploy/prometheus/rules.yml.\n"
    return header + RULES_SOURCE.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is stale")
    args = parser.parse_args(argv)
    stale = 0
    for path, expected in ((USERS_FILE, render_users()), (RULES_FILE, render_rules())):
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == expected:
            continue
        if args.check:
            print(f"{path} is stale: run deploy/helm/generate_operations.py", file=sys.stderr)
            stale = 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(expected, encoding="utf-8")
            print(f"wrote {path}")
    return stale


if __name__ == "__main__":
    raise SystemExit(main())
