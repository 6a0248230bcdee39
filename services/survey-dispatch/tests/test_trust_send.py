"""Issue #12 (Trust), the send path and the rules, through the real broker, database and SMTP.

The service sends through a relay WITHOUT PIPELINING (aiosmtpd, as many small relays are) that
refuses recipients named `refuse...` with a reply quoting the address, and keeps every message
it accepts. Where a rule is about time the test moves the row's times in the database: that is
the only thing it does behind the service's back (and writing a rules row directly, to stand
for bad combinations stored before they were refused).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from survey_dispatch import repository
from survey_dispatch.app import new_templates
from survey_dispatch.channels import MailComposer, SmtpChannel
from survey_dispatch.settings import DispatchSettings

from contracts.events import ContactClosed, SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED, SURVEY_INVITATION
from plumbing.auth import NETWORK_ADMIN, SITE_MANAGER, LocalIssuer, bearer
from plumbing.crm_simulator import CrmSimulator
from plumbing.processes import free_port
from plumbing.services import start_system
from plumbing.sinks import SmtpSink, read_maildir
from plumbing.testing import async_wait_for, produce, read_topic

pytestmark = pytest.mark.integration

NETWORK = "urssaf"
REFUSAL = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"


class Relay:
    """A relay without PIPELINING: refuses `refuse...` recipients, keeps the rest."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[email.message.EmailMessage] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("refuse"):
            return REFUSAL.format(address=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[Any]:
        with self.lock:
            return [message for message in self.messages if message["To"] == address]


@pytest.fixture(scope="module")
def relay() -> Any:
    handler = Relay()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalIssuer, str]:
    local = LocalIssuer(issuer="http://127.0.0.1/dev-issuer", audience="enquetes-admin")
    return local, local.write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture(scope="module")
def service(stack: Any, relay: Any, issuer: Any, tmp_path_factory: pytest.TempPathFactory):
    system = start_system(
        stack.env(),
        tmp_path_factory.mktemp("logs"),
        only=("survey-dispatch",),
        extra_env={
            "SMTP_URL": f"smtp://127.0.0.1:{relay[1]}",
            "SMTP_CONNECTIONS": "1",  # one chunk: the refused recipient sits among others
            "DEFAULT_RULES": json.dumps({"delay_minutes": 0, "email_uses_sms_window": False}),
            "SENDER_POLL_SECONDS": "0.05",
            "RETRY_BASE_SECONDS": "0.5",
            "RETRY_MAX_SECONDS": "2",
            "MAX_SEND_ATTEMPTS": "40",
            "BREAKER_FAILURES": "2",
            "BREAKER_COOLDOWN_SECONDS": "30",
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
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
    yield connection
    await connection.close()


def new_contact(*, user: str, site: str, network: str = NETWORK, **changes: Any) -> ContactClosed:
    base = CrmSimulator(seed=hash(user) % 10_000).contact(site=(site, f"Accueil {site}", network))
    defaults = {
        "user_ref": f"{user}-{uuid.uuid4().hex[:6]}",
        "email": f"{user}@exemple.fr",
        "preferred_channel": SurveyChannel.EMAIL,
        "contact_id": f"crm-{uuid.uuid4().hex[:16]}",
        "opted_out": False,
    }
    return base.model_copy(update=defaults | changes)


async def send_contacts(stack: Any, *contacts: ContactClosed) -> None:
    events = [CrmSimulator.event(contact) for contact in contacts]
    await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events)


async def rows_of(db: asyncpg.Connection, contacts: list[ContactClosed]) -> list[Any]:
    ids = [contact.contact_id for contact in contacts]

    async def rows() -> list[Any] | None:
        found = await db.fetch(
            "SELECT * FROM invitations WHERE contact_id = ANY($1::text[]) ORDER BY contact_id", ids
        )
        return found if len(found) == len(ids) else None

    return await async_wait_for(rows, timeout=60)  # type: ignore[no-any-return]


async def invitation_events(stack: Any, *, contact_ids: set[str], type_suffix: str) -> list[Any]:
    def matching(records: list[Any]) -> list[dict[str, Any]]:
        events = [json.loads(record.value) for record in records]
        return [
            event
            for event in events
            if f".{type_suffix}." in event["type"]
            and event["data"].get("contact_id") in contact_ids
        ]

    records = await read_topic(
        stack.kafka_bootstrap_servers, SURVEY_INVITATION.name,
        until=lambda records: len(matching(records)) >= len(contact_ids), timeout=60,
    )  # fmt: skip
    return matching(records)


async def metric(service: Any, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(base_url=service.url) as client:
        text = (await client.get("/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def admin_of(issuer: Any, network: str) -> dict[str, str]:
    return bearer(
        issuer[0].mint(subject=f"admin-{network}", roles=[NETWORK_ADMIN], network=network)
    )


# --------------------------------------------------------------------------- 1. resend storm


async def test_a_rules_change_that_breaks_a_site_combination_is_refused_naming_the_site(
    service: Any, issuer: Any
) -> None:
    admin = admin_of(issuer, "reseau-combo")
    site_path = "/admin/v1/networks/reseau-combo/sites/agence-16h/rules"
    network_path = "/admin/v1/networks/reseau-combo/rules"
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (
            await client.put(site_path, json={"window_end_hour": 16}, headers=admin)
        ).status_code == 200
        refused = await client.put(network_path, json={"window_start_hour": 17}, headers=admin)
        assert refused.status_code == 422, refused.text
        assert "agence-16h" in refused.json()["detail"]
        # The other way round: a site override against the network's defaults.
        assert (
            await client.put(network_path, json={"window_start_hour": 9}, headers=admin)
        ).status_code == 200
        late = await client.put(site_path, json={"window_end_hour": 8}, headers=admin)
        assert late.status_code == 422 and "agence-16h" in late.json()["detail"]
        body = (await client.get(site_path, headers=admin)).json()
    assert (body["effective"]["window_start_hour"], body["effective"]["window_end_hour"]) == (9, 16)


async def test_get_rules_answers_a_stored_bad_combination_without_a_500(
    service: Any, issuer: Any, db: asyncpg.Connection
) -> None:
    # As stored before combinations were checked.
    await db.execute(
        "INSERT INTO rules (network, site_id, rules) VALUES ('reseau-ancien', '', $1), "
        "('reseau-ancien', 'agence-ancienne', $2)",
        {"window_start_hour": 17}, {"window_end_hour": 16},
    )  # fmt: skip
    admin = admin_of(issuer, "reseau-ancien")
    async with httpx.AsyncClient(base_url=service.url) as client:
        site = await client.get(
            "/admin/v1/networks/reseau-ancien/sites/agence-ancienne/rules", headers=admin
        )
        network = await client.get("/admin/v1/networks/reseau-ancien/rules", headers=admin)
    assert site.status_code == 200, site.text
    assert site.json()["effective"] is None and "window" in site.json()["problem"]
    assert network.status_code == 200 and network.json()["effective"]["window_start_hour"] == 17


async def test_a_site_whose_rules_no_longer_combine_fails_its_rows_and_never_resends_the_batch(
    stack: Any, service: Any, relay: Any, issuer: Any, db: asyncpg.Connection
) -> None:
    handler, _ = relay
    admin = admin_of(issuer, NETWORK)
    later = {"delay_minutes": 600}  # scheduled, not sent, until the test says so
    async with httpx.AsyncClient(base_url=service.url) as client:
        for site in ("storm-bad", "storm-good"):
            path = f"/admin/v1/networks/{NETWORK}/sites/{site}/rules"
            assert (await client.put(path, json=later, headers=admin)).status_code == 200
    bad = [new_contact(user=f"storm-bad-{n}", site="storm-bad") for n in range(3)]
    good = [new_contact(user=f"storm-good-{n}", site="storm-good") for n in range(3)]
    await send_contacts(stack, *bad, *good)
    await rows_of(db, bad + good)
    # A bad combination stored before it was refused; then everything is due at once, so the
    # bad rows and the good ones share a batch.
    await db.execute(
        "UPDATE rules SET rules = $1 WHERE network = $2 AND site_id = 'storm-bad'",
        {**later, "window_start_hour": 17, "window_end_hour": 16}, NETWORK,
    )  # fmt: skip
    await db.execute(
        "UPDATE invitations SET send_at = now() WHERE contact_id = ANY($1::text[])",
        [contact.contact_id for contact in bad + good],
    )

    await async_wait_for(lambda: all(handler.to(c.email) for c in good), timeout=30)
    await asyncio.sleep(3)  # time for a storm: the senders loop every 50 ms
    assert [len(handler.to(contact.email)) for contact in good] == [1, 1, 1]
    assert all(handler.to(contact.email) == [] for contact in bad)
    rows = {row["contact_id"]: row for row in await rows_of(db, bad + good)}
    assert all(rows[c.contact_id]["status"] == "sent" for c in good)
    for contact in bad:
        row = rows[contact.contact_id]
        assert row["status"] == "scheduled" and row["attempts"] >= 1
        assert "règles invalides" in row["last_error"]
    assert await metric(service, "background_task_restarts_total") == 0


async def test_a_row_whose_sent_event_cannot_be_built_fails_before_any_mail_leaves(
    stack: Any, service: Any, relay: Any, issuer: Any, db: asyncpg.Connection
) -> None:
    """What used to fail after the hand-over (here the `invitation sent` event, refused by the
    contract for a site name stored with a line break) now fails the row before it."""
    handler, _ = relay
    path = f"/admin/v1/networks/{NETWORK}/sites/site-label/rules"
    async with httpx.AsyncClient(base_url=service.url) as client:
        later = {"delay_minutes": 600}
        assert (
            await client.put(path, json=later, headers=admin_of(issuer, NETWORK))
        ).status_code == 200
    broken = new_contact(user="label-broken", site="site-label")
    fine = new_contact(user="label-fine", site="site-label")
    await send_contacts(stack, broken, fine)
    await rows_of(db, [broken, fine])
    await db.execute(
        "UPDATE invitations SET site_name = $2 WHERE contact_id = $1",
        broken.contact_id, "Agence\r\nReply-To: phish@evil.example",
    )  # fmt: skip
    await db.execute(
        "UPDATE invitations SET send_at = now() WHERE contact_id = ANY($1::text[])",
        [broken.contact_id, fine.contact_id],
    )

    [failed] = await invitation_events(
        stack, contact_ids={broken.contact_id}, type_suffix="invitation.failed"
    )
    assert failed["data"]["reason"] == "invitation invalide (site_name)"
    await async_wait_for(lambda: handler.to(fine.email), timeout=30)
    await asyncio.sleep(2)
    assert handler.to(broken.email) == [] and len(handler.to(fine.email)) == 1


# --------------------------------------------------------------------------- 4 + 14. refusals


async def test_a_refused_recipient_without_pipelining_fails_alone_without_its_address(
    stack: Any, service: Any, relay: Any, db: asyncpg.Connection
) -> None:
    handler, _ = relay
    refused = new_contact(user="refuse.jean.dupont", site="site-nopipe")
    others = [new_contact(user=f"nopipe-{n}", site="site-nopipe") for n in range(2)]
    temporary_before = await metric(
        service, "dispatch_provider_errors_total", channel="email", kind="temporary"
    )
    await send_contacts(stack, others[0], refused, others[1])

    [failed] = await invitation_events(
        stack, contact_ids={refused.contact_id}, type_suffix="invitation.failed"
    )
    assert failed["data"]["reason"] == "smtp 550 5.1.1"
    await invitation_events(
        stack, contact_ids={c.contact_id for c in others}, type_suffix="invitation.sent"
    )
    assert all(len(handler.to(contact.email)) == 1 for contact in others)
    [row] = await rows_of(db, [refused])
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 1, "smtp 550 5.1.1")
    assert await metric(
        service, "dispatch_provider_errors_total", channel="email", kind="temporary"
    ) == temporary_before  # fmt: skip
    assert await metric(service, "dispatch_provider_circuit_state", channel="email") == 0


async def test_the_purge_clears_every_personal_field_of_expired_and_never_sent_invitations(
    stack: Any, service: Any, relay: Any, issuer: Any, db: asyncpg.Connection
) -> None:
    handler, _ = relay
    async with httpx.AsyncClient(base_url=service.url) as client:
        path = f"/admin/v1/networks/{NETWORK}/sites/site-purge-never/rules"
        rules = {"delay_minutes": 6000, "expiry_days": 2}
        assert (
            await client.put(path, json=rules, headers=admin_of(issuer, NETWORK))
        ).status_code == 200
    never_sent = new_contact(user="purge-never", site="site-purge-never")
    not_yet = new_contact(user="purge-not-yet", site="site-purge-never")
    sent = new_contact(user="purge-sent", site="site-purge-sent")
    refused = new_contact(user="refuse.purge", site="site-purge-sent")
    await send_contacts(stack, never_sent, not_yet, sent, refused)
    await async_wait_for(
        lambda: db.fetchval(
            "SELECT count(*) = 2 FROM invitations WHERE contact_id = ANY($1::text[]) "
            "AND status IN ('sent', 'failed')",
            [sent.contact_id, refused.contact_id],
        ),
        timeout=30,
    )
    # Two days and a bit later for the never-sent one (its link would have been valid 2 days),
    # one day later for the other; the sent one has expired, after a failed reminder.
    await db.execute(
        "UPDATE invitations SET created_at = now() - interval '49 hours', last_error = 'x' "
        "WHERE contact_id = $1",
        never_sent.contact_id,
    )
    await db.execute(
        "UPDATE invitations SET created_at = now() - interval '25 hours' WHERE contact_id = $1",
        not_yet.contact_id,
    )
    await db.execute(
        "UPDATE invitations SET expires_at = now() - interval '1 second', "
        "last_error = 'smtp 451 4.3.2' WHERE contact_id = $1",
        sent.contact_id,
    )
    await db.execute(
        "UPDATE invitations SET created_at = now() - interval '8 days' WHERE contact_id = $1",
        refused.contact_id,
    )

    def purged(contact: ContactClosed) -> Any:
        return db.fetchrow(
            "SELECT * FROM invitations WHERE contact_id = $1 AND address IS NULL "
            "AND token IS NULL AND last_error IS NULL",
            contact.contact_id,
        )

    never_row = await async_wait_for(lambda: purged(never_sent), timeout=10)
    sent_row = await async_wait_for(lambda: purged(sent), timeout=10)
    refused_row = await async_wait_for(lambda: purged(refused), timeout=10)
    assert never_row["status"] == "expired" and never_row["sent_at"] is None
    assert sent_row["status"] == "expired" and sent_row["remind_at"] is None
    assert refused_row["status"] == "failed"
    [kept] = await rows_of(db, [not_yet])
    assert kept["status"] == "scheduled" and kept["address"] == "purge-not-yet@exemple.fr"
    # An expired invitation is never sent, even when it falls due.
    await db.execute(
        "UPDATE invitations SET send_at = now() WHERE contact_id = $1", never_sent.contact_id
    )
    await asyncio.sleep(1)
    assert handler.to(never_sent.email) == []


# --------------------------------------------------------------------------- 14. site managers


async def test_a_site_manager_writes_rules_only_under_the_network_of_their_site(
    stack: Any, service: Any, issuer: Any, db: asyncpg.Connection
) -> None:
    contact = new_contact(user="manager-site", site="site-geree")
    await send_contacts(stack, contact)
    await rows_of(db, [contact])
    local, _ = issuer
    manager = bearer(local.mint(subject="m", roles=[SITE_MANAGER], site_ids=["site-geree"]))
    claimed = bearer(
        local.mint(subject="m2", roles=[SITE_MANAGER], site_ids=["site-geree"], network=NETWORK)
    )
    foreign = "/admin/v1/networks/caf/sites/site-geree/rules"
    own = f"/admin/v1/networks/{NETWORK}/sites/site-geree/rules"
    async with httpx.AsyncClient(base_url=service.url) as client:
        assert (
            await client.put(foreign, json={"sampling_rate": 0}, headers=manager)
        ).status_code == 403
        assert (
            await client.put(foreign, json={"sampling_rate": 0}, headers=claimed)
        ).status_code == 403
        assert (await client.get(foreign, headers=manager)).status_code == 403
        unseen = "/admin/v1/networks/caf/sites/site-jamais-vue/rules"
        unseen_manager = bearer(
            local.mint(subject="m3", roles=[SITE_MANAGER], site_ids=["site-jamais-vue"])
        )
        assert (await client.put(unseen, json={}, headers=unseen_manager)).status_code == 403
        assert (
            await client.put(own, json={"sampling_rate": 0.5}, headers=manager)
        ).status_code == 200
        assert (
            await client.put(own, json={"sampling_rate": 0.5}, headers=claimed)
        ).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM rules WHERE network = 'caf'") == 0


# --------------------------------------------------------------------------- 5. headers


async def test_a_site_name_with_line_breaks_cannot_add_a_mail_header(sink: SmtpSink) -> None:
    settings = DispatchSettings(smtp_url=f"smtp://127.0.0.1:{sink.port}", smtp_connections=1)
    composer = MailComposer(settings, new_templates())
    smtp = SmtpChannel(settings)
    names = [
        "Agence\r\nReply-To: phish@evil.example",
        "Agence\nBcc: copie@evil.example",
        "Agence\rX-Injected: oui\x00\x85\u2028Cc: c@evil.example",
        "Agence très\r\nReply-To: phish@evil.example",  # non-ASCII: encoded words
    ]
    messages = [
        (
            f"u{n}@exemple.fr",
            composer.invitation(
                to=f"u{n}@exemple.fr",
                site_name=name,
                token=f"jeton{n}",
                invitation_id=f"inv-header-{n}",
                reminder=bool(n % 2),
            ),
        )
        for n, name in enumerate(names)
    ]
    assert await smtp.send_many(messages) == [None] * len(names)
    await smtp.close()
    received = read_maildir(sink.maildir)
    assert len(received) == len(names)
    for message in received:
        assert message["Reply-To"] is None and message["Bcc"] is None and message["Cc"] is None
        assert message["X-Injected"] is None
        assert len(message.get_all("From")) == 1 and len(message.get_all("Subject")) == 1
        assert str(message["From"].addresses[0].addr_spec) == settings.mail_from_address
        assert "Agence" in message["From"].addresses[0].display_name
        assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])


def test_a_header_value_with_a_control_character_is_refused_not_sent() -> None:
    composer = MailComposer(DispatchSettings(), new_templates())
    with pytest.raises(ValueError, match="control character"):
        composer.invitation(
            to="u@exemple.fr\r\nBcc: x@evil.example", site_name="Agence", token="t",
            invitation_id="inv-1",
        )  # fmt: skip


# --------------------------------------------------------------------------- telling the truth


def test_the_mail_promises_no_anonymity_and_links_the_legal_pages() -> None:
    settings = DispatchSettings(public_survey_base_url="https://avis.exemple.fr/")
    raw = MailComposer(settings, new_templates()).invitation(
        to="u@exemple.fr", site_name="Agence", token="jeton", invitation_id="inv-legal"
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in ("plain", "html"):
        body = message.get_body(preferencelist=(part,)).get_content()  # type: ignore[union-attr]
        assert "anonyme" not in body.lower()
        assert "jamais à évaluer un agent" in body
        assert "rappeler" in body
        for page in ("donnees-personnelles", "mentions-legales", "accessibilite"):
            assert f"https://avis.exemple.fr/{page}" in body


# --------------------------------------------------------------------------- pure helpers


def test_a_failure_reason_keeps_the_codes_and_nothing_personal() -> None:
    from survey_dispatch.domain import scrubbed, smtp_reason

    text = "5.1.1 <jean.dupont@exemple.fr>: Recipient address rejected"
    assert smtp_reason(550, text) == "smtp 550 5.1.1"
    assert smtp_reason(421, "Service not available") == "smtp 421"
    leaked = "refused jean.dupont@exemple.fr <x> +33 6 12 34 56 78\r\nnext"
    assert scrubbed(leaked) == "refused […] […] […] next"


def test_rules_problem_names_the_site_a_network_change_would_break() -> None:
    from survey_dispatch.domain import rules_problem

    rows = {("*", ""): {}, ("n", ""): {"window_start_hour": 17}, ("n", "s1"): {}}
    rows[("n", "s2")] = {"window_end_hour": 16}
    assert "site 's2'" in (rules_problem(rows, changed=("n", "")) or "")
    assert rules_problem(rows, changed=("n", "s1")) is None  # s1 alone is fine
    assert "site 's2'" in (rules_problem(rows, changed=("*", "")) or "")
    assert "network 'n'" in (
        rules_problem({("n", ""): ["not", "a", "mapping"]}, changed=("n", "")) or ""
    )


async def test_the_purge_forgets_inbox_ids_past_their_retention(
    service: Any, db: asyncpg.Connection
) -> None:
    """The inbox grew forever (issue #12, item 13): ids older than INBOX_RETENTION_DAYS go."""
    await db.execute(
        "INSERT INTO inbox (event_id, topic, received_at) VALUES "
        "('old-inbox-id', 't', now() - interval '40 days'), ('new-inbox-id', 't', now())"
    )

    async def old_forgotten() -> bool:
        return not await db.fetchval("SELECT count(*) FROM inbox WHERE event_id = 'old-inbox-id'")

    await async_wait_for(old_forgotten, timeout=10)
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE event_id = 'new-inbox-id'") == 1


async def test_the_mail_tells_the_link_validity_of_the_sites_expiry_rule(
    stack: Any, service: Any, relay: Any, issuer: Any, db: asyncpg.Connection
) -> None:
    """Issue #15: « valable 7 jours » was written in the template whatever the site's
    `expiry_days`; the invitation tells the rule, the reminder the time its link has left."""
    handler, _ = relay
    async with httpx.AsyncClient(base_url=service.url) as client:
        path = f"/admin/v1/networks/{NETWORK}/sites/site-expiry-3/rules"
        changed = await client.put(
            path, json={"expiry_days": 3, "reminder_hours": 24}, headers=admin_of(issuer, NETWORK)
        )
        assert changed.status_code == 200, changed.text
    contact = new_contact(user="expiry-three", site="site-expiry-3")
    await send_contacts(stack, contact)
    [invitation] = await async_wait_for(lambda: handler.to(contact.email) or None, timeout=30)

    def texts(message: Any) -> tuple[str, str]:
        return tuple(  # type: ignore[return-value]
            message.get_body(preferencelist=(kind,)).get_content() for kind in ("plain", "html")
        )

    assert all("valable 3 jours" in text and "7 jours" not in text for text in texts(invitation))
    # The reminder is due, its link has 50 hours left: it says two days, not three or seven.
    await db.execute(
        "UPDATE invitations SET remind_at = now(), expires_at = now() + interval '50 hours' "
        "WHERE contact_id = $1",
        contact.contact_id,
    )
    mails = await async_wait_for(
        lambda: (found := handler.to(contact.email)) and len(found) == 2 and found, timeout=30
    )
    assert "Rappel" in mails[1]["Subject"]
    assert all("valable encore 2 jours" in text for text in texts(mails[1]))


# --------------------------------------------------------------------------- retried sends first


async def test_a_retried_send_keeps_its_place_ahead_of_the_backlog(
    service: Any, db: asyncpg.Connection
) -> None:
    """A send that timed out may have been delivered (the chaos run: the relay stored the mail,
    then hung), and its link works only once the resend is recorded. After its backoff it goes
    before the invitations that fell due after it: it waited 8 minutes behind a backlog of
    1,041 invitations when a retry moved it to the end of the queue."""
    channel = f"order-{uuid.uuid4().hex[:8]}"  # rows no sender of the running service claims
    now = datetime.now(UTC)
    transaction = db.transaction()  # rolled back: the running service never sees these rows
    await transaction.start()
    try:
        ids = [await _due_invitation(db, channel, due=now - timedelta(minutes=10 - i))
               for i in range(4)]  # fmt: skip
        await repository.mark_retry(
            db, invitation_id=ids[0], retry_at=now + timedelta(seconds=5), error="smtp timeout"
        )
        during = await repository.lock_due_invitations(db, now=now, channels=[channel], limit=4)
        assert [row["invitation_id"] for row in during] == ids[1:]  # resting during its backoff
        after = await repository.lock_due_invitations(
            db, now=now + timedelta(seconds=6), channels=[channel], limit=1
        )
        assert [row["invitation_id"] for row in after] == ids[:1]
        # A half-open provider's single probe takes the row that waited longest since it was
        # last tried: a long outage spreads its failures, not the oldest row's attempts.
        probe = await repository.lock_due_invitations(
            db, now=now + timedelta(seconds=6), channels=[channel], limit=1, probe=True
        )
        assert [row["invitation_id"] for row in probe] == ids[1:2]
    finally:
        await transaction.rollback()


async def _due_invitation(db: asyncpg.Connection, channel: str, *, due: datetime) -> str:
    suffix = uuid.uuid4().hex[:12]
    await db.execute(
        "INSERT INTO contacts (contact_id, network, site_id, decided_at, decision) "
        "VALUES ($1, $2, 'site-order', now(), 'invite')",
        f"crm-{suffix}", NETWORK,
    )  # fmt: skip
    await db.execute(
        "INSERT INTO invitations (invitation_id, contact_id, network, site_id, channel, motif, "
        "user_pseudo_id, survey_channel, token_sha256, questionnaire_version, closed_at, "
        "send_at, expires_at) VALUES ($1, $2, $3, 'site-order', 'telephone', 'm', $4, $5, $6, "
        "'urssaf-chaud-2024-v1', $7, $7, $7::timestamptz + interval '7 days')",
        f"inv-{suffix}", f"crm-{suffix}", NETWORK, "p" * 16, channel, suffix, due,
    )  # fmt: skip
    return f"inv-{suffix}"
