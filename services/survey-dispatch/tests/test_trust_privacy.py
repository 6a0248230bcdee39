"""Issue #12 (Trust), survey-dispatch's intake and privacy part, through the real broker,
database, SMTP sink, SMS gateway and Chromium.

- only survey-dispatch reads contact points: every valid contact leaves as a pseudonymous
  `ContactSeen`, surveyed or not;
- an opt-out (link or SMS `STOP`) is honoured at once, by its own secret, on any address case;
- production refuses weak keys and an implicit admin token issuer;
- an erasure reaches responses and scoring (`UserErased`), is audited, and refused tokens are
  logged without their content.

As in test_dispatch_integration, where a rule is about time the test moves the row's due time
in the database instead of waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import async_playwright
from pydantic import SecretStr, ValidationError
from survey_dispatch import domain
from survey_dispatch.settings import DispatchSettings

from contracts.events import ContactClosed, SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED, SURVEY_CONTACT, SURVEY_INVITATION
from plumbing.auth import NETWORK_ADMIN, SITE_MANAGER, LocalIssuer, bearer
from plumbing.crm_simulator import CrmSimulator
from plumbing.sinks import read_maildir, read_sms_log
from plumbing.testing import async_wait_for, produce, read_topic

pytestmark = pytest.mark.integration

NETWORK = "urssaf"
PSEUDONYM_KEY = "test-pseudonym-key-of-at-least-32-bytes!"
INBOUND_TOKEN = "test-inbound-token"
OPTOUT_LINK = re.compile(r"/o/([A-Za-z0-9_-]+)")
SURVEY_LINK = re.compile(r"/s/([A-Za-z0-9_-]+)")
# The survey page's headers (plumbing.web.PAGE_SECURITY_HEADERS), written out: the set the
# opt-out page must carry as well.
SURVEY_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "cache-control": "no-store",
}


@pytest.fixture(scope="module")
def service(start_dispatch: Any):
    system, service = start_dispatch(PSEUDONYM_KEY=PSEUDONYM_KEY, SMS_INBOUND_TOKEN=INBOUND_TOKEN)
    yield service
    system.stop()


@pytest.fixture
async def db(stack: Any):
    connection = await asyncpg.connect(
        stack.database_url, server_settings={"search_path": "survey_dispatch"}
    )
    yield connection
    await connection.close()


def pseudonym(value: str) -> str:
    return domain.pseudonymize(value, PSEUDONYM_KEY.encode())


def new_contact(*, user: str, site: str, **changes: Any) -> ContactClosed:
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


def sms_to(stack: Any, phone: str) -> list[dict[str, Any]]:
    return [sms for sms in read_sms_log(stack.workdir / "sms.jsonl") if sms["to"] == phone]


async def events_of(
    stack: Any, topic: str, type_suffix: str, match: dict[str, Any], count: int = 1
) -> list[dict[str, Any]]:
    def matching(records: list[Any]) -> list[dict[str, Any]]:
        found = []
        for record in records:
            event = json.loads(record.value)
            data = event["data"]
            if f".{type_suffix}." in event["type"] and all(
                data.get(k) == v for k, v in match.items()
            ):
                found.append(event)
        return found

    records = await read_topic(
        stack.kafka_bootstrap_servers, topic,
        until=lambda records: len(matching(records)) >= count, timeout=60,
    )  # fmt: skip
    return matching(records)


async def reasons_for(stack: Any, contact: ContactClosed) -> list[str]:
    events = await events_of(
        stack, SURVEY_INVITATION.name, "invitation.suppressed", {"contact_id": contact.contact_id}
    )
    return [event["data"]["reason"] for event in events]


async def optout_link_of(stack: Any, address: str) -> str:
    [mail] = await async_wait_for(lambda: mails_to(stack, address), timeout=60)
    return OPTOUT_LINK.search(mail["List-Unsubscribe"]).group(1)


# --------------------------------------------------------------------------- item 3: ContactSeen


async def test_every_valid_contact_leaves_as_a_pseudonymous_contact_seen(stack, service, db):
    surveyed = new_contact(
        user="seen-surveyed", site="site-seen", team="equipe-a", sub_motif="retard",
        mobile_phone="+33611223344",
    )  # fmt: skip
    refused = new_contact(user="seen-refuses", site="site-seen", opted_out=True)
    await send_contacts(stack, surveyed, refused)
    await send_contacts(stack, surveyed.model_copy())  # the same contact again: seen once only

    sent = await events_of(
        stack, SURVEY_INVITATION.name, "invitation.sent", {"contact_id": surveyed.contact_id}
    )
    for contact in (surveyed, refused):
        [seen] = await events_of(
            stack, SURVEY_CONTACT.name, "contact.seen", {"contact_id": contact.contact_id}
        )
        data = seen["data"]
        assert data["user_pseudo_id"] == pseudonym(contact.user_ref)  # the keyed HMAC
        assert (data["site_id"], data["motif"], data["team"], data["sub_motif"]) == (
            contact.site_id, contact.motif, contact.team, contact.sub_motif,
        )  # fmt: skip
        raw = json.dumps(seen)
        for personal in (contact.user_ref, contact.email, "611223344"):
            assert personal not in raw
        unkeyed = hashlib.sha256(f"{NETWORK}:{contact.user_ref}".encode()).hexdigest()
        assert unkeyed not in raw
    assert sent[0]["data"]["user_pseudo_id"] == pseudonym(surveyed.user_ref)
    # A marker decided after the replay (one partition, in order): once it is seen, the replay
    # was decided too, and it was not seen a second time.
    marker = new_contact(user="seen-marker", site="site-seen")
    await send_contacts(stack, marker)
    await events_of(stack, SURVEY_CONTACT.name, "contact.seen", {"contact_id": marker.contact_id})
    records = await read_topic(
        stack.kafka_bootstrap_servers, SURVEY_CONTACT.name, timeout=30,
        until=lambda r: any(marker.contact_id in record.value.decode() for record in r),
    )  # fmt: skip
    ids = [json.loads(record.value)["data"]["contact_id"] for record in records]
    assert ids.count(surveyed.contact_id) == 1


# --------------------------------------------------------------------------- item 11: opt-out


async def test_the_optout_link_has_its_own_secret_not_the_survey_token(stack, service, db):
    contact = new_contact(user="own-secret", site="site-secret")
    await send_contacts(stack, contact)
    [mail] = await async_wait_for(lambda: mails_to(stack, "own-secret@exemple.fr"), timeout=60)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    survey_token = SURVEY_LINK.search(text).group(1)
    optout_token = OPTOUT_LINK.search(mail["List-Unsubscribe"]).group(1)
    assert optout_token != survey_token and OPTOUT_LINK.search(text).group(1) == optout_token
    row = await db.fetchrow("SELECT * FROM invitations WHERE contact_id = $1", contact.contact_id)
    assert row["optout_sha256"] == domain.token_digest(optout_token)
    assert optout_token not in json.dumps({k: str(v) for k, v in dict(row).items()})

    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (await client.post(f"/o/{survey_token}")).status_code == 404
        assert not await db.fetchval(
            "SELECT 1 FROM opt_outs WHERE subject = $1", pseudonym(contact.user_ref)
        )
        assert (await client.post(f"/o/{optout_token}")).status_code == 200
    assert await db.fetchval(
        "SELECT 1 FROM opt_outs WHERE subject = $1", pseudonym(contact.user_ref)
    )


async def test_a_link_sent_before_invitations_had_their_own_optout_secret_still_works(
    stack, service, db
):
    contact = new_contact(user="legacy-link", site="site-legacy")
    await send_contacts(stack, contact)
    [mail] = await async_wait_for(lambda: mails_to(stack, "legacy-link@exemple.fr"), timeout=60)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    survey_token = SURVEY_LINK.search(text).group(1)
    await db.execute(  # as the rows created before migration 0004: no opt-out secret of their own
        "UPDATE invitations SET optout_sha256 = NULL WHERE contact_id = $1", contact.contact_id
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (await client.post(f"/o/{survey_token}")).status_code == 200
    assert await db.fetchval("SELECT 1 FROM opt_outs WHERE subject = $1", pseudonym("legacy-link"))


async def test_an_optout_cancels_the_pending_reminder_at_once(stack, service, db):
    contact = new_contact(user="no-reminder", site="site-no-reminder")
    await send_contacts(stack, contact)
    token = await optout_link_of(stack, "no-reminder@exemple.fr")
    await async_wait_for(  # a reminder is due in 48 h
        lambda: db.fetchval(
            "SELECT remind_at FROM invitations WHERE contact_id = $1", contact.contact_id
        )
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (await client.post(f"/o/{token}")).status_code == 200

    row = await db.fetchrow("SELECT * FROM invitations WHERE contact_id = $1", contact.contact_id)
    assert (row["remind_at"], row["address"]) == (None, None)
    # 48 hours later: whatever was still due is due now.
    await db.execute(
        "UPDATE invitations SET remind_at = now() WHERE contact_id = $1 AND remind_at IS NOT NULL",
        contact.contact_id,
    )
    await asyncio.sleep(3)
    assert len(mails_to(stack, "no-reminder@exemple.fr")) == 1


async def test_an_sms_stop_reply_opts_the_number_out_and_cancels_its_scheduled_send(
    stack, service, db, issuer
):
    local, _ = issuer
    admin = bearer(local.mint(subject="alice", roles=[NETWORK_ADMIN], network=NETWORK))
    phone = "+33645678901"
    async with httpx.AsyncClient(base_url=service.url) as client:
        rules = await client.put(
            f"/admin/v1/networks/{NETWORK}/sites/site-stop/rules",
            json={"delay_minutes": 600}, headers=admin,
        )  # fmt: skip
        assert rules.status_code == 200, rules.text
    scheduled = new_contact(
        user="texter", site="site-stop", email=None, mobile_phone="06 45 67 89 01",
        preferred_channel=SurveyChannel.SMS,
    )  # fmt: skip
    await send_contacts(stack, scheduled)
    row = await async_wait_for(
        lambda: db.fetchrow("SELECT * FROM invitations WHERE contact_id = $1", scheduled.contact_id)
    )
    assert row["status"] == "scheduled"

    async with httpx.AsyncClient(base_url=service.url) as client:
        reply = {"from": phone, "to": "SERVICEPUB", "text": "STOP"}
        assert (await client.post("/v1/sms/inbound", json=reply)).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await client.post("/v1/sms/inbound", json=reply, headers=wrong)).status_code == 401
        good = {"Authorization": f"Bearer {INBOUND_TOKEN}"}
        bad = await client.post("/v1/sms/inbound", content=b"{", headers=good)
        assert bad.status_code == 422
        chat = {**reply, "text": "Merci, c'était très bien"}
        answer = await client.post("/v1/sms/inbound", json=chat, headers=good)
        assert answer.json() == {"opted_out": False}
        stop = {**reply, "text": " s T ô p. "}  # case, accents and spaces do not matter
        answer = await client.post("/v1/sms/inbound", json=stop, headers=good)
        assert answer.status_code == 200 and answer.json() == {"opted_out": True}

    row = await db.fetchrow("SELECT * FROM invitations WHERE contact_id = $1", scheduled.contact_id)
    assert (row["status"], row["address"], row["token"]) == ("cancelled", None, None)
    await db.execute(  # ten hours later
        "UPDATE invitations SET send_at = now() WHERE contact_id = $1", scheduled.contact_id
    )
    later = new_contact(
        user="texter-2", site="site-stop-2", email=None, mobile_phone=phone,
        preferred_channel=SurveyChannel.SMS,
    )  # fmt: skip
    await send_contacts(stack, later)
    assert await reasons_for(stack, later) == ["opted_out"]
    await asyncio.sleep(2)  # the senders poll every 50 ms
    assert sms_to(stack, phone) == []


@pytest.mark.parametrize("text", ["STOP", "stop", "Stop.", " S T O P ", "ARRÊT", "stôp"])
def test_stop_replies_are_recognised_whatever_their_case_accents_and_spaces(text):
    assert domain.is_stop_reply(text)


@pytest.mark.parametrize("text", ["", "Merci", "stopper", "ne pas stop", "1"])
def test_other_replies_are_not_a_stop(text):
    assert not domain.is_stop_reply(text)


async def test_an_optout_matches_the_address_whatever_the_case_of_its_local_part(stack, service):
    first = new_contact(user="case-a", site="site-case", email="Marie.Curie@Exemple.FR")
    await send_contacts(stack, first)
    token = await optout_link_of(stack, "Marie.Curie@exemple.fr")
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (await client.post(f"/o/{token}")).status_code == 200

    other_user_same_mailbox = new_contact(
        user="case-b", site="site-case-2", email="marie.curie@EXEMPLE.fr"
    )
    await send_contacts(stack, other_user_same_mailbox)
    assert await reasons_for(stack, other_user_same_mailbox) == ["opted_out"]


def test_the_local_part_keeps_its_case_when_the_setting_says_so():
    address = "Marie.Curie@exemple.fr"
    assert domain.optout_address(address, case_insensitive_local_part=False) == address
    assert (
        domain.optout_address(address, case_insensitive_local_part=True) == "marie.curie@exemple.fr"
    )
    assert DispatchSettings().optout_email_local_part_case_insensitive is True


async def test_the_optout_page_has_the_survey_page_security_headers(stack, service):
    async with httpx.AsyncClient(base_url=service.url) as client:
        for response in (
            await client.get("/o/anything"),
            await client.post("/o/unknown-token"),
        ):
            for name, value in SURVEY_PAGE_HEADERS.items():
                assert response.headers.get(name) == value, (response.url, name)
    # In a real browser, under that policy: the page is styled (its stylesheet is allowed) and
    # nothing it needs is blocked.
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text))
            await page.goto(f"{service.url}/o/some-token")
            background = await page.eval_on_selector(
                "button", "element => getComputedStyle(element).backgroundColor"
            )
            assert background == "rgb(0, 0, 145)"
            assert await page.title() == "Ne plus être sollicité"
            assert not [p for p in problems if "Content Security Policy" in p], problems
        finally:
            await browser.close()


# --------------------------------------------------------------------------- item 12: secrets


@pytest.mark.parametrize("key", ["", "a", "x" * 31])
def test_production_refuses_a_short_pseudonym_key(key):
    with pytest.raises(ValidationError, match="PSEUDONYM_KEY must"):
        DispatchSettings(**production(pseudonym_key=SecretStr(key)))


def test_an_empty_pseudonym_key_is_refused_in_dev_too():
    with pytest.raises(ValidationError, match="PSEUDONYM_KEY must not be empty"):
        DispatchSettings(pseudonym_key=SecretStr(""))


def test_production_accepts_strong_keys_and_an_explicit_issuer():
    settings = DispatchSettings(**production())
    assert settings.environment == "production"
    with pytest.raises(ValidationError, match="ADMIN_ISSUER"):
        DispatchSettings(**production(admin_issuer="http://127.0.0.1/dev-issuer"))


def production(**changes: Any) -> dict[str, Any]:
    return {
        "environment": "production",
        "pseudonym_key": SecretStr("k" * 32),
        "sms_inbound_token": SecretStr("t" * 32),
        "sms_api_token": SecretStr("provider-token"),
        "admin_issuer": "https://idp.example.gouv.fr/realms/enquetes",
    } | changes


def test_the_service_will_not_start_in_production_with_a_weak_key(tmp_path):
    env = {
        **os.environ, "ENVIRONMENT": "production", "PSEUDONYM_KEY": "a",
        "SMS_INBOUND_TOKEN": "t" * 32, "SMS_API_TOKEN": "provider-token",
        "ADMIN_ISSUER": "https://idp.example.gouv.fr/realms/enquetes",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "survey_dispatch", "serve"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert "PSEUDONYM_KEY must be at least 32 bytes in production" in done.stderr


# --------------------------------------------------------------------------- item 13: erasure


async def test_an_erasure_reaches_the_other_services_and_is_audited(stack, service, db, issuer):
    local, _ = issuer
    contact = new_contact(user="forget-me", site="site-erase")
    await send_contacts(stack, contact)
    await async_wait_for(lambda: mails_to(stack, "forget-me@exemple.fr"), timeout=60)
    admin = bearer(local.mint(subject="dpo-alice", roles=[NETWORK_ADMIN], network=NETWORK))
    path = f"/admin/v1/networks/{NETWORK}/erasures"
    async with httpx.AsyncClient(base_url=service.url) as client:
        erased = await client.post(path, json={"user_ref": "forget-me"}, headers=admin)
        assert erased.status_code == 200, erased.text
        audit = (await client.get(path, headers=admin)).json()
    body = erased.json()
    assert body["invitations_erased"] == 1

    [event] = await events_of(
        stack, SURVEY_INVITATION.name, "user.erased", {"erasure_id": body["erasure_id"]}
    )
    assert event["data"]["user_pseudo_id"] == pseudonym("forget-me")
    assert event["data"]["network"] == NETWORK and "forget-me" not in json.dumps(event)
    [entry] = [e for e in audit["erasures"] if e["erasure_id"] == body["erasure_id"]]
    assert (entry["requested_by"], entry["invitations_erased"]) == ("dpo-alice", 1)
    stored = await db.fetchrow(
        "SELECT * FROM erasure_audit WHERE erasure_id = $1", body["erasure_id"]
    )
    assert "forget-me" not in str(dict(stored)) and pseudonym("forget-me") not in str(dict(stored))
    assert "forget-me" not in service.log_path.read_text(encoding="utf-8")


async def test_refused_tokens_are_logged_with_reason_and_route_never_the_token(
    stack, service, issuer
):
    local, _ = issuer
    stranger = LocalIssuer(issuer=local.issuer, audience=local.audience)
    forged = stranger.mint(subject="mallory", roles=[NETWORK_ADMIN], network=NETWORK)
    manager = local.mint(subject="bob", roles=[SITE_MANAGER], site_ids=["s1"])
    path = f"/admin/v1/networks/{NETWORK}/erasures"
    async with httpx.AsyncClient(base_url=service.url) as client:
        body = {"user_ref": "someone"}
        assert (await client.post(path, json=body)).status_code == 401
        assert (await client.post(path, json=body, headers=bearer(forged))).status_code == 401
        assert (await client.post(path, json=body, headers=bearer(manager))).status_code == 403

    def refusals() -> list[dict[str, Any]]:
        entries = []
        for line in service.log_path.read_text(encoding="utf-8").splitlines():
            if line.startswith("{") and '"request refused"' in line:
                entries.append(json.loads(line))
        return entries

    found = await async_wait_for(lambda: refusals() if len(refusals()) >= 3 else None, timeout=10)
    route = "/admin/v1/networks/{network}/erasures"
    assert {(e["status"], e["route"]) for e in found} >= {(401, route), (403, route)}
    assert {"missing bearer token"} <= {e["reason"] for e in found}
    log_text = service.log_path.read_text(encoding="utf-8")
    for token in (forged, manager):
        assert token not in log_text and token.split(".")[1] not in log_text
