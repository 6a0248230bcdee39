"""Two survey-dispatch processes on one database and one consumer group (issue #13): they split
the contact stream's partitions, their senders claim the due invitations with SKIP LOCKED, and
every contact gets exactly one mail."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts.events import SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED
from plumbing import processes
from plumbing.crm_simulator import CrmSimulator
from plumbing.services import SERVICES, ServiceProcess, system_env
from plumbing.sinks import read_maildir
from plumbing.testing import async_wait_for, produce

pytestmark = pytest.mark.integration

CONTACTS = 400
SITES = [(f"site-pair-{n}", f"Accueil pair {n}", "urssaf") for n in range(12)]


@pytest.fixture
def replicas(stack: Any, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """Both started at once: they join the group side by side (a join costs ~5 s)."""
    ports = {name: processes.free_port() for name in SERVICES}
    env = system_env(
        stack.env(),
        ports,
        {
            "DEFAULT_RULES": json.dumps({"delay_minutes": 0, "email_uses_sms_window": False}),
            "SENDER_POLL_SECONDS": "0.05",
        },
    )
    started = []
    try:
        for n, port in enumerate((ports["survey-dispatch"], processes.free_port())):
            service = ServiceProcess(
                f"survey-dispatch-{n}",
                SERVICES["survey-dispatch"],
                port,
                {**env, "HTTP_PORT": str(port)},
                tmp_path / f"survey-dispatch-{n}.log",
            )
            started.append(service)
            service.start()
        for service in started:
            service.wait_ready()
        yield started
    finally:
        for service in started:
            service.stop()


def contacts() -> list[Any]:
    simulator = CrmSimulator(seed=17)
    run = uuid.uuid4().hex[:8]
    made = []
    for n in range(CONTACTS):
        user = f"pair-{run}-{n}"
        changes = {
            "user_ref": user,
            "email": f"{user}@exemple.fr",
            "opted_out": False,
            "preferred_channel": SurveyChannel.EMAIL,
            "contact_id": f"crm-{run}-{n}",
        }
        made.append(simulator.contact(site=SITES[n % len(SITES)]).model_copy(update=changes))
    return made


def counter(service: ServiceProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def test_two_dispatch_processes_mail_each_contact_exactly_once(stack, replicas):
    made = contacts()
    addresses = {contact.email for contact in made}
    events = [CrmSimulator.event(contact) for contact in made]
    for start in range(0, CONTACTS, 50):  # a stream, not one burst
        await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events[start:][:50])
        await asyncio.sleep(0.1)

    def mails() -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = defaultdict(list)
        for message in read_maildir(stack.maildir):
            if message["To"] in addresses:
                found[message["To"]].append(message)
        return found

    await async_wait_for(lambda: len(mails()) == CONTACTS, timeout=60)
    await asyncio.sleep(1.0)  # a double would arrive now
    found = mails()
    assert all(len(messages) == 1 for messages in found.values()), "a contact got two mails"
    message_ids = {messages[0]["Message-ID"] for messages in found.values()}
    assert len(message_ids) == CONTACTS

    # Both processes did part of the work: decisions (their partitions) and sends (their claims).
    decided = [
        counter(s, "consumer_events_total", topic=CRM_CONTACT_CLOSED.name, outcome="handled")
        for s in replicas
    ]
    sent = [counter(s, "dispatch_sends_total", channel="email", result="sent") for s in replicas]
    assert all(decided) and sum(decided) == CONTACTS, decided
    assert all(sent) and sum(sent) == CONTACTS, sent
