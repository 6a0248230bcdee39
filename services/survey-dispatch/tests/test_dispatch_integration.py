"""survey-dispatch through the real broker, database, SMTP sink and SMS gateway.

The service runs once for the module (a group join costs ~5 s); each test uses its own users
and sites so tests never see each other's messages. Where a rule is about time (the SMS window,
the 48 h reminder, the 7-day expiry) the test moves the row's due time in the database instead
of waiting: that is the only thing it does behind the service's back.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import ContactClosed, ResponseSubmitted, SurveyChannel
from contracts.topics import (
    CRM_CONTACT_CLOSED,
    RESPONSE_SUBMITTED,
    SURVEY_CONTACT,
    SURVEY_INVITATION,
    SURVEY_RESPONSE,
)
from plumbing.auth import NETWORK_ADMIN, SITE_MANAGER, LocalIssuer, bearer
from plumbing.crm_simulator import SITES as SIMULATED_SITES
from plumbing.crm_simulator import CrmSimulator
from plumbing.services import start_system
from plumbing.sinks import read_maildir
from plumbing.testing import async_wait_for, produce, read_topic

pytestmark = pytest.mark.integration

NETWORK = "urssaf"
OPTOUT_LINK = re.compile(r"/o/([A-Za-z0-9_-]+)")
SMTP_OUTAGE_SECONDS = 60  # the "refuses for a minute"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalIssuer, str]:
    local = LocalIssuer(issuer="http://127.0.0.1/dev-issuer", audience="enquetes-admin")
    return local, local.write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture(scope="module")
def service(stack: Any, issuer: tuple[LocalIssuer, str], tmp_path_factory: pytest.TempPathFactory):
    rules = {"delay_minutes": 0, "email_uses_sms_window": False}
    system = start_system(
        stack.env(),
        tmp_path_factory.mktemp("logs"),
        only=("survey-dispatch",),
        extra_env={
            "DEFAULT_RULES": json.dumps(rules),
            "SENDER_POLL_SECONDS": "0.05",
            "RETRY_BASE_SECONDS": "0.5",
            "RETRY_MAX_SECONDS": "4",
            "MAX_SEND_ATTEMPTS": "40",
            "BREAKER_FAILURES": "3",
            "BREAKER_COOLDOWN_SECONDS": "2",
            "HOUSEKEEPING_SECONDS": "0.5",
            "ADMIN_JWKS_URL": issuer[1],
        },
    )
    yield system["survey-dispatch"]
    system.stop()


@pytest.fixture
async def db(stack: Any):
    connection = await asyncpg.connect(
        stack.database_url, server_settings={"search_path": "survey_dispatch"}
    )
    yield connection
    await connection.close()


# --------------------------------------------------------------------------- helpers


def new_contact(*, user: str, site: str, **changes: Any) -> ContactClosed:
    """A contact of `user` at `site`, by email to `<user>@exemple.fr` unless told otherwise."""
    base = CrmSimulator(seed=hash(user) % 10_000).contact(site=(site, f"Accueil {site}", NETWORK))
    defaults = {
        "user_ref": user,
        "email": f"{user}@exemple.fr",
        "preferred_channel": SurveyChannel.EMAIL,
        "contact_id": f"crm-{uuid.uuid4().hex[:16]}",
        "opted_out": False,
    }
    return base.model_copy(update=defaults | changes)


async def send_contacts(stack: Any, *contacts: ContactClosed) -> None:
    events = [CrmSimulator.event(contact) for contact in contacts]
    await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events)


def mails_to(stack: Any, address: str) -> list[Any]:
    return [message for message in read_maildir(stack.maildir) if message["To"] == address]


async def invitation_events(
    stack: Any, *, contact_ids: set[str] | None = None, type_suffix: str, count: int = 1
) -> list[dict[str, Any]]:
    """`survey.invitation` events of a type (e.g. "invitation.sent") for these contacts."""

    def matching(records: list[Any]) -> list[dict[str, Any]]:
        found = []
        for record in records:
            event = json.loads(record.value)
            if f".{type_suffix}." not in event["type"]:
                continue
            if contact_ids is None or event["data"].get("contact_id") in contact_ids:
                found.append(event)
        return found

    records = await read_topic(
        stack.kafka_bootstrap_servers,
        SURVEY_INVITATION.name,
        until=lambda records: len(matching(records)) >= count,
        timeout=60,
    )
    return matching(records)


async def reasons_for(stack: Any, contact: ContactClosed, count: int = 1) -> list[str]:
    events = await invitation_events(
        stack, contact_ids={contact.contact_id}, type_suffix="invitation.suppressed", count=count
    )
    return [event["data"]["reason"] for event in events]


async def invitation_row(db: asyncpg.Connection, contact: ContactClosed) -> Any:
    async def row() -> Any:
        return await db.fetchrow(
            "SELECT * FROM invitations WHERE contact_id = $1", contact.contact_id
        )

    return await async_wait_for(row, timeout=30)


async def metric(service: Any, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(base_url=service.url) as client:
        text = (await client.get("/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --------------------------------------------------------------------------- one per contact


async def test_the_same_contact_twice_sends_one_message(stack, service):
    contact = new_contact(user="dup-a", site="site-dup")
    event = CrmSimulator.event(contact)
    same_contact_new_event = CrmSimulator.event(contact)  # another event id, same contact id
    await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [event, event])
    await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [same_contact_new_event])

    await async_wait_for(lambda: mails_to(stack, "dup-a@exemple.fr"), timeout=60)
    # The replayed event id is dropped by the inbox; the new event id is a duplicate contact.
    assert await reasons_for(stack, contact) == ["duplicate_contact"]
    await send_contacts(stack, new_contact(user="dup-marker", site="site-dup"))
    await async_wait_for(lambda: mails_to(stack, "dup-marker@exemple.fr"), timeout=30)
    assert len(mails_to(stack, "dup-a@exemple.fr")) == 1


async def test_the_demos_guadeloupe_site_tells_its_own_clock_downstream(stack, service):
    """Issue #15: no clock rule for the demo's Guadeloupe site (plumbing.crm_simulator), so its
    region's default: its contact seen and invitation sent events carry America/Guadeloupe on
    to responses, scoring and publication; a metropolitan site's carry Europe/Paris."""
    site_id, site_name, network = next(s for s in SIMULATED_SITES if "guadeloupe" in s[0])
    guadeloupe = new_contact(user="clock-gp", site=site_id, site_name=site_name, network=network)
    paris = new_contact(user="clock-paris", site="site-clock-paris")
    expected = {guadeloupe.contact_id: "America/Guadeloupe", paris.contact_id: "Europe/Paris"}
    await send_contacts(stack, guadeloupe, paris)
    sent = await invitation_events(
        stack, contact_ids=set(expected), type_suffix="invitation.sent", count=2
    )
    assert {e["data"]["contact_id"]: e["data"]["site_timezone"] for e in sent} == expected

    def seen(records: list[Any]) -> dict[str, str]:
        events = [json.loads(record.value)["data"] for record in records]
        return {e["contact_id"]: e["site_timezone"] for e in events if e["contact_id"] in expected}

    records = await read_topic(
        stack.kafka_bootstrap_servers, SURVEY_CONTACT.name,
        until=lambda records: len(seen(records)) == 2, timeout=30,
    )  # fmt: skip
    assert seen(records) == expected


# --------------------------------------------------------------------------- opt-out


async def test_a_user_opted_out_in_the_crm_gets_nothing(stack, service):
    contact = new_contact(user="crm-refuses", site="site-optout", opted_out=True)
    await send_contacts(stack, contact)

    assert await reasons_for(stack, contact) == ["opted_out"]
    assert mails_to(stack, "crm-refuses@exemple.fr") == []


async def test_the_optout_link_stops_the_user_and_the_address(stack, service):
    first = new_contact(user="clicks-optout", site="site-optout")
    await send_contacts(stack, first)
    [mail] = await async_wait_for(lambda: mails_to(stack, "clicks-optout@exemple.fr"), timeout=60)
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = OPTOUT_LINK.search(mail["List-Unsubscribe"]).group(1)
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (await client.post(f"/o/{token}")).status_code == 200

    same_user_other_address = new_contact(
        user="clicks-optout", site="site-optout-2", email="autre.adresse@exemple.fr"
    )
    same_address_other_user = new_contact(
        user="someone-else", site="site-optout-2", email="clicks-optout@exemple.fr"
    )
    await send_contacts(stack, same_user_other_address, same_address_other_user)

    assert await reasons_for(stack, same_user_other_address) == ["opted_out"]
    assert await reasons_for(stack, same_address_other_user) == ["opted_out"]
    assert mails_to(stack, "autre.adresse@exemple.fr") == []
    assert len(mails_to(stack, "clicks-optout@exemple.fr")) == 1


# --------------------------------------------------------------------------- fatigue


async def test_fatigue_holds_across_two_contacts_of_the_same_user(stack, service):
    first = new_contact(user="tired", site="site-fatigue-1")
    second = new_contact(user="tired", site="site-fatigue-2", email="tired.other@exemple.fr")
    await send_contacts(stack, first)
    await async_wait_for(lambda: mails_to(stack, "tired@exemple.fr"), timeout=60)
    await send_contacts(stack, second)

    assert await reasons_for(stack, second) == ["fatigue"]
    assert mails_to(stack, "tired.other@exemple.fr") == []


# --------------------------------------------------------------------------- SMS failure


async def test_a_4xx_from_the_sms_provider_fails_the_invitation_with_the_reason(stack, service, db):
    contact = new_contact(
        user="sms-refused", site="site-sms", preferred_channel=SurveyChannel.SMS,
        mobile_phone="+33612345678",
    )  # fmt: skip
    stack.sms_gateway.outage.set(400, count=1)  # before: a due send leaves at once
    await send_contacts(stack, contact)
    await invitation_row(db, contact)
    # The SMS window (Mon-Sat 08:00-20:00 Paris) may be closed when the test runs.
    await db.execute(
        "UPDATE invitations SET send_at = now() WHERE contact_id = $1", contact.contact_id
    )

    [failed] = await invitation_events(
        stack, contact_ids={contact.contact_id}, type_suffix="invitation.failed"
    )
    assert "400" in failed["data"]["reason"]
    assert "sms-refused" not in json.dumps(failed) and "+336" not in json.dumps(failed)
    row = await invitation_row(db, contact)
    assert (row["status"], row["address"], row["attempts"]) == ("failed", None, 1)
    assert await metric(service, "dispatch_provider_errors_total", channel="sms") >= 1


# --------------------------------------------------------------------------- reminders, purge


def response_to(invitation: dict[str, Any]) -> CloudEvent[ResponseSubmitted]:
    data = invitation["data"]
    now = utc_now()
    response = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:12]}", invitation_id=data["invitation_id"],
        contact_id=data["contact_id"], site_id=data["site_id"], network=data["network"],
        channel=data["channel"], motif=data["motif"],
        questionnaire_version=data["questionnaire_version"],
        answers={"satisfaction_globale": 9}, answered_at=now,
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=now,
        subject=data["site_id"], data=response,
    )  # fmt: skip


async def test_one_reminder_only_to_who_has_not_answered_and_none_after_expiry(stack, service, db):
    answers = new_contact(user="answers", site="site-remind")
    silent = new_contact(user="silent", site="site-remind")
    expired = new_contact(user="expired", site="site-remind")
    await send_contacts(stack, answers, silent, expired)
    ids = {c.contact_id for c in (answers, silent, expired)}
    sent = await invitation_events(stack, contact_ids=ids, type_suffix="invitation.sent", count=3)
    answered = next(e for e in sent if e["data"]["contact_id"] == answers.contact_id)
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, [response_to(answered)])
    await async_wait_for(
        lambda: db.fetchval(
            "SELECT answered_at FROM invitations WHERE contact_id = $1", answers.contact_id
        )
    )
    # 48 hours later for all three; the third one's link has expired meanwhile.
    await db.execute(
        "UPDATE invitations SET remind_at = now() WHERE contact_id = ANY($1::text[])",
        [silent.contact_id, expired.contact_id],
    )
    await db.execute(
        "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE contact_id = $1",
        expired.contact_id,
    )

    [reminded] = await invitation_events(
        stack, contact_ids=None, type_suffix="invitation.reminded", count=1
    )
    silent_row = await invitation_row(db, silent)
    assert reminded["data"]["invitation_id"] == silent_row["invitation_id"]
    reminders = await async_wait_for(
        lambda: [m for m in mails_to(stack, "silent@exemple.fr") if "Rappel" in m["Subject"]]
    )
    assert len(reminders) == 1 and len(mails_to(stack, "silent@exemple.fr")) == 2
    assert "Petit rappel" in reminders[0].get_body(preferencelist=("plain",)).get_content()
    expired_row = await async_wait_for(
        lambda: db.fetchrow(
            "SELECT * FROM invitations WHERE contact_id = $1 AND status = 'expired'",
            expired.contact_id,
        ),
        timeout=10,
    )
    assert (expired_row["address"], expired_row["token"], expired_row["reminded_at"]) == (
        None, None, None,
    )  # fmt: skip
    assert len(mails_to(stack, "answers@exemple.fr")) == 1
    assert len(mails_to(stack, "expired@exemple.fr")) == 1
    assert silent_row["reminded_at"] is not None


# --------------------------------------------------------------------------- admin API


async def test_rules_are_changed_through_the_audited_admin_api(stack, service, issuer):
    local, _ = issuer
    admin = bearer(local.mint(subject="alice", roles=[NETWORK_ADMIN], network=NETWORK))
    other_manager = bearer(local.mint(subject="bob", roles=[SITE_MANAGER], site_ids=["elsewhere"]))
    path = f"/admin/v1/networks/{NETWORK}/sites/site-admin/rules"
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (await client.get(path)).status_code == 401
        assert (await client.put(path, json={}, headers=other_manager)).status_code == 403
        bad = await client.put(path, json={"sampling_rate": 2}, headers=admin)
        assert bad.status_code == 422
        changed = await client.put(path, json={"sampling_rate": 0}, headers=admin)
        assert changed.status_code == 200, changed.text
        body = (await client.get(path, headers=admin)).json()
    assert body["effective"]["sampling_rate"] == 0
    assert body["audit"][0]["changed_by"] == "alice"
    assert body["audit"][0]["after"] == {"sampling_rate": 0}

    contact = new_contact(user="not-sampled", site="site-admin")
    await send_contacts(stack, contact)
    assert await reasons_for(stack, contact) == ["not_sampled"]


async def test_an_erasure_request_removes_what_is_held_about_the_user(stack, service, db, issuer):
    contact = new_contact(user="forget-me", site="site-erase")
    await send_contacts(stack, contact)
    await async_wait_for(lambda: mails_to(stack, "forget-me@exemple.fr"), timeout=60)
    local, _ = issuer
    admin = bearer(local.mint(subject="dpo", roles=[NETWORK_ADMIN], network=NETWORK))
    manager = bearer(local.mint(subject="m", roles=[SITE_MANAGER], site_ids=["site-erase"]))
    path = f"/admin/v1/networks/{NETWORK}/erasures"
    async with httpx.AsyncClient(base_url=service.url) as client:
        refused = await client.post(path, json={"user_ref": "forget-me"}, headers=manager)
        assert refused.status_code == 403
        erased = await client.post(path, json={"user_ref": "forget-me"}, headers=admin)
    assert erased.json()["invitations_erased"] == 1
    assert await db.fetchval(
        "SELECT count(*) FROM invitations WHERE contact_id = $1", contact.contact_id
    ) == 0  # fmt: skip
    assert await db.fetchval(
        "SELECT count(*) FROM contacts WHERE contact_id = $1", contact.contact_id
    ) == 0  # fmt: skip


# --------------------------------------------------------------------------- SMTP outage (last)


async def test_an_smtp_outage_of_a_minute_ends_with_every_invitation_sent_once(stack, service, db):
    stack.smtp_sink.outage.set(451, seconds=SMTP_OUTAGE_SECONDS)
    contacts = [new_contact(user=f"outage-{n}", site="site-outage") for n in range(10)]
    await send_contacts(stack, *contacts)

    def all_delivered() -> bool:
        return all(mails_to(stack, f"outage-{n}@exemple.fr") for n in range(10))

    await async_wait_for(all_delivered, timeout=SMTP_OUTAGE_SECONDS + 60, interval=1)
    assert await metric(service, "dispatch_provider_errors_total", channel="email") >= 3
    assert all(len(mails_to(stack, f"outage-{n}@exemple.fr")) == 1 for n in range(10))
    statuses = await db.fetch(
        "SELECT status, attempts FROM invitations WHERE contact_id = ANY($1::text[])",
        [c.contact_id for c in contacts],
    )
    assert [row["status"] for row in statuses] == ["sent"] * 10
    # The circuit breaker kept the provider from being hammered: few attempts per invitation.
    assert max(row["attempts"] for row in statuses) < 15
    sent = await invitation_events(
        stack, contact_ids={c.contact_id for c in contacts}, type_suffix="invitation.sent",
        count=10,
    )  # fmt: skip
    assert len(sent) == 10


async def test_the_network_questionnaire_chosen_through_the_admin_api_is_on_each_invitation(
    stack, service, issuer
):
    local, _ = issuer
    admin = bearer(local.mint(subject="carole", roles=[NETWORK_ADMIN], network="msa"))
    path = "/admin/v1/networks/msa/rules"
    async with httpx.AsyncClient(base_url=service.url) as client:
        unknown = await client.put(path, json={"questionnaire_version": "msa-v9"}, headers=admin)
        assert unknown.status_code == 422
        assert "unknown questionnaire version 'msa-v9'" in unknown.json()["detail"]
        assert "sms-court-2026-v1" in unknown.json()["detail"]
        rules = {
            "questionnaire_version": "sms-court-2026-v1",
            "motif_questionnaires": {"reclamation-longue": "urssaf-chaud-2024-v1"},
        }
        changed = await client.put(path, json=rules, headers=admin)
        assert changed.status_code == 200, changed.text
        assert changed.json()["effective"]["questionnaire_version"] == "sms-court-2026-v1"
        assert changed.json()["audit"][0]["after"] == rules

    short = new_contact(user="msa-court", site="site-msa", network="msa", motif="retraite")
    long = new_contact(user="msa-long", site="site-msa", network="msa", motif="reclamation-longue")
    await send_contacts(stack, short, long)
    sent = await invitation_events(
        stack, contact_ids={short.contact_id, long.contact_id}, type_suffix="invitation.sent",
        count=2,
    )  # fmt: skip
    versions = {e["data"]["contact_id"]: e["data"]["questionnaire_version"] for e in sent}
    assert versions == {
        short.contact_id: "sms-court-2026-v1",
        long.contact_id: "urssaf-chaud-2024-v1",
    }
