"""`enquetes emit|tail|dlq` and the call-back example against the real broker (Tansu), and the
content-type header and dataschema of the records our services produce."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from contracts.envelope import CloudEvent, encode
from contracts.events import DetractorAlert, DetractorReason
from contracts.generate import event_schema
from contracts.topics import CONTACT_CLOSED, CRM_CONTACT_CLOSED, DETRACTOR_ALERT, SCORING_ALERT
from plumbing import db
from plumbing.consumer import ConsumerMetrics, EventConsumer
from plumbing.kafka import ensure_topics, new_producer
from plumbing.outbox import OutboxMetrics, OutboxRelay, enqueue
from plumbing.settings import ServiceSettings
from plumbing.testing import async_wait_for, produce, read_topic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
CONTENT_TYPE = b"application/cloudevents+json; charset=utf-8"


def _contact(contact_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "closed_at": "2026-05-02T14:30:00+02:00",
        "site_id": "urssaf-75-01",
        "network": "urssaf",
        "channel": "telephone",
        "motif": "cotisations",
        "user_ref": f"u-{contact_id}",
        "email": f"{contact_id}@example.org",
        **changes,
    }


async def _cli(*argv: str, program: str = "contracts.cli") -> subprocess.CompletedProcess[str]:
    """The command as a CRM team runs it: its own process."""
    command = [sys.executable, "-m", program, *argv]
    if program.endswith(".py"):
        command = [sys.executable, program, *argv]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120, cwd=ROOT
    )


@pytest.fixture(scope="module")
async def topics(stack):
    await ensure_topics(ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers))
    return stack.kafka_bootstrap_servers


async def test_emit_then_tail_round_trip_keyed_by_site_with_content_type_and_dataschema(
    topics, tmp_path
):
    run = uuid.uuid4().hex[:8]
    jsonl = tmp_path / "contacts.jsonl"
    jsonl.write_text(json.dumps(_contact(f"j-{run}")) + "\n")
    table = tmp_path / "contacts.csv"
    table.write_text(
        "contact_id;closed_at;site_id;network;channel;motif;user_ref;email;opted_out\n"
        f"c-{run};2026-05-02T15:00:00+02:00;urssaf-13;urssaf;courriel;m;u-1;x@example.org;non\n"
    )

    for path in (jsonl, table):
        sent = await _cli("emit", "--bootstrap", topics, str(path))
        assert sent.returncode == 0, sent.stderr
        assert "1 événement(s) envoyé(s) / sent → crm.contact.closed.v1" in sent.stderr

    records = await read_topic(
        topics,
        CRM_CONTACT_CLOSED.name,
        until=lambda rs: sum(run in (r.value or b"").decode() for r in rs) == 2,
    )
    ours = [r for r in records if run.encode() in r.value]
    assert sorted(r.key for r in ours) == [b"urssaf-13", b"urssaf-75-01"]
    for record in ours:
        assert dict(record.headers)["content-type"] == CONTENT_TYPE
        assert json.loads(record.value)["dataschema"] == event_schema(CONTACT_CLOSED)["$id"]

    tail = await _cli(
        "tail",
        CRM_CONTACT_CLOSED.name,
        "--bootstrap",
        topics,
        "--from-beginning",
        "--idle-timeout",
        "2",
        "--meta",
    )
    assert tail.returncode == 0, tail.stderr
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    mine = {
        line["event"]["data"]["contact_id"]: line
        for line in lines
        if run in line["event"]["data"]["contact_id"]
    }
    assert set(mine) == {f"j-{run}", f"c-{run}"}
    assert mine[f"c-{run}"]["key"] == "urssaf-13"
    assert mine[f"c-{run}"]["headers"]["content-type"].startswith("application/cloudevents+json")
    # Personal fields stay out of a terminal unless asked for.
    assert "example.org" not in tail.stdout and "user_ref" not in tail.stdout

    last = await _cli(
        "tail",
        CRM_CONTACT_CLOSED.name,
        "--bootstrap",
        topics,
        "--from-beginning",
        "--max",
        "1",
        "--show-personal-data",
    )
    assert last.returncode == 0, last.stderr
    (event,) = [json.loads(line) for line in last.stdout.splitlines()]
    assert event["type"] == CONTACT_CLOSED.type and "user_ref" in event["data"]


async def test_records_relayed_by_the_outbox_carry_content_type_and_dataschema(stack, topics):
    schema = f"t_{uuid.uuid4().hex[:10]}"
    alert = _alert(f"alr-{uuid.uuid4().hex[:8]}")
    async with _relayed(stack, schema, [(SCORING_ALERT.name, alert)]):
        records = await read_topic(
            topics,
            SCORING_ALERT.name,
            until=lambda rs: any(alert.id.encode() in r.value for r in rs),
        )
    (record,) = [r for r in records if alert.id.encode() in r.value]
    assert dict(record.headers)["content-type"] == CONTENT_TYPE
    assert (
        json.loads(record.value)["dataschema"]
        == "urn:enquetes:schema:fr.enquetes.detractor.alert.v1"
    )
    assert record.key == b"urssaf-75-01"


def _alert(alert_id: str) -> CloudEvent[Any]:
    data = DetractorAlert(
        alert_id=alert_id,
        invitation_id=f"inv-{alert_id}",
        contact_id=f"crm-{alert_id}",
        site_id="urssaf-75-01",
        network="urssaf",
        reasons=[DetractorReason.LOW_RECOMMENDATION],
        answers={"recommandation": 2, "satisfaction_globale": 3, "recontact": "oui"},
        raised_at=datetime(2026, 11, 20, 10, 10, tzinfo=UTC),
    )
    return DETRACTOR_ALERT.envelope(
        id=str(uuid.uuid4()),
        source="urn:test",
        type=DETRACTOR_ALERT.type,
        time=data.raised_at,
        subject=data.site_id,
        data=data,
    )


@contextlib.asynccontextmanager
async def _relayed(
    stack, schema: str, rows: list[tuple[str, CloudEvent[Any]]]
) -> AsyncIterator[None]:
    """`rows` enqueued in an outbox and relayed by the services' relay and producer."""
    migrations = Path(stack.workdir) / f"none-{schema}"
    migrations.mkdir()
    await db.migrate(stack.database_url, schema=schema, migrations_dir=migrations)
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    pool = await db.create_pool(stack.database_url, schema=schema)
    producer = new_producer(settings, client_id="cli-test")
    await producer.start()
    try:
        async with pool.acquire() as conn, conn.transaction():
            for topic, event in rows:
                await enqueue(conn, topic=topic, key=event.subject or "", event=event)
        relay = OutboxRelay(
            pool=pool, producer=producer, metrics=OutboxMetrics(CollectorRegistry())
        )
        assert await relay.relay_once() == len(rows)
        yield
    finally:
        await producer.stop()
        await pool.close()


async def test_callback_example_queues_a_relayed_alert_once(stack, topics, tmp_path):
    schema = f"t_{uuid.uuid4().hex[:10]}"
    alert = _alert(f"alr-{uuid.uuid4().hex[:8]}")
    queue = tmp_path / "callbacks.sqlite3"
    example = str(ROOT / "examples" / "callback_queue.py")
    async with _relayed(stack, schema, [(SCORING_ALERT.name, alert)]):
        pass
    first = await _cli(
        "consume",
        "--bootstrap",
        topics,
        "--db",
        str(queue),
        "--from-beginning",
        "--idle-timeout",
        "3",
        program=example,
    )
    assert first.returncode == 0, first.stderr
    line = next(s for s in first.stdout.splitlines() if alert.data.alert_id in s)
    assert line.startswith(f"À rappeler : contact {alert.data.contact_id} (site urssaf-75-01")
    assert "ne recommanderait pas le service" in line
    assert "recommandation=2" in line and "recontact=oui" in line

    # The same alert delivered again (at least once) and a second run: queued once.
    await produce(topics, SCORING_ALERT.name, [alert])
    again = await _cli(
        "consume", "--bootstrap", topics, "--db", str(queue), "--idle-timeout", "3", program=example
    )
    assert again.returncode == 0, again.stderr
    assert alert.data.alert_id not in again.stdout
    with contextlib.closing(sqlite3.connect(queue)) as connection:
        count = connection.execute(
            "SELECT count(*) FROM callbacks WHERE alert_id = ?", (alert.data.alert_id,)
        ).fetchone()
    assert count == (1,)
    listed = await _cli("list", "--db", str(queue), program=example)
    assert alert.data.contact_id in listed.stdout


class _Seen:
    async def __call__(self, conn: Any, topic: str, event: CloudEvent[Any]) -> None:
        await conn.execute(
            "INSERT INTO seen VALUES ($1, $2)", event.data.contact_id, event.data.channel.value
        )


async def test_dlq_list_show_and_redrive_of_a_crm_contact_from_the_corrected_file(
    stack, topics, tmp_path
):
    schema = f"t_{uuid.uuid4().hex[:10]}"
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_seen.sql").write_text(
        "CREATE TABLE seen (contact_id text PRIMARY KEY, channel text NOT NULL);"
    )
    await db.migrate(stack.database_url, schema=schema, migrations_dir=migrations)
    settings = ServiceSettings(kafka_bootstrap_servers=topics)
    run = uuid.uuid4().hex[:8]
    broken = _contact(f"bad-{run}", channel="pigeon_voyageur")
    event_id = f"evt-{run}"
    value = json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "urn:crm",
            "type": CONTACT_CLOSED.type,
            "time": broken["closed_at"],
            "subject": broken["site_id"],
            "data": broken,
        }
    ).encode()
    pool = await db.create_pool(stack.database_url, schema=schema)
    producer = new_producer(settings, client_id="dlq-test")
    await producer.start()
    consumer = EventConsumer(
        settings=settings,
        group_id=f"g-{schema}",
        topics=[CRM_CONTACT_CLOSED],
        pool=pool,
        producer=producer,
        handler=_Seen(),
        metrics=ConsumerMetrics(CollectorRegistry()),
    )
    task = asyncio.create_task(consumer.run())
    try:
        await produce(topics, CRM_CONTACT_CLOSED.name, [value], key=broken["site_id"])
        dead = await read_topic(
            topics,
            CRM_CONTACT_CLOSED.dlq_name,
            until=lambda rs: any(run.encode() in r.value for r in rs),
            timeout=60,
        )
        (letter,) = [r for r in dead if run.encode() in r.value]

        listed = await _cli("dlq", "list", CRM_CONTACT_CLOSED.name, "--bootstrap", topics, "--json")
        assert listed.returncode == 0, listed.stderr
        entries = [json.loads(line) for line in listed.stdout.splitlines()]
        (entry,) = [e for e in entries if e.get("event_id") == event_id]
        assert entry["dlq_offset"] == letter.offset
        assert entry["reason"] == "invalid_event"
        assert "data.channel" in entry["error"]
        assert entry["original_topic"] == CRM_CONTACT_CLOSED.name
        assert isinstance(entry["original_offset"], int)
        assert entry["personal_fields_removed"] == ["email", "mobile_phone", "user_ref"]
        human = await _cli("dlq", "list", CRM_CONTACT_CLOSED.name, "--bootstrap", topics)
        assert f"#{letter.offset}  invalid_event  crm.contact.closed.v1[" in human.stdout

        shown = await _cli(
            "dlq",
            "show",
            f"{CRM_CONTACT_CLOSED.name}.dlq",
            str(letter.offset),
            "--bootstrap",
            topics,
        )
        assert shown.returncode == 0, shown.stderr
        document = json.loads(shown.stdout)
        assert document["value"]["data"]["contact_id"] == broken["contact_id"]
        assert "example.org" not in shown.stdout and "user_ref" not in document["value"]["data"]

        refused = await _cli(
            "dlq", "redrive", CRM_CONTACT_CLOSED.name, str(letter.offset), "--bootstrap", topics
        )
        assert refused.returncode == 1
        assert "--file" in refused.stderr and "no personal fields" in refused.stderr

        still_wrong = tmp_path / "still_wrong.jsonl"
        still_wrong.write_text(json.dumps({**broken, "channel": "fax"}) + "\n")
        wrong = await _cli(
            "dlq",
            "redrive",
            CRM_CONTACT_CLOSED.name,
            str(letter.offset),
            "--bootstrap",
            topics,
            "--file",
            str(still_wrong),
        )
        assert wrong.returncode == 1 and "channel" in wrong.stdout

        fixed = tmp_path / "fixed.jsonl"
        fixed.write_text(json.dumps({**broken, "channel": "courrier"}) + "\n")
        redriven = await _cli(
            "dlq",
            "redrive",
            CRM_CONTACT_CLOSED.name,
            str(letter.offset),
            "--bootstrap",
            topics,
            "--file",
            str(fixed),
        )
        assert redriven.returncode == 0, redriven.stderr + redriven.stdout
        assert "1 événement(s) renvoyé(s) / sent → crm.contact.closed.v1" in redriven.stderr

        async def handled() -> Any:
            return await pool.fetchval(
                "SELECT channel FROM seen WHERE contact_id = $1", broken["contact_id"]
            )

        assert await async_wait_for(handled, timeout=60) == "courrier"
        records = await read_topic(
            topics,
            CRM_CONTACT_CLOSED.name,
            until=lambda rs: any(
                "dlq-redriven-from" in dict(r.headers) for r in rs if run.encode() in r.value
            ),
        )
        (again,) = [
            r for r in records if run.encode() in r.value and "dlq-redriven-from" in dict(r.headers)
        ]
        assert json.loads(again.value)["id"] == event_id  # the CRM's event, its identity kept
        assert dict(again.headers)["content-type"] == CONTENT_TYPE
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await pool.close()


async def test_dlq_redrive_as_is_refuses_a_record_still_invalid_and_resends_a_valid_one(topics):
    """A topic without personal data: the DLQ copy itself is re-sent, once it passes the contract
    (a record that failed in a handler, now fixed); one still invalid is refused."""
    run = uuid.uuid4().hex[:8]
    good = _alert(f"alr-{run}")
    bad = json.loads(encode(good))
    bad["data"]["answers"]["suggestion"] = ["free text never travels"]
    headers = [
        ("dlq-reason", b"handler_error"),
        ("dlq-original-topic", SCORING_ALERT.name.encode()),
    ]
    aioproducer = new_producer(ServiceSettings(kafka_bootstrap_servers=topics), client_id="t")
    await aioproducer.start()
    try:
        first = await aioproducer.send_and_wait(
            SCORING_ALERT.dlq_name, encode(good), key=b"urssaf-75-01", headers=headers
        )
        second = await aioproducer.send_and_wait(
            SCORING_ALERT.dlq_name, json.dumps(bad).encode(), key=b"urssaf-75-01", headers=headers
        )
    finally:
        await aioproducer.stop()

    refused = await _cli(
        "dlq",
        "redrive",
        SCORING_ALERT.name,
        str(first.offset),
        str(second.offset),
        "--bootstrap",
        topics,
    )
    assert refused.returncode == 1
    assert f"#{second.offset}: toujours invalide" in refused.stderr
    assert "nothing was sent" in refused.stderr

    sent = await _cli(
        "dlq", "redrive", SCORING_ALERT.name, str(first.offset), "--bootstrap", topics
    )
    assert sent.returncode == 0, sent.stderr
    records = await read_topic(
        topics,
        SCORING_ALERT.name,
        until=lambda rs: any(
            "dlq-redriven-from" in dict(r.headers) and run.encode() in r.value for r in rs
        ),
    )
    redriven = [r for r in records if run.encode() in r.value]
    assert len(redriven) == 1
    assert json.loads(redriven[0].value)["id"] == good.id
    assert (
        dict(redriven[0].headers)["dlq-redriven-from"]
        == f"{SCORING_ALERT.dlq_name}:0:{first.offset}".encode()
    )


def test_the_content_type_header_leaves_binary_mode_named_types_and_dead_letters_alone():
    from plumbing.kafka import cloudevents_headers

    structured = cloudevents_headers(SCORING_ALERT.name, None)
    assert structured == [("content-type", CONTENT_TYPE)]
    assert cloudevents_headers(SCORING_ALERT.name, [("trace", b"1")]) == [
        ("content-type", CONTENT_TYPE),
        ("trace", b"1"),
    ]
    binary = [("ce_specversion", b"1.0"), ("ce_type", DETRACTOR_ALERT.type.encode())]
    assert cloudevents_headers(SCORING_ALERT.name, binary) == binary
    named = [("Content-Type", b"application/json")]
    assert cloudevents_headers(SCORING_ALERT.name, named) == named
    letter = [("dlq-reason", b"invalid_event")]
    assert cloudevents_headers(SCORING_ALERT.dlq_name, letter) == letter


async def test_tail_without_from_beginning_follows_only_new_events(topics):
    run = uuid.uuid4().hex[:8]
    old, new = _alert(f"old-{run}"), _alert(f"new-{run}")
    await produce(topics, SCORING_ALERT.name, [old])
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "contracts.cli", "tail", SCORING_ALERT.name, "--bootstrap", topics,
        "--max", "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        assert follower.stderr is not None
        # It says when it follows from the end (a fixed sleep lost the race on a busy machine).
        waiting = await asyncio.wait_for(follower.stderr.readline(), timeout=60)
        assert b"waiting for new events on " + SCORING_ALERT.name.encode() in waiting
        await produce(topics, SCORING_ALERT.name, [new])
        out, err = await asyncio.wait_for(follower.communicate(), timeout=60)
    finally:
        if follower.returncode is None:
            follower.kill()
    assert follower.returncode == 0, err
    (event,) = [json.loads(line) for line in out.decode().splitlines()]
    assert event["id"] == new.id and event["data"]["alert_id"] == new.data.alert_id
