"""Kill survey-dispatch (SIGKILL, no clean shutdown) again and again while it decides and sends a
stream of contacts; after restarts nothing is lost and nothing is counted twice.

What "twice" can mean here, and what the design promises:
- decisions and invitation rows: exactly one per contact (inbox + unique contact id);
- `invitation sent` events: exactly one distinct event per invitation (outbox in the transaction
  that marks the row sent; a relay crash may re-publish the same event id, which consumers drop);
- mails: at least one per invitation. A kill after the SMTP server accepted a mail but before the
  transaction that marks it sent commits re-sends it after the restart: SMTP has no way to make
  that exactly-once. Such a repeat carries the same Message-ID, so mail systems fold it, and only
  mails in flight at a kill can repeat.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from survey_dispatch.settings import DispatchSettings

from contracts.events import SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED, SURVEY_INVITATION
from plumbing.crm_simulator import CrmSimulator
from plumbing.services import start_system
from plumbing.sinks import read_maildir
from plumbing.testing import async_wait_for, produce, read_topic

pytestmark = pytest.mark.integration

CONTACTS = 600
KILLS = 3
SITES = [(f"site-crash-{n}", f"Accueil crash {n}", "urssaf") for n in range(6)]


@pytest.fixture
def dispatch(stack: Any, tmp_path: Any):
    system = start_system(
        stack.env(),
        tmp_path,
        only=("survey-dispatch",),
        extra_env={
            "DEFAULT_RULES": json.dumps({"delay_minutes": 0, "email_uses_sms_window": False}),
            "SENDER_POLL_SECONDS": "0.05",
        },
    )
    yield system["survey-dispatch"]
    system.stop()


def contacts() -> list[Any]:
    simulator = CrmSimulator(seed=7)
    run = uuid.uuid4().hex[:8]
    made = []
    for n in range(CONTACTS):
        user = f"crash-{run}-{n}"
        changes = {
            "user_ref": user,
            "email": f"{user}@exemple.fr",
            "opted_out": False,
            "preferred_channel": SurveyChannel.EMAIL,
            "contact_id": f"crm-{run}-{n}",
        }
        made.append(simulator.contact(site=SITES[n % len(SITES)]).model_copy(update=changes))
    return made


async def send(stack: Any, wave: list[Any]) -> None:
    events = [CrmSimulator.event(contact) for contact in wave]
    await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events)


def mails_in(maildir: Path) -> int:
    return sum(1 for folder in ("new", "cur") for _ in (maildir / folder).iterdir())


def mails_by_address(stack: Any, addresses: set[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = defaultdict(list)
    for message in read_maildir(stack.maildir):
        if message["To"] in addresses:
            found[message["To"]].append(message)
    return found


async def test_killed_dispatch_loses_nothing_and_sends_each_invitation_once(stack, dispatch):
    made = contacts()
    addresses = {contact.email for contact in made}
    contact_ids = {contact.contact_id for contact in made}
    waves = [made[n :: KILLS + 1] for n in range(KILLS + 1)]
    mails_at_kills = []
    for wave in waves[:KILLS]:  # each wave killed a third of the way through its mails
        before = mails_in(stack.maildir)
        await send(stack, wave)

        def under_way(before: int = before, wave: list[Any] = wave) -> bool:
            return mails_in(stack.maildir) >= before + len(wave) // 3

        await async_wait_for(under_way, timeout=120, interval=0.01)
        dispatch.kill()
        mails_at_kills.append(mails_in(stack.maildir) - before)
        dispatch.start()
        await asyncio.to_thread(dispatch.wait_ready)
    await send(stack, waves[-1])
    assert all(count < len(waves[0]) for count in mails_at_kills), mails_at_kills

    def everyone_mailed() -> bool:
        return len(mails_by_address(stack, addresses)) == CONTACTS

    await async_wait_for(everyone_mailed, timeout=120)

    connection = await asyncpg.connect(stack.database_url)
    try:
        rows = await connection.fetch(
            "SELECT contact_id, invitation_id, status FROM survey_dispatch.invitations "
            "WHERE contact_id = ANY($1::text[])",
            list(contact_ids),
        )
    finally:
        await connection.close()
    assert len(rows) == CONTACTS  # one decision, one invitation per contact
    assert {row["status"] for row in rows} == {"sent"}
    invitation_ids = {row["invitation_id"] for row in rows}

    def sent_events(records: list[Any]) -> dict[str, set[str]]:
        by_invitation: dict[str, set[str]] = defaultdict(set)
        for record in records:
            event = json.loads(record.value)
            sent = ".invitation.sent." in event["type"]
            if sent and event["data"]["invitation_id"] in invitation_ids:
                by_invitation[event["data"]["invitation_id"]].add(event["id"])
        return by_invitation

    records = await read_topic(
        stack.kafka_bootstrap_servers,
        SURVEY_INVITATION.name,
        until=lambda records: len(sent_events(records)) >= CONTACTS,
        timeout=60,
    )
    by_invitation = sent_events(records)
    assert set(by_invitation) == invitation_ids
    assert all(len(ids) == 1 for ids in by_invitation.values()), "an invitation was sent twice"

    mails = mails_by_address(stack, addresses)
    repeated = {address: found for address, found in mails.items() if len(found) > 1}
    for found in repeated.values():  # a repeat is the same message, which mail systems fold
        assert len({message["Message-ID"] for message in found}) == 1
    # Only what was in flight at a kill can repeat: at most what the sender loops hold at once.
    settings = DispatchSettings()
    in_flight = settings.send_workers * settings.send_concurrency
    extra_mails = sum(len(found) - 1 for found in repeated.values())
    assert extra_mails <= KILLS * in_flight, f"{extra_mails} repeated mails"
