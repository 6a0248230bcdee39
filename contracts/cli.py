"""`enquetes`: the command a CRM team uses to check, send and inspect events.

    enquetes validate FILE                      check JSON, JSON lines or CSV against the contract
    enquetes emit --bootstrap HOST:PORT FILE    send closed contacts to crm.contact.closed.v1
    enquetes tail TOPIC                         print the decoded events of a topic
    enquetes dlq list|show|redrive TOPIC        inspect a dead-letter topic, re-send after a fix

Only `validate` works without Kafka; the other commands need the `kafka` extra (aiokafka),
imported when they run. Errors are given in French and in English, one per field, without
quoting the values (a CRM record holds e-mails and phone numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from contracts.envelope import STRUCTURED_CONTENT_TYPE, CloudEvent, encode, utc_now
from contracts.events import NO_CONTROL_CHARACTERS
from contracts.topics import CONTACT_CLOSED, CRM_CONTACT_CLOSED, TOPICS, EventType, Topic

DEFAULT_SOURCE = "urn:enquetes:cli"
EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c52-2a43-4c1e-9d0a-6b5b0f9e4c11")
IDENTIFIER_PATTERN = r"^[A-Za-z0-9._:@/-]+$"
TRUE_WORDS = {"true", "1", "oui", "yes", "vrai"}
FALSE_WORDS = {"false", "0", "non", "no", "faux"}


# --- Problems, in French and English ------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field of one record, never quoting the value."""

    field: str
    french: str
    english: str


def _expected(context: dict[str, Any]) -> str:
    return str(context.get("expected", "")).replace(" or ", " ou ")


_FRENCH: dict[str, Callable[[dict[str, Any]], str]] = {
    "missing": lambda c: "champ obligatoire absent",
    "extra_forbidden": lambda c: "champ inconnu : le contrat ne le prévoit pas",
    "string_type": lambda c: "une chaîne de caractères est attendue",
    "string_too_short": lambda c: f"texte trop court ({c.get('min_length')} caractère(s) au moins)",
    "string_too_long": lambda c: f"texte trop long ({c.get('max_length')} caractères au plus)",
    "enum": lambda c: f"valeur non prévue ; valeurs permises : {_expected(c)}",
    "literal_error": lambda c: f"valeur non prévue ; attendu : {_expected(c)}",
    "timezone_aware": lambda c: "date et heure sans décalage horaire (ajoutez Z ou +02:00)",
    "datetime_type": lambda c: "date et heure ISO 8601 attendues (ex. 2024-05-02T14:30:00+02:00)",
    "datetime_parsing": lambda c: (
        "date et heure non valides (ISO 8601, ex. 2024-05-02T14:30:00+02:00)"
    ),
    "datetime_from_date_parsing": lambda c: (
        "date et heure non valides (ISO 8601, ex. 2024-05-02T14:30:00+02:00)"
    ),
    "date_parsing": lambda c: "date non valide (AAAA-MM-JJ)",
    "bool_type": lambda c: "booléen attendu (true ou false)",
    "bool_parsing": lambda c: "booléen attendu (true ou false)",
    "int_type": lambda c: "nombre entier attendu",
    "int_parsing": lambda c: "nombre entier attendu",
    "int_from_float": lambda c: "nombre entier attendu (sans décimales)",
    "float_type": lambda c: "nombre attendu",
    "float_parsing": lambda c: "nombre attendu",
    "model_type": lambda c: "objet JSON attendu",
    "model_attributes_type": lambda c: "objet JSON attendu",
    "dict_type": lambda c: "objet JSON attendu",
    "list_type": lambda c: "liste attendue",
    "too_short": lambda c: f"trop peu d'éléments ({c.get('min_length')} au moins)",
    "too_long": lambda c: f"trop d'éléments ({c.get('max_length')} au plus)",
    "greater_than_equal": lambda c: f"doit être supérieur ou égal à {c.get('ge')}",
    "less_than_equal": lambda c: f"doit être inférieur ou égal à {c.get('le')}",
    "json_invalid": lambda c: "JSON non valide",
}


def _pattern_problem(context: dict[str, Any]) -> tuple[str, str]:
    pattern = context.get("pattern")
    if pattern == NO_CONTROL_CHARACTERS:
        return (
            "caractère de contrôle interdit (retour à la ligne, tabulation, NUL...)",
            "control characters are not allowed (CR, LF, tab, NUL...)",
        )
    if pattern == IDENTIFIER_PATTERN:
        return (
            "identifiant non valide : lettres sans accent, chiffres et . _ : @ / - seulement",
            "invalid identifier: unaccented letters, digits and . _ : @ / - only",
        )
    return (f"format non valide (motif {pattern})", f"invalid format (pattern {pattern})")


def problems_of(error: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    found = []
    for item in error.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in (*prefix, *item["loc"])) or "(record)"
        context = dict(item.get("ctx") or {})
        kind = item["type"]
        english = item["msg"]
        if kind == "string_pattern_mismatch":
            french, english = _pattern_problem(context)
        elif kind in _FRENCH:
            french = _FRENCH[kind](context)
        else:
            french = "valeur refusée"
        found.append(Problem(location, french, english))
    return found


class Invalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.english}" for p in problems))
        self.problems = problems


# --- Reading records: JSON, JSON lines, CSV -----------------------------------------------------


@dataclass
class Record:
    """One record of an input file, where it was, and what it held (or why it could not be read)."""

    number: int
    unit: tuple[str, str]  # ("ligne", "line") or ("élément", "item")
    document: Any = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def where(self) -> str:
        french, english = self.unit
        return f"{french} {self.number} / {english} {self.number}"


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8-sig")


def read_records(path: str, file_format: str = "auto") -> list[Record]:
    text = _read_text(path)
    if file_format == "auto":
        file_format = "csv" if path.lower().endswith(".csv") else "json"
    if file_format == "csv":
        return list(_csv_records(text))
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError:
            pass
        else:
            return [Record(n, ("élément", "item"), item) for n, item in enumerate(items, 1)]
    return list(_json_lines(text))


def _json_lines(text: str) -> Iterator[Record]:
    lines = text.splitlines()
    if len(lines) > 1 and text.strip().startswith("{") and not _each_line_is_json(lines):
        try:  # one pretty-printed JSON object
            yield Record(1, ("élément", "item"), json.loads(text))
            return
        except ValueError:
            pass
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield Record(number, ("ligne", "line"), json.loads(line))
        except ValueError as error:
            yield Record(
                number,
                ("ligne", "line"),
                problems=[
                    Problem("(JSON)", f"JSON non valide : {error}", f"invalid JSON: {error}")
                ],
            )


def _each_line_is_json(lines: list[str]) -> bool:
    for line in lines:
        if line.strip():
            try:
                json.loads(line)
            except ValueError:
                return False
    return True


def _csv_records(text: str) -> Iterator[Record]:
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    for row in reader:
        number = reader.line_num
        if None in row:
            yield Record(
                number,
                ("ligne", "line"),
                problems=[
                    Problem(
                        "(CSV)",
                        "plus de cellules que de colonnes dans l'en-tête",
                        "more cells than header columns",
                    )
                ],
            )
            continue
        document: dict[str, Any] = {}
        for name, cell in row.items():
            name = (name or "").strip()
            value = (cell or "").strip()
            if not value:
                continue  # an empty cell is an absent optional field
            if name == "opted_out" and value.lower() in TRUE_WORDS | FALSE_WORDS:
                document[name] = value.lower() in TRUE_WORDS
            else:
                document[name] = value
        yield Record(number, ("ligne", "line"), document)


# --- Checking a record against the contract -----------------------------------------------------


def _all_event_types() -> dict[str, EventType]:
    return {event_type.type: event_type for topic in TOPICS for event_type in topic.event_types}


def check_event(document: Any, expected: EventType | None = None) -> CloudEvent[Any]:
    """A full CloudEvents envelope (has `specversion`) checked against the registry, or bare
    `data` of the expected type (ContactClosed by default) put into a new envelope."""
    if not isinstance(document, dict):
        raise Invalid(
            [Problem("(record)", "un objet JSON est attendu", "a JSON object is expected")]
        )
    if "specversion" in document:
        known = _all_event_types()
        type_name = document.get("type")
        event_type = known.get(type_name) if isinstance(type_name, str) else None
        if event_type is None or (expected is not None and event_type.type != expected.type):
            allowed = [expected.type] if expected else sorted(known)
            raise Invalid(
                [
                    Problem(
                        "type",
                        f"type d'événement inconnu ici ; attendu : {', '.join(allowed)}",
                        f"unknown event type here; expected: {', '.join(allowed)}",
                    )
                ]
            )
        try:
            return event_type.envelope.model_validate(document)
        except ValidationError as error:
            raise Invalid(problems_of(error)) from error
    event_type = expected or CONTACT_CLOSED
    try:
        data = event_type.model.model_validate(document)
    except ValidationError as error:
        raise Invalid(problems_of(error)) from error
    return wrap(event_type, data)


def wrap(event_type: EventType, data: Any, *, source: str = DEFAULT_SOURCE) -> CloudEvent[Any]:
    """A new envelope around `data`; for a closed contact, the event id is derived from the
    network and contact id, so sending the same file twice is deduplicated by survey-dispatch."""
    contact_id = getattr(data, "contact_id", None)
    network = getattr(data, "network", "")
    event_id = (
        str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{event_type.type}|{network}|{contact_id}"))
        if contact_id
        else str(uuid.uuid4())
    )
    at = getattr(data, "closed_at", None) or getattr(data, "raised_at", None)
    return event_type.envelope(
        id=event_id,
        source=source,
        type=event_type.type,
        time=at or utc_now(),
        subject=getattr(data, "site_id", None),
        data=data,
    )


@dataclass
class Checked:
    records: list[Record]
    events: list[tuple[Record, CloudEvent[Any]]]

    @property
    def invalid(self) -> list[Record]:
        return [record for record in self.records if record.problems]


def check_file(path: str, file_format: str, expected: EventType | None) -> Checked:
    records = read_records(path, file_format)
    events = []
    for record in records:
        if record.problems:
            continue
        try:
            events.append((record, check_event(record.document, expected)))
        except Invalid as invalid:
            record.problems = invalid.problems
    return Checked(records, events)


def report_problems(checked: Checked, out: TextIO) -> None:
    for record in checked.invalid:
        for problem in record.problems:
            print(f"{record.where}: {problem.field}", file=out)
            print(f"  fr : {problem.french}", file=out)
            print(f"  en : {problem.english}", file=out)


def _summary(checked: Checked) -> str:
    total, bad = len(checked.records), len(checked.invalid)
    return f"{total} enregistrement(s), {bad} invalide(s) / {total} record(s), {bad} invalid"


# --- Kafka --------------------------------------------------------------------------------------


def kafka_options(bootstrap: str | None) -> dict[str, Any]:
    """The broker address from --bootstrap or KAFKA_BOOTSTRAP_SERVERS; security from the same
    environment variables as the services (the password never on the command line)."""
    servers = bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        raise SystemExit(
            "enquetes: donnez --bootstrap HOST:PORT ou KAFKA_BOOTSTRAP_SERVERS / "
            "give --bootstrap HOST:PORT or KAFKA_BOOTSTRAP_SERVERS"
        )
    protocol = os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    options: dict[str, Any] = {"bootstrap_servers": servers, "security_protocol": protocol}
    if protocol in {"SSL", "SASL_SSL"}:
        import ssl

        options["ssl_context"] = ssl.create_default_context()
    mechanism = os.environ.get("KAFKA_SASL_MECHANISM")
    if mechanism:
        options["sasl_mechanism"] = mechanism
        options["sasl_plain_username"] = os.environ.get("KAFKA_SASL_USERNAME")
        options["sasl_plain_password"] = os.environ.get("KAFKA_SASL_PASSWORD")
    return options


def _aiokafka() -> Any:
    try:
        import aiokafka
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise SystemExit(
            "enquetes: cette commande a besoin de Kafka : pip install 'enquetes-contracts[kafka]'"
            " / this command needs Kafka: pip install 'enquetes-contracts[kafka]'"
        ) from error
    return aiokafka


def registry_topic(name: str) -> Topic:
    base = name.removesuffix(".dlq")
    for topic in TOPICS:
        if topic.name == base:
            return topic
    known = ", ".join(topic.name for topic in TOPICS)
    raise SystemExit(f"enquetes: topic inconnu / unknown topic {name!r} (known: {known})")


def content_type_headers(
    extra: tuple[tuple[str, bytes], ...] = (),
) -> list[tuple[str, bytes]]:
    """The Kafka protocol binding's header for a structured-mode CloudEvent."""
    return [("content-type", STRUCTURED_CONTENT_TYPE.encode()), *extra]


async def _produce(
    options: dict[str, Any], rows: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    aiokafka = _aiokafka()
    producer = aiokafka.AIOKafkaProducer(acks="all", linger_ms=5, **options)
    await producer.start()
    try:
        pending = [
            await producer.send(topic, value, key=key, headers=headers)
            for topic, key, value, headers in rows
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


@dataclass
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int


async def _read(
    options: dict[str, Any],
    topic: str,
    *,
    from_beginning: bool,
    max_records: int | None,
    idle_timeout: float | None,
    on_record: Callable[[KafkaRecord], bool],
    start: tuple[int, int] | None = None,
) -> None:
    """Read `topic` without a consumer group (no join delay, no offsets committed).

    `on_record` returns True for a record that counts towards `max_records`. Stops after
    `max_records`, or after `idle_timeout` seconds without a record.
    """
    aiokafka = _aiokafka()
    consumer = aiokafka.AIOKafkaConsumer(enable_auto_commit=False, **options)
    await consumer.start()
    try:
        deadline = time.monotonic() + 10
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise SystemExit(f"enquetes: topic introuvable / topic not found: {topic}")
        if start is not None:
            assigned = [aiokafka.TopicPartition(topic, start[0])]
            consumer.assign(assigned)
            consumer.seek(assigned[0], start[1])
        else:
            assigned = [aiokafka.TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            if from_beginning:
                await consumer.seek_to_beginning(*assigned)
            else:
                await consumer.seek_to_end(*assigned)
                for partition in assigned:  # the end as it is now: what comes next is shown
                    await consumer.position(partition)
                waiting = f"en attente des nouveaux événements de {topic}"
                print(f"enquetes: {waiting} / waiting for new events on {topic}",
                      file=sys.stderr, flush=True)  # fmt: skip
        counted = 0
        last_seen = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            records = sorted(
                (record for part in batch.values() for record in part),
                key=lambda r: (r.timestamp, r.partition, r.offset),
            )
            if records:
                last_seen = time.monotonic()
            for raw in records:
                record = KafkaRecord(
                    raw.topic, raw.partition, raw.offset, raw.key, raw.value,
                    [(str(name), bytes(value)) for name, value in raw.headers or ()],
                    raw.timestamp,
                )  # fmt: skip
                if on_record(record):
                    counted += 1
                    if max_records is not None and counted >= max_records:
                        return
            if idle_timeout is not None and time.monotonic() - last_seen > idle_timeout:
                return
    finally:
        await consumer.stop()


def decode_record(topic: Topic, record: KafkaRecord) -> CloudEvent[Any]:
    """The event in a record (structured or binary mode), checked against the topic's types."""
    headers = {name.lower(): value for name, value in record.headers}
    if record.value is None:
        raise Invalid([Problem("(record)", "enregistrement vide", "empty record (tombstone)")])
    if "ce_specversion" in headers:
        document: Any = {
            name.removeprefix("ce_"): value.decode()
            for name, value in headers.items()
            if name.startswith("ce_")
        }
        try:
            document["data"] = json.loads(record.value)
        except ValueError as error:
            raise Invalid([Problem("data", "JSON non valide", f"invalid JSON: {error}")]) from error
    else:
        try:
            document = json.loads(record.value)
        except ValueError as error:
            raise Invalid(
                [Problem("(record)", "JSON non valide", f"invalid JSON: {error}")]
            ) from error
    if not isinstance(document, dict) or "specversion" not in document:
        raise Invalid(
            [Problem("specversion", "pas un CloudEvent", "not a CloudEvent (no specversion)")]
        )
    type_name = document.get("type")
    if len(topic.event_types) == 1:
        return check_event(document, topic.event_types[0])
    for event_type in topic.event_types:
        if event_type.type == type_name:
            return check_event(document, event_type)
    return check_event(document, topic.event_types[0])  # reports the unknown type


def without_personal_fields(topic: Topic, document: dict[str, Any]) -> dict[str, Any]:
    data = document.get("data")
    if topic.personal_data and isinstance(data, dict):
        document = {**document, "data": {k: v for k, v in data.items()
                                         if k not in topic.personal_fields}}  # fmt: skip
    return document


# --- Commands -----------------------------------------------------------------------------------


def _expected_type(name: str | None) -> EventType | None:
    if name is None:
        return None
    known = _all_event_types()
    if name not in known:
        raise SystemExit(f"enquetes: type inconnu / unknown type {name!r}: {', '.join(known)}")
    return known[name]


def cmd_validate(args: argparse.Namespace) -> int:
    checked = check_file(args.file, args.format, _expected_type(args.type))
    report_problems(checked, sys.stdout)
    print(_summary(checked), file=sys.stderr)
    return 1 if checked.invalid else 0


def cmd_emit(args: argparse.Namespace) -> int:
    checked = check_file(args.file, args.format, CONTACT_CLOSED)
    if checked.invalid:
        report_problems(checked, sys.stdout)
        print(_summary(checked) + " — rien n'a été envoyé / nothing was sent", file=sys.stderr)
        return 1
    rows = []
    for _, event in checked.events:
        if args.source != DEFAULT_SOURCE and event.source == DEFAULT_SOURCE:
            event = event.model_copy(update={"source": args.source})
        rows.append(
            (CRM_CONTACT_CLOSED.name, event.data.site_id.encode(), encode(event),
             content_type_headers())
        )  # fmt: skip
    if not args.dry_run:
        asyncio.run(_produce(kafka_options(args.bootstrap), rows))
    verb = "à envoyer / to send" if args.dry_run else "envoyé(s) / sent"
    print(f"{len(rows)} événement(s) {verb} → {CRM_CONTACT_CLOSED.name}", file=sys.stderr)
    return 0


def _dump(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _headers_text(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode("utf-8", "replace") for name, value in headers}


def cmd_tail(args: argparse.Namespace) -> int:
    topic = registry_topic(args.topic)
    if args.topic.endswith(".dlq"):
        raise SystemExit("enquetes: pour une DLQ, utilisez / for a DLQ use: enquetes dlq list")
    bad = 0

    def show(record: KafkaRecord) -> bool:
        nonlocal bad
        try:
            event = decode_record(topic, record)
        except Invalid as invalid:
            bad += 1
            reason = "; ".join(f"{p.field}: {p.english}" for p in invalid.problems)
            print(f"{record.topic}[{record.partition}]@{record.offset}: invalid: {reason}",
                  file=sys.stderr)  # fmt: skip
            return False
        document = json.loads(encode(event))
        if not args.show_personal_data:
            document = without_personal_fields(topic, document)
        if args.meta:
            document = {
                "topic": record.topic, "partition": record.partition, "offset": record.offset,
                "key": record.key.decode("utf-8", "replace") if record.key else None,
                "headers": _headers_text(record.headers), "event": document,
            }  # fmt: skip
        print(_dump(document), flush=True)
        return True

    asyncio.run(
        _read(
            kafka_options(args.bootstrap), topic.name, from_beginning=args.from_beginning,
            max_records=args.max, idle_timeout=args.idle_timeout, on_record=show,
        )
    )  # fmt: skip
    return 0


def _dlq_summary(record: KafkaRecord) -> dict[str, Any]:
    headers = _headers_text(record.headers)
    summary: dict[str, Any] = {
        "dlq_offset": record.offset,
        "dlq_partition": record.partition,
        "reason": headers.get("dlq-reason"),
        "error": headers.get("dlq-error"),
        "original_topic": headers.get("dlq-original-topic"),
        "original_partition": _int(headers.get("dlq-original-partition")),
        "original_offset": _int(headers.get("dlq-original-offset")),
        "consumer_group": headers.get("dlq-consumer-group"),
    }
    if "dlq-redacted" in headers:
        summary["personal_fields_removed"] = headers["dlq-redacted"].split(",")
    try:
        document = json.loads(record.value or b"")
    except ValueError:
        document = None
    if isinstance(document, dict):
        summary["event_id"] = document.get("id", headers.get("ce_id"))
        summary["event_type"] = document.get("type", headers.get("ce_type"))
    return summary


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _dlq_records(args: argparse.Namespace, topic: Topic) -> list[KafkaRecord]:
    found: list[KafkaRecord] = []

    def keep(record: KafkaRecord) -> bool:
        found.append(record)
        return True

    asyncio.run(
        _read(
            kafka_options(args.bootstrap), topic.dlq_name, from_beginning=True, max_records=None,
            idle_timeout=args.idle_timeout, on_record=keep,
        )
    )  # fmt: skip
    return found


def cmd_dlq_list(args: argparse.Namespace) -> int:
    topic = registry_topic(args.topic)
    records = _dlq_records(args, topic)
    for record in records:
        summary = _dlq_summary(record)
        if args.json:
            print(_dump(summary))
        else:
            print(
                f"#{summary['dlq_offset']}  {summary['reason']}  "
                f"{summary['original_topic']}[{summary['original_partition']}]"
                f"@{summary['original_offset']}  id={summary.get('event_id')}  "
                f"{summary['error']}"
            )
    print(f"{len(records)} enregistrement(s) / record(s) in {topic.dlq_name}", file=sys.stderr)
    return 0


def _one_dlq_record(args: argparse.Namespace, topic: Topic, offset: int) -> KafkaRecord:
    found: list[KafkaRecord] = []

    def keep(record: KafkaRecord) -> bool:
        if record.offset == offset:
            found.append(record)
            return True
        return False

    asyncio.run(
        _read(
            kafka_options(args.bootstrap), topic.dlq_name, from_beginning=True, max_records=1,
            idle_timeout=args.idle_timeout, on_record=keep, start=(args.partition, offset),
        )
    )  # fmt: skip
    if not found:
        raise SystemExit(
            f"enquetes: pas d'enregistrement / no record at {topic.dlq_name}"
            f"[{args.partition}]@{offset}"
        )
    return found[0]


def cmd_dlq_show(args: argparse.Namespace) -> int:
    topic = registry_topic(args.topic)
    record = _one_dlq_record(args, topic, args.offset)
    summary = _dlq_summary(record)
    try:
        value: Any = json.loads(record.value or b"")
    except ValueError:
        value = (record.value or b"").decode("utf-8", "replace")
    document = {**summary, "headers": _headers_text(record.headers), "value": value}
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return 0


REDRIVE_HELP = (
    "Re-send chosen DLQ records (by DLQ offset) to the original topic after a fix. Each record is "
    "checked against the contract first; nothing is sent unless all are valid. Without --file "
    "the DLQ copy is re-sent as it is (for a record that failed in a handler, once the handler is "
    "fixed). With --file, the corrected records of FILE are sent instead, each matched to a "
    "chosen DLQ record by event id or contact_id. DLQ records of crm.contact.closed.v1 carry no "
    "personal fields by design (email, mobile_phone and user_ref are removed), so redriving them "
    "always takes the corrected records from --file (the CRM's own copy)."
)


def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    topic = registry_topic(args.topic)
    event_type = topic.event_types[0] if len(topic.event_types) == 1 else None
    letters = [_one_dlq_record(args, topic, offset) for offset in args.offsets]
    problems: list[str] = []
    chosen: list[tuple[KafkaRecord, CloudEvent[Any]]] = []
    if args.file:
        checked = check_file(args.file, args.format, event_type)
        if checked.invalid:
            report_problems(checked, sys.stdout)
            print(_summary(checked) + " — rien n'a été renvoyé / nothing was sent",
                  file=sys.stderr)  # fmt: skip
            return 1
        corrected = [event for _, event in checked.events]
        for letter in letters:
            match = _matching(letter, corrected)
            if match is None:
                problems.append(
                    f"#{letter.offset}: aucun enregistrement de {args.file} ne correspond "
                    f"(même id ou contact_id) / no record of {args.file} matches it "
                    "(same event id or contact_id)"
                )
            else:
                chosen.append((letter, match))
    elif topic.personal_data:
        print(
            f"enquetes: les enregistrements de {topic.dlq_name} n'ont pas de champs personnels "
            f"({', '.join(topic.personal_fields)}) : donnez les enregistrements corrigés avec "
            f"--file / {topic.dlq_name} records carry no personal fields by design: give the "
            "corrected records with --file",
            file=sys.stderr,
        )
        return 1
    else:
        for letter in letters:
            try:
                chosen.append((letter, decode_record(topic, letter)))
            except Invalid as invalid:
                reason = "; ".join(f"{p.field}: {p.french} / {p.english}" for p in invalid.problems)
                problems.append(
                    f"#{letter.offset}: toujours invalide, corrigez-le et donnez --file / "
                    f"still invalid, fix it and give --file: {reason}"
                )
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print("rien n'a été renvoyé / nothing was sent", file=sys.stderr)
        return 1
    rows = []
    for letter, event in chosen:
        key = letter.key or (event.subject or "").encode()
        origin = f"{topic.dlq_name}:{letter.partition}:{letter.offset}".encode()
        rows.append(
            (topic.name, key, encode(event), content_type_headers((("dlq-redriven-from", origin),)))
        )
    if not args.dry_run:
        asyncio.run(_produce(kafka_options(args.bootstrap), rows))
    verb = "à renvoyer / to send" if args.dry_run else "renvoyé(s) / sent"
    print(f"{len(rows)} événement(s) {verb} → {topic.name}", file=sys.stderr)
    return 0


def _matching(letter: KafkaRecord, corrected: list[CloudEvent[Any]]) -> CloudEvent[Any] | None:
    try:
        kept = json.loads(letter.value or b"")
    except ValueError:
        kept = None
    if not isinstance(kept, dict):
        return None
    data = kept.get("data")
    data = data if isinstance(data, dict) else {}
    for event in corrected:
        if event.id == kept.get("id"):
            return event
        contact_id = getattr(event.data, "contact_id", None)
        if contact_id is not None and contact_id == data.get("contact_id"):
            # Bare corrected data: keep the original event's identity, so a repeat is deduped.
            if event.source == DEFAULT_SOURCE and isinstance(kept.get("id"), str):
                update = {"id": kept["id"], "source": kept.get("source") or event.source}
                return event.model_copy(update=update)
            return event
    return None


# --- Command line -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="enquetes",
        description="Check, send and inspect the events of Enquêtes à chaud "
        "(vérifier, envoyer et inspecter les événements).",
    )
    commands = main.add_subparsers(dest="command", required=True)

    def kafka(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--bootstrap",
            help="HOST:PORT[,HOST:PORT] (default: $KAFKA_BOOTSTRAP_SERVERS; security from "
            "$KAFKA_SECURITY_PROTOCOL, $KAFKA_SASL_MECHANISM, $KAFKA_SASL_USERNAME, "
            "$KAFKA_SASL_PASSWORD)",
        )

    def file_format(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--format", choices=["auto", "json", "csv"], default="auto",
            help="json: JSON, a JSON array or JSON lines; csv: see README (auto: by extension)",
        )  # fmt: skip

    validate = commands.add_parser(
        "validate",
        help="check a file of events or contacts against the contract",
        description="Check JSON, JSON lines or CSV records: full CloudEvents of any of our types, "
        "or bare `data` (a closed contact unless --type). Exit 1 if any record is invalid.",
    )
    validate.add_argument("file", help="path, or - for standard input")
    validate.add_argument("--type", help="event type of bare data records (default: contact)")
    file_format(validate)
    validate.set_defaults(run=cmd_validate)

    emit = commands.add_parser(
        "emit",
        help="send closed contacts to crm.contact.closed.v1",
        description="Send closed contacts (JSON lines of ContactClosed data or full CloudEvents, "
        "or a CSV with the documented header) to crm.contact.closed.v1, keyed by site_id. Every "
        "record is checked first; nothing is sent if one is invalid. Bare data get an event id "
        "derived from network and contact_id: sending a file twice surveys nobody twice.",
    )
    emit.add_argument("file")
    emit.add_argument("--source", default=DEFAULT_SOURCE, help="CloudEvents source of bare data")
    emit.add_argument("--dry-run", action="store_true", help="check, do not send")
    kafka(emit)
    file_format(emit)
    emit.set_defaults(run=cmd_emit)

    tail = commands.add_parser(
        "tail",
        help="print the decoded events of a topic, one JSON per line",
        description="Print decoded events, one JSON per line (undecodable records on stderr). "
        "Personal fields of crm.contact.closed.v1 are left out unless --show-personal-data.",
    )
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, help="stop after N events")
    tail.add_argument("--idle-timeout", type=float, help="stop after S seconds without a record")
    tail.add_argument("--meta", action="store_true", help="wrap with partition, offset, headers")
    tail.add_argument("--show-personal-data", action="store_true")
    kafka(tail)
    tail.set_defaults(run=cmd_tail)

    dlq = commands.add_parser("dlq", help="inspect a dead-letter topic, re-send after a fix")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)

    def dlq_common(command: argparse.ArgumentParser) -> None:
        command.add_argument("topic", help="the topic (or its .dlq)")
        command.add_argument(
            "--idle-timeout", type=float, default=2.0,
            help="seconds without a record that end the read (default 2)",
        )  # fmt: skip
        command.add_argument("--partition", type=int, default=0, help="DLQ partition (0)")
        kafka(command)

    listing = dlq_commands.add_parser(
        "list", help="every dead letter with its reason, error and original offset"
    )
    dlq_common(listing)
    listing.add_argument("--json", action="store_true", help="one JSON per line")
    listing.set_defaults(run=cmd_dlq_list)

    show = dlq_commands.add_parser("show", help="one dead letter, headers and value")
    dlq_common(show)
    show.add_argument("offset", type=int, help="offset in the DLQ (see dlq list)")
    show.set_defaults(run=cmd_dlq_show)

    redrive = dlq_commands.add_parser(
        "redrive", help="re-send chosen dead letters after a fix", description=REDRIVE_HELP
    )
    dlq_common(redrive)
    redrive.add_argument("offsets", type=int, nargs="+", help="offsets in the DLQ")
    redrive.add_argument("--file", help="corrected records (JSON lines, JSON or CSV)")
    redrive.add_argument("--dry-run", action="store_true", help="check, do not send")
    file_format(redrive)
    redrive.set_defaults(run=cmd_dlq_redrive)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.run(args)
    return result


def run() -> None:
    """Console script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
