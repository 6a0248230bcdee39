"""Where personal data may be, after the whole path has run (issue #12, « Proven by »).

The path: contacts by e-mail and SMS, an invalid contact, a relay that refuses an address
quoting it, a survey answered with a phone number and an e-mail typed in the free text, then
an erasure request. Afterwards no e-mail address, phone number or raw user reference of those
users may appear in any topic but `crm.contact.closed.v1`, in any dead-letter topic, in any table
outside survey-dispatch's own (nor, there, in a column other than a contact point), nor in any
log line; and nothing of the erased user may be left in a table.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.envelope import encode
from contracts.events import SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED, SURVEY_CONTACT, SURVEY_INVITATION
from plumbing.auth import NETWORK_ADMIN, bearer
from plumbing.crm_simulator import SITES, CrmSimulator
from plumbing.sinks import read_maildir
from plumbing.testing import LINK, async_wait_for, produce, read_topic

pytestmark = pytest.mark.e2e

MARK = uuid.uuid4().hex[:8]
PHONE_DIGITS = f"6{int(MARK, 16) % 10**8:08d}"  # a French mobile: +33 6xx xx xx xx
TYPED_PHONE = f"07 {MARK[:2].translate(str.maketrans('abcdef', '123456'))} 11 22 33"
CONTACT_POINT_COLUMN = re.compile(r"email|phone|address|recipient|contact_point", re.I)


def markers() -> dict[str, str]:
    """What must not leak, by name: e-mail local parts, phone digits, CRM user references."""
    return {
        "email": f"scan.{MARK}",
        "refused email": f"refuse.{MARK}",
        "erased email": f"efface.{MARK}",
        "phone": PHONE_DIGITS[1:],  # whatever the format, the last 8 digits are contiguous
        "user reference": f"usager-scan-{MARK}",
        "typed e-mail": f"perso.{MARK}",
        "typed phone": TYPED_PHONE.replace(" ", "")[2:],
    }


def found_in(text: str) -> set[str]:
    flat = text.replace(" ", "").replace(".", "").replace("-", "")
    return {
        name
        for name, marker in markers().items()
        if marker in text or (name.endswith("phone") and marker in flat)
    }


async def test_no_personal_data_outside_survey_dispatch(stack, admin_system, issuer):
    local, _ = issuer
    simulator = CrmSimulator(seed=41)
    site_id = SITES[0][0]

    def contact(user: str, **update):
        base = simulator.contact(site=SITES[0])
        return simulator.event(base.model_copy(update={"user_ref": user, **update}))

    by_mail = contact(
        f"usager-scan-{MARK}-1",
        preferred_channel=SurveyChannel.EMAIL,
        email=f"scan.{MARK}@exemple.fr",
        mobile_phone=f"+33{PHONE_DIGITS}",
    )
    by_sms = contact(
        f"usager-scan-{MARK}-2",
        preferred_channel=SurveyChannel.SMS,
        email=None,
        mobile_phone=f"0{PHONE_DIGITS}",
    )
    refused = contact(
        f"usager-scan-{MARK}-3",
        preferred_channel=SurveyChannel.EMAIL,
        email=f"refuse.{MARK}@exemple.fr",
    )
    erased = contact(
        f"usager-scan-{MARK}-erase",
        preferred_channel=SurveyChannel.EMAIL,
        email=f"efface.{MARK}@exemple.fr",
    )
    invalid = json.loads(encode(contact(f"usager-scan-{MARK}-4", email=f"scan.{MARK}@x.fr")))
    invalid["data"]["channel"] = "pigeon_voyageur"
    stack.smtp_sink.refused_recipients.add(f"refuse.{MARK}@exemple.fr")

    await produce(
        stack.kafka_bootstrap_servers,
        CRM_CONTACT_CLOSED.name,
        [json.dumps(invalid).encode(), *(encode(e) for e in (by_mail, by_sms, refused, erased))],
    )

    def mailed_links() -> dict[str, str]:
        links = {}
        for message in read_maildir(stack.maildir):
            body = message.get_body(preferencelist=("plain",))
            found = LINK.findall(body.get_content() if body else "")
            if found:
                links[str(message["X-Envelope-To"])] = found[-1]
        wanted = {f"scan.{MARK}@exemple.fr", f"efface.{MARK}@exemple.fr"}
        return links if wanted <= set(links) else {}

    links = await async_wait_for(mailed_links, timeout=90)
    # The SMS may wait for its sending window (evenings, Sundays, holidays): what matters here
    # is that its contact was handled, which every contact shows on survey.contact.v1.
    await read_topic(
        stack.kafka_bootstrap_servers,
        SURVEY_CONTACT.name,
        until=lambda records: any(by_sms.data.contact_id.encode() in r.value for r in records),
        timeout=60,
    )
    await read_topic(
        stack.kafka_bootstrap_servers,
        SURVEY_INVITATION.name,
        until=lambda records: any(
            b"invitation.failed" in r.value and refused.data.contact_id.encode() in r.value
            for r in records
        ),
        timeout=60,
    )

    suggestion = f"Rappelez-moi au {TYPED_PHONE} ou écrivez à perso.{MARK}@gmail.com, merci"
    async with httpx.AsyncClient(base_url=admin_system["responses"].url) as client:
        for address in (f"scan.{MARK}@exemple.fr", f"efface.{MARK}@exemple.fr"):
            await _answer(client, links[address], suggestion)

    async with httpx.AsyncClient(base_url=admin_system["publication"].url) as client:

        async def both_answers_published() -> bool:
            response = await client.get(f"/v1/sites/{site_id}/indicators")
            if response.status_code != 200:
                return False
            figures = {f["id"]: f for f in response.json()["current"]["indicators"]}
            return figures.get("nps", {}).get("sample_size", 0) >= 2

        await async_wait_for(both_answers_published, timeout=90)

    token = local.mint(subject="dpo", roles=[NETWORK_ADMIN], network=erased.data.network)
    async with httpx.AsyncClient(base_url=admin_system["survey-dispatch"].url) as client:
        response = await client.post(
            f"/admin/v1/networks/{erased.data.network}/erasures",
            json={"user_ref": erased.data.user_ref},
            headers=bearer(token),
        )
        assert response.status_code in (200, 202), response.text
    records = await read_topic(
        stack.kafka_bootstrap_servers,
        SURVEY_INVITATION.name,
        until=lambda records: any(b"user.erased" in r.value for r in records),
        timeout=60,
    )
    erasure = next(json.loads(r.value) for r in records if b"user.erased" in r.value)
    erased_ids = [erasure["data"]["user_pseudo_id"], erased.data.contact_id]

    async def left_downstream() -> list[str]:
        rows = await _table_findings(stack.database_url, also=erased_ids)
        return [
            f"{table}.{column}"
            for table, column, hits in rows
            if not table.startswith("survey_dispatch.") and hits & set(erased_ids)
        ]

    try:
        await async_wait_for(lambda: _none(left_downstream), timeout=60)
    except TimeoutError:
        pytest.fail(f"the erased user is still linked in {await left_downstream()}")

    problems: list[str] = []
    for topic, hits in await _topic_findings(stack.kafka_bootstrap_servers):
        problems.append(f"topic {topic}: {sorted(hits)}")
    for table, column, hits in await _table_findings(stack.database_url, also=[]):
        outside_dispatch = not table.startswith("survey_dispatch.")
        erased_left = "erased email" in hits
        if outside_dispatch or erased_left or not CONTACT_POINT_COLUMN.search(column):
            problems.append(f"table {table}.{column}: {sorted(hits)}")
    for path in [service.log_path for service in admin_system.services.values()]:
        for number, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
            if hits := found_in(line):
                problems.append(f"log {path.name}:{number}: {sorted(hits)}")
    assert not problems, "\n".join(problems)


async def _none(check) -> bool:
    return not await check()


async def _answer(client: httpx.AsyncClient, token: str, suggestion: str) -> None:

    async def page():
        response = await client.get(f"/s/{token}")
        return response if response.status_code == 200 else None

    shown = await async_wait_for(page, timeout=60)
    csrf = shown.text.split('name="csrf" value="')[1].split('"')[0]
    answer = await client.post(
        f"/s/{token}",
        data={
            "csrf": csrf,
            "satisfaction_globale": "2",
            "recommandation": "1",
            "recontact": "oui",
            "suggestion": suggestion,
            "action": "submit",
        },
    )
    assert answer.status_code == 200, answer.text


async def _topic_findings(bootstrap: str) -> list[tuple[str, set[str]]]:
    """Every record (value and headers) of every topic but the CRM's, DLQs included."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    findings: list[tuple[str, set[str]]] = []
    try:
        topics = sorted(t for t in await consumer.topics() if t != CRM_CONTACT_CLOSED.name)
        assert CRM_CONTACT_CLOSED.dlq_name in topics
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        hits: dict[str, set[str]] = {}
        quiet = 0
        while quiet < 3:
            batch = await consumer.getmany(timeout_ms=500)
            quiet = 0 if batch else quiet + 1
            for partition, records in batch.items():
                for record in records:
                    raw = (record.value or b"") + b"".join(v for _, v in record.headers)
                    text = raw.decode("utf-8", "replace")
                    if found := found_in(text) | found_in(json.dumps(text)):
                        hits.setdefault(partition.topic, set()).update(found)
        findings.extend(hits.items())
    finally:
        await consumer.stop()
    return findings


async def _table_findings(database_url: str, *, also: list[str]) -> list[tuple[str, str, set[str]]]:
    """(schema.table, column, what was found) for every text-bearing column of every table."""
    connection = await asyncpg.connect(database_url)
    try:
        columns = await connection.fetch(
            "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE t.table_type = 'BASE TABLE' "
            "AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        findings = []
        for row in columns:
            table = f'"{row["table_schema"]}"."{row["table_name"]}"'
            values = await connection.fetchval(
                f'SELECT string_agg("{row["column_name"]}"::text, chr(10)) FROM {table}'
            )
            text = values or ""
            hits = found_in(text) | {marker for marker in also if marker in text}
            if hits:
                name = f"{row['table_schema']}.{row['table_name']}"
                findings.append((name, row["column_name"], hits))
        return findings
    finally:
        await connection.close()
