"""POST /v1/contacts through the real service, database, broker and SMTP sink.

A CRM that cannot speak Kafka posts CloudEvents over HTTP (structured, binary, batch); the
events go through the outbox to crm.contact.closed.v1, and the normal consumer decides and mails.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from fastapi import HTTPException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from survey_dispatch.ingest import BATCH, STRUCTURED, Refusal, candidates, validate

from contracts.envelope import CloudEvent, encode
from contracts.events import ContactClosed, SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED
from plumbing.auth import (
    CRM_INGEST,
    CRM_ROLES,
    NETWORK_ADMIN,
    AuthError,
    JwksSource,
    LocalIssuer,
    TokenVerifier,
    bearer,
)
from plumbing.crm_simulator import CrmSimulator
from plumbing.sinks import read_maildir
from plumbing.testing import async_wait_for, read_topic

pytestmark = pytest.mark.integration

NETWORK = "urssaf"
ISSUER = "http://127.0.0.1/dev-issuer"
INGEST_AUDIENCE = "enquetes-ingest"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalIssuer, str]:
    local = LocalIssuer(issuer=ISSUER, audience=INGEST_AUDIENCE)
    return local, local.write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture(scope="module")
def service(start_dispatch: Any):
    system, service = start_dispatch(ADMIN_ISSUER=ISSUER)
    yield service
    system.stop()


@pytest.fixture(scope="module")
def crm(issuer: tuple[LocalIssuer, str]) -> dict[str, str]:
    """The urssaf CRM's client-credentials token."""
    token = issuer[0].mint(subject="crm-urssaf", roles=[CRM_INGEST], network=NETWORK)
    return bearer(token)


@pytest.fixture
async def client(service: Any):
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        yield http


@pytest.fixture
async def db(stack: Any):
    connection = await asyncpg.connect(
        stack.database_url, server_settings={"search_path": "survey_dispatch"}
    )
    yield connection
    await connection.close()


# --------------------------------------------------------------------------- helpers


def new_contact(user: str, **changes: Any) -> ContactClosed:
    site = f"site-ingest-{user}"
    base = CrmSimulator(seed=7).contact(site=(site, f"Accueil {site}", NETWORK))
    defaults = {
        "user_ref": f"ref-{user}-{uuid.uuid4().hex[:8]}",
        "email": f"{user}@exemple.fr",
        "mobile_phone": None,
        "preferred_channel": SurveyChannel.EMAIL,
        "contact_id": f"crm-{uuid.uuid4().hex[:16]}",
        "opted_out": False,
    }
    return base.model_copy(update=defaults | changes)


def structured(contact: ContactClosed, event_id: str | None = None) -> dict[str, Any]:
    event = CrmSimulator.event(contact)
    document: dict[str, Any] = json.loads(encode(event))
    if event_id is not None:
        document["id"] = event_id
    return document


def mails_to(stack: Any, address: str) -> list[Any]:
    return [message for message in read_maildir(stack.maildir) if message["To"] == address]


async def ids_on_topic_until(stack: Any, last_id: str) -> list[str]:
    """The event ids on crm.contact.closed.v1, read until `last_id` shows: every record of
    its partition relayed before it is in the list."""
    records = await read_topic(
        stack.kafka_bootstrap_servers,
        CRM_CONTACT_CLOSED.name,
        until=lambda found: any(json.loads(r.value)["id"] == last_id for r in found),
        timeout=20,
    )
    return [json.loads(record.value)["id"] for record in records]


async def post_structured(client: httpx.AsyncClient, document: Any, headers: dict[str, str]):
    return await client.post(
        "/v1/contacts",
        content=json.dumps(document).encode(),
        headers={"Content-Type": f"{STRUCTURED}; charset=utf-8", **headers},
    )


# --------------------------------------------------------------------------- the three modes


async def test_structured_binary_and_batch_contacts_are_decided_and_mailed(
    stack, service, client, crm
):
    one, two, three, four = (new_contact(f"ingest-mode-{n}") for n in range(4))

    single = await post_structured(client, structured(one), crm)
    assert single.status_code == 202, single.text
    assert single.json()["accepted"] == 1

    event = structured(two)
    data = event.pop("data")
    ce_headers = {f"ce-{name}": quote(str(value), safe="") for name, value in event.items()}
    ce_headers.pop("ce-datacontenttype", None)
    binary = await client.post(
        "/v1/contacts",
        content=json.dumps(data).encode(),
        headers={"Content-Type": "application/json", **ce_headers, **crm},
    )
    assert binary.status_code == 202, binary.text
    assert binary.json()["events"] == [{"index": 0, "id": event["id"], "result": "queued"}]

    batch = await client.post(
        "/v1/contacts",
        content=json.dumps([structured(three), structured(four)]).encode(),
        headers={"Content-Type": BATCH, **crm},
    )
    assert batch.status_code == 202, batch.text
    assert [item["result"] for item in batch.json()["events"]] == ["queued", "queued"]

    for contact in (one, two, three, four):
        assert contact.email is not None
        await async_wait_for(lambda c=contact: mails_to(stack, c.email), timeout=60)


async def test_a_repeated_event_id_is_acknowledged_and_queued_once(stack, service, client, crm):
    contact = new_contact("ingest-repeat")
    document = structured(contact)
    first = await post_structured(client, document, crm)
    again = await post_structured(client, document, crm)
    in_a_batch = await client.post(
        "/v1/contacts",
        content=json.dumps([document, document]).encode(),
        headers={"Content-Type": BATCH, **crm},
    )

    assert first.json()["events"][0]["result"] == "queued"
    assert again.status_code == 202
    assert again.json() == {
        "accepted": 0,
        "duplicates": 1,
        "rejected": 0,
        "events": [{"index": 0, "id": document["id"], "result": "duplicate"}],
    }
    assert [e["result"] for e in in_a_batch.json()["events"]] == ["duplicate", "duplicate"]
    await async_wait_for(lambda: mails_to(stack, "ingest-repeat@exemple.fr"), timeout=60)
    # The record went to the topic once (the consumer's inbox would hide a second one): a
    # marker of the same site (same partition), posted after, is read after any copy of it.
    marker = structured(new_contact("ingest-repeat-marker", site_id=contact.site_id))
    assert (await post_structured(client, marker, crm)).status_code == 202
    await async_wait_for(lambda: mails_to(stack, "ingest-repeat-marker@exemple.fr"), timeout=60)
    assert (await ids_on_topic_until(stack, marker["id"])).count(document["id"]) == 1
    assert len(mails_to(stack, "ingest-repeat@exemple.fr")) == 1


async def test_concurrent_requests_with_one_id_queue_it_once(service, client, crm):
    document = structured(new_contact("ingest-race"))
    answers = await asyncio.gather(*(post_structured(client, document, crm) for _ in range(6)))
    assert {answer.status_code for answer in answers} == {202}
    results = sorted(answer.json()["events"][0]["result"] for answer in answers)
    assert results == ["duplicate"] * 5 + ["queued"]


async def test_a_reused_id_with_other_data_is_refused_409(service, client, crm):
    document = structured(new_contact("ingest-reuse"))
    assert (await post_structured(client, document, crm)).status_code == 202
    other = structured(new_contact("ingest-reuse-other"), event_id=document["id"])

    answer = await post_structured(client, other, crm)

    assert answer.status_code == 409
    [item] = answer.json()["events"]
    assert item["result"] == "rejected" and item["status"] == 409
    assert "déjà utilisé" in item["message"]


# --------------------------------------------------------------------------- who may send


async def test_no_token_is_401(service, client):
    answer = await post_structured(client, structured(new_contact("ingest-anon")), {})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_token_of_another_network_is_403_and_nothing_is_queued(
    stack, service, client, issuer, db
):
    cnav = bearer(issuer[0].mint(subject="crm-cnav", roles=[CRM_INGEST], network="cnav"))
    document = structured(new_contact("ingest-wrong-network"))

    answer = await post_structured(client, document, cnav)

    assert answer.status_code == 403
    assert answer.json()["type"] == "urn:fr-enquetes:problem:wrong_network"
    assert answer.json()["events"][0]["reason"].startswith("data.network:")
    assert await db.fetchval(
        "SELECT count(*) FROM ingested_events WHERE event_id = $1", document["id"]
    ) == 0  # fmt: skip


async def test_admin_tokens_and_tokens_without_network_are_refused(service, client, issuer):
    document = structured(new_contact("ingest-admin"))
    admin = issuer[0].mint(subject="admin", roles=[NETWORK_ADMIN], network=NETWORK)
    no_network = issuer[0].mint(subject="crm-x", roles=[CRM_INGEST])
    admin_audience = issuer[0].mint(
        subject="crm-y", roles=[CRM_INGEST], network=NETWORK, aud="enquetes-admin"
    )

    assert (await post_structured(client, document, bearer(admin))).status_code == 401
    assert (await post_structured(client, document, bearer(admin_audience))).status_code == 401
    assert (await post_structured(client, document, bearer(no_network))).status_code == 403


# --------------------------------------------------------------------------- bad events


async def test_a_bad_event_in_a_batch_is_listed_with_its_reason(stack, service, client, crm):
    good = new_contact("ingest-batch-good")
    missing_user = structured(new_contact("ingest-batch-bad"))
    del missing_user["data"]["user_ref"]
    control_chars = structured(new_contact("ingest-batch-ctl"))
    control_chars["data"]["site_name"] = "Accueil\r\nBcc: x@evil.example"
    wrong_type = structured(new_contact("ingest-batch-type"))
    wrong_type["type"] = "fr.enquetes.response.submitted.v1"
    other_network = structured(new_contact("ingest-batch-net", network="cnav"))

    answer = await client.post(
        "/v1/contacts",
        content=json.dumps(
            [structured(good), missing_user, control_chars, wrong_type, other_network, 42]
        ).encode(),
        headers={"Content-Type": BATCH, **crm},
    )

    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 5)
    rejected = {item["index"]: item for item in body["events"] if item["result"] == "rejected"}
    assert rejected[1]["status"] == 422
    assert rejected[1]["reason"] == "data.user_ref: Field required"
    assert rejected[1]["message"] == "data.user_ref : champ obligatoire absent"
    assert rejected[1]["id"] == missing_user["id"]
    assert rejected[2]["reason"].startswith("data.site_name: String should match pattern")
    assert "evil" not in rejected[2]["reason"] + rejected[2]["message"]  # never echoes a value
    assert rejected[3]["reason"] == "type: expected fr.enquetes.contact.closed.v1"
    assert rejected[4]["status"] == 403
    assert rejected[5] == {
        "index": 5, "id": None, "result": "rejected", "status": 422,
        "reason": "an event is a JSON object", "message": "un événement est un objet JSON",
    }  # fmt: skip
    await async_wait_for(lambda: mails_to(stack, "ingest-batch-good@exemple.fr"), timeout=60)
    assert mails_to(stack, "ingest-batch-bad@exemple.fr") == []


async def test_a_batch_with_no_good_event_is_422(service, client, crm):
    bad = structured(new_contact("ingest-all-bad"))
    bad["data"]["channel"] = "pigeon"
    answer = await client.post(
        "/v1/contacts", content=json.dumps([bad]).encode(), headers={"Content-Type": BATCH, **crm}
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "urn:fr-enquetes:problem:invalid_events"
    assert problem["errors"] == [{"detail": problem["events"][0]["reason"], "pointer": "#/0"}]
    assert problem["events"][0]["message"] == "data.channel : valeur hors de la liste prévue"


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b"{}", 415),
        (STRUCTURED, b"{not json", 400),
        (BATCH, b"{}", 400),
        (BATCH, b"[]", 400),
    ],
)
async def test_unreadable_requests_are_refused_with_a_reason(
    service, client, crm, content_type, body, status
):
    answer = await client.post(
        "/v1/contacts", content=body, headers={"Content-Type": content_type, **crm}
    )
    assert answer.status_code == status
    assert " / " in answer.json()["detail"]  # French / English


async def test_a_body_over_the_cap_is_413(service, client, crm):
    documents = [structured(new_contact(f"ingest-big-{n}")) for n in range(200)]
    answer = await client.post(
        "/v1/contacts",
        content=json.dumps(documents).encode(),
        headers={"Content-Type": BATCH, **crm},
    )
    assert answer.status_code == 413


async def test_no_contact_point_reaches_the_service_log(stack, service, client, crm):
    contact = new_contact("ingest-log-privacy", email="ingest.log.privacy@exemple.fr")
    bad = structured(contact)
    bad["data"]["channel"] = "pigeon"
    await post_structured(client, structured(contact), crm)
    await post_structured(client, bad, crm)
    await async_wait_for(lambda: mails_to(stack, "ingest.log.privacy@exemple.fr"), timeout=60)

    text = service.log_path.read_text(encoding="utf-8", errors="replace")
    assert "contacts ingested" in text
    assert "ingest.log.privacy" not in text
    assert contact.user_ref not in text


# --------------------------------------------------------------------------- never a 5xx


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40)


def mutated_events() -> st.SearchStrategy[Any]:
    """A valid event with one attribute or data field replaced by anything."""
    fields = ["id", "source", "type", "time", "specversion", "subject", "traceparent", "x"]
    data_fields = ["contact_id", "closed_at", "site_id", "network", "channel", "email", "user_ref"]

    def build(where: str, name: str, value: Any) -> Any:
        document = structured(new_contact("ingest-fuzz"))
        (document if where == "envelope" else document["data"])[name] = value
        return document

    return st.one_of(
        st.builds(build, st.just("envelope"), st.sampled_from(fields), JSON_VALUES),
        st.builds(build, st.just("data"), st.sampled_from(data_fields), JSON_VALUES),
    )


def test_no_generated_request_makes_the_ingest_fail(service, crm):
    """Random modes, headers and bodies with a valid CRM token: a 2xx or a 4xx, never a 5xx."""
    bodies = st.one_of(
        st.binary(max_size=200),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        mutated_events().map(lambda event: json.dumps(event).encode()),
        st.lists(mutated_events(), max_size=3).map(lambda events: json.dumps(events).encode()),
        st.integers(1, 20_000).map(lambda depth: b"[" * depth + b"]" * depth),
    )
    content_types = st.sampled_from(
        [STRUCTURED, BATCH, "application/json", "text/plain", "", f"{STRUCTURED}; charset=x"]
    )
    ce_headers = st.dictionaries(
        st.sampled_from(["ce-specversion", "ce-id", "ce-type", "ce-time", "ce-source", "ce-x-y"]),
        HEADER_TEXT,
        max_size=5,
    )

    with httpx.Client(base_url=service.url, timeout=30) as http:

        @given(body=bodies, content_type=content_types, extra=ce_headers)
        @settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def check(body: bytes, content_type: str, extra: dict[str, str]) -> None:
            headers = {"Content-Type": content_type, **extra, **crm}
            answer = http.post("/v1/contacts", content=body, headers=headers)
            assert answer.status_code < 500, answer.text

        check()


# --------------------------------------------------------------------------- units


def test_binary_mode_attributes_are_percent_decoded():
    mode, [event] = candidates(
        "application/json",
        {"ce-specversion": "1.0", "ce-source": "%2Fcrm%20a", "ce-id": "x"},
        b'{"a": 1}',
    )
    assert mode == "binary"
    assert event == {
        "specversion": "1.0", "source": "/crm a", "id": "x",
        "datacontenttype": "application/json", "data": {"a": 1},
    }  # fmt: skip


def test_a_valid_event_of_the_right_network_passes():
    document = structured(new_contact("unit"))
    assert isinstance(validate(document, network=NETWORK), CloudEvent)
    assert validate(document, network="cnav").status == 403  # type: ignore[union-attr]


async def test_an_ingest_verifier_refuses_admin_roles_and_an_admin_verifier_crm_roles(tmp_path):
    local = LocalIssuer(issuer=ISSUER, audience="shared")
    url = local.write_jwks(tmp_path / "jwks.json")

    ingest = TokenVerifier(jwks=JwksSource(url), issuer=ISSUER, audience="shared", roles=CRM_ROLES)
    admin = TokenVerifier(jwks=JwksSource(url), issuer=ISSUER, audience="shared")
    crm_token = local.mint(subject="crm", roles=[CRM_INGEST, NETWORK_ADMIN], network=NETWORK)
    admin_token = local.mint(subject="adm", roles=[NETWORK_ADMIN], network=NETWORK)

    assert (await ingest.verify(crm_token)).roles == frozenset({CRM_INGEST})
    assert (await admin.verify(crm_token)).roles == frozenset({NETWORK_ADMIN})
    with pytest.raises(AuthError, match="no accepted role"):
        await ingest.verify(admin_token)
    with pytest.raises(AuthError, match="no admin role"):
        await admin.verify(local.mint(subject="crm", roles=[CRM_INGEST], network=NETWORK))


def test_deep_nesting_is_a_400_and_envelope_riders_are_refused():
    with pytest.raises(HTTPException) as deep:
        candidates(STRUCTURED, {}, b"[" * 50_000 + b"]" * 50_000)
    assert deep.value.status_code == 400
    with pytest.raises(HTTPException) as too_many:
        candidates(BATCH, {}, json.dumps([{}] * 1001).encode())
    assert too_many.value.status_code == 413
    document = structured(new_contact("unit"))
    for name, value in [("traceparent", {"a": [1]}), ("data_base64", "eA=="), ("Big", "x")]:
        refused = validate(document | {name: value}, network=NETWORK)
        assert isinstance(refused, Refusal) and refused.status == 422, name
    assert isinstance(validate(document | {"id": "a\x00b"}, network=NETWORK), Refusal)
    # The distributed tracing extension is validated: a W3C traceparent, or a 422.
    refused = validate(document | {"traceparent": "00-ab-cd-01"}, network=NETWORK)
    assert isinstance(refused, Refusal) and refused.status == 422
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    accepted = validate(document | {"traceparent": traceparent}, network=NETWORK)
    assert isinstance(accepted, CloudEvent) and accepted.traceparent == traceparent
