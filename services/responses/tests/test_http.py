"""The survey links over HTTP against the real service process: every way a link can be closed,
double submits, drafts, CSRF, rate limits, security headers, and no IP address stored."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from survey_responses import security
from survey_responses.settings import ResponsesSettings

from contracts.topics import SURVEY_RESPONSE
from plumbing.testing import read_topic

pytestmark = pytest.mark.integration

REQUIRED = {"satisfaction_globale": "8", "recommandation": "9"}
_addresses = itertools.count(1)


def client(service, address: str | None = None) -> httpx.AsyncClient:
    """Each test speaks from its own address (X-Forwarded-For is believed from 127.0.0.1, a
    trusted proxy by default), so the per-address limit of one test never throttles another."""
    address = address or f"198.51.100.{next(_addresses)}"
    return httpx.AsyncClient(base_url=service.url, headers={"X-Forwarded-For": address})


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


async def stored(db, token: str) -> dict[str, Any]:
    """What the database holds for this link: its response and its draft."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM responses r WHERE r.invitation_id = i.invitation_id)"
        " AS responses,"
        " (SELECT answers::text FROM drafts d WHERE d.invitation_id = i.invitation_id) AS draft"
        " FROM invitations i WHERE token_sha256 = $1",
        digest,
    )
    return dict(row)


async def events_about(stack, contact_id: str, *, settle: float = 1.5) -> list[dict[str, Any]]:
    """Every `response submitted` event of this contact on the broker, after `settle` seconds."""
    started = time.monotonic()
    records = await read_topic(
        stack.kafka_bootstrap_servers,
        SURVEY_RESPONSE.name,
        until=lambda _: time.monotonic() - started > settle,
        timeout=settle + 30,
    )
    return [json.loads(r.value) for r in records if contact_id.encode() in r.value]


async def test_unknown_and_tampered_links_are_404_and_say_nothing_of_other_links(service, invite):
    [token] = await invite()
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    async with client(service) as http:
        pages = [
            await http.get(f"/s/{candidate}")
            for candidate in (tampered, "x" * 500, "%00%ff", "é" * 20, token.upper())
        ]
        api = await http.post(f"/v1/responses/{tampered}", json={"answers": REQUIRED})
    for page in pages:
        assert page.status_code == 404
        assert "Ce lien n'est pas reconnu." in page.text
        assert "Montreuil" not in page.text  # nothing about any site
    assert len({page.text for page in pages}) == 1, "every unknown link gets the very same page"
    assert api.status_code == 404 and api.json()["error"] == "unknown"


async def test_expired_link_is_410_and_changes_nothing(service, invite, db, stack):
    [token] = await invite(expires_in=timedelta(seconds=-1), contact_id="crm-expired")
    async with client(service) as http:
        page = await http.get(f"/s/{token}")
        form = await http.post(f"/s/{token}", data={**REQUIRED, "action": "submit", "csrf": "0"})
        draft = await http.post(f"/s/{token}", data={**REQUIRED, "action": "save", "csrf": "0"})
        api = await http.post(f"/v1/responses/{token}", json={"answers": REQUIRED})
        api_draft = await http.post(
            f"/v1/responses/{token}", json={"answers": REQUIRED, "partial": True}
        )
    assert page.status_code == form.status_code == draft.status_code == 410
    assert "Ce lien a expiré." in page.text and "Montreuil" in page.text
    assert api.status_code == api_draft.status_code == 410
    assert api.headers["content-type"] == "application/problem+json"  # RFC 9457 (issue #16)
    assert api.json() == {
        "type": "urn:fr-enquetes:problem:expired",
        "title": "Gone",
        "status": 410,
        "detail": "Ce lien a expiré.",
        "instance": f"/v1/responses/{token}",
        "error": "expired",
        "message": "Ce lien a expiré.",
    }
    assert await stored(db, token) == {"responses": 0, "draft": None}
    assert await events_about(stack, "crm-expired") == []


async def test_answered_link_is_409_and_a_replay_changes_nothing(service, invite, db, stack):
    [token] = await invite(contact_id="crm-replayed")
    async with client(service) as http:
        page = await http.get(f"/s/{token}")
        csrf = csrf_of(page)
        first = await http.post(f"/s/{token}", data={**REQUIRED, "csrf": csrf, "action": "submit"})
        assert first.status_code == 200 and "vos réponses sont bien enregistrées" in first.text
        change = {"recommandation": "0", "csrf": csrf}
        replays = [
            await http.post(f"/s/{token}", data={**change, "action": "submit"}),
            await http.post(f"/s/{token}", data={**change, "action": "save"}),
            await http.get(f"/s/{token}"),
        ]
        api = await http.post(f"/v1/responses/{token}", json={"answers": REQUIRED})
    for replay in replays:
        assert replay.status_code == 409
        assert "Vous avez déjà répondu à ce questionnaire." in replay.text
    assert api.status_code == 409 and api.json()["error"] == "answered"
    assert await stored(db, token) == {"responses": 1, "draft": None}
    [event] = await events_about(stack, "crm-replayed")
    assert event["data"]["answers"]["recommandation"] == 9


async def test_a_double_tap_stores_one_response_and_emits_one_event(service, invite, db, stack):
    [token] = await invite(contact_id="crm-double-tap")
    async with client(service) as http:
        csrf = csrf_of(await http.get(f"/s/{token}"))
        form = {**REQUIRED, "csrf": csrf, "action": "submit"}
        answers = await asyncio.gather(*(http.post(f"/s/{token}", data=form) for _ in range(6)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 409, 409, 409, 409, 409]  # the others see "already answered, thanks"
    assert await stored(db, token) == {"responses": 1, "draft": None}
    assert len(await events_about(stack, "crm-double-tap")) == 1


async def test_partial_answers_are_saved_and_resumed_until_submitted(service, invite, db, stack):
    [token] = await invite(contact_id="crm-draft")
    async with client(service) as http:
        csrf = csrf_of(await http.get(f"/s/{token}"))
        saved = await http.post(
            f"/s/{token}",
            data={
                "satisfaction_globale": "7",
                "suggestion": "À suivre",
                "csrf": csrf,
                "action": "save",
            },
        )
        assert saved.status_code == 200 and "Votre questionnaire est mis de côté." in saved.text
        resumed = await http.get(f"/s/{token}")
        assert 'value="7" checked' in resumed.text and "À suivre</textarea>" in resumed.text
        assert await events_about(stack, "crm-draft", settle=0.5) == []

        api_saved = await http.post(
            f"/v1/responses/{token}", json={"answers": {"recommandation": 4}, "partial": True}
        )
        assert api_saved.status_code == 200 and api_saved.json() == {"status": "saved"}
        assert json.loads((await stored(db, token))["draft"]) == {"recommandation": 4}

        done = await http.post(f"/v1/responses/{token}", json={"answers": REQUIRED})
        assert done.status_code == 201 and done.json() == {"status": "stored"}
    assert await stored(db, token) == {"responses": 1, "draft": None}
    assert len(await events_about(stack, "crm-draft")) == 1


async def test_invalid_answers_get_french_messages_and_store_nothing(service, invite, db):
    [token] = await invite()
    async with client(service) as http:
        csrf = csrf_of(await http.get(f"/s/{token}"))
        page = await http.post(
            f"/s/{token}",
            data={
                "satisfaction_globale": "11",
                "canal": "pigeon",
                "csrf": csrf,
                "action": "submit",
            },
        )
        api = await http.post(
            f"/v1/responses/{token}",
            json={"answers": {**REQUIRED, "age": 42, "suggestion": "\x00"}},
        )
        malformed = await http.post(f"/v1/responses/{token}", json={"answers": [1, 2]})
    assert page.status_code == 422
    assert "Merci de corriger 3 réponses" in page.text
    assert "attend une note de 1 à 10" in page.text
    assert "Merci de répondre à « Recommanderiez-vous ce service à un proche ? »" in page.text
    assert api.status_code == 422 and api.json()["problems"] == {"age": "Question inconnue : age."}
    assert api.json()["errors"] == [{"name": "age", "detail": "Question inconnue : age."}]
    assert malformed.status_code == 422 and malformed.json()["error"] == "invalid_request"
    assert await stored(db, token) == {"responses": 0, "draft": None}


async def test_forged_form_posts_are_refused(service, invite, db):
    token, other = await invite(2)
    async with client(service) as http:
        other_csrf = csrf_of(await http.get(f"/s/{other}"))
        csrf = csrf_of(await http.get(f"/s/{token}"))
        answers = {**REQUIRED, "action": "submit"}
        refused = [
            await http.post(f"/s/{token}", data=answers),
            await http.post(f"/s/{token}", data={**answers, "csrf": other_csrf}),
            await http.post(
                f"/s/{token}",
                data={**answers, "csrf": csrf},
                headers={"Sec-Fetch-Site": "cross-site"},
            ),
        ]
        too_big = await http.post(
            f"/s/{token}", data={**answers, "csrf": csrf, "suggestion": "x" * 40_000}
        )
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert "Le formulaire a expiré." in refused[0].text
    assert too_big.status_code == 413
    assert await stored(db, token) == {"responses": 0, "draft": None}


async def test_one_link_is_rate_limited_with_a_french_message(service, invite):
    [token] = await invite()
    draft = {"answers": {"recommandation": 5}, "partial": True}
    async with client(service) as http:
        pages = [await http.get(f"/s/{token}") for _ in range(12)]  # reading is no abuse
        saves = [await http.post(f"/v1/responses/{token}", json=draft) for _ in range(10)]
        page = await http.post(f"/s/{token}", data={"csrf": csrf_of(pages[0]), "action": "save"})
        api = await http.post(f"/v1/responses/{token}", json=draft)
    assert {p.status_code for p in pages} == {200}
    assert [s.status_code for s in saves] == [200] * 10  # default burst: 10 posts a link
    assert page.status_code == api.status_code == 429
    assert "Merci de patienter une minute" in page.text
    assert int(page.headers["Retry-After"]) >= 1
    assert api.json()["error"] == "too_many_requests"


async def test_one_address_is_rate_limited_across_links(service):
    async with client(service, "192.0.2.66") as http:
        # Default burst 60, refilled at 2 a second: on a busy machine the 61st request may come
        # after a refill, so a few more are allowed before the 429, never fewer than the burst.
        pages = [await http.get(f"/s/guess-{n}") for n in range(70)]
        api = await http.post("/v1/responses/guess-x", json={"answers": REQUIRED})
    statuses = [page.status_code for page in pages]
    assert statuses[:60] == [404] * 60
    assert 429 in statuses
    assert api.status_code == 429 and api.json()["error"] == "too_many_requests"
    async with client(service, "192.0.2.67") as neighbour:  # another address is not affected
        assert (await neighbour.get("/s/guess-0")).status_code == 404


async def test_security_headers_and_hsts_behind_tls(service, invite):
    [token] = await invite()
    async with client(service) as http:
        plain = await http.get(f"/s/{token}")
        behind_tls = await http.get(f"/s/{token}", headers={"X-Forwarded-Proto": "https"})
        asset = await http.get("/static/dsfr/core/core.main.min.css")
        api = await http.post("/v1/responses/unknown", json={"answers": {}})
    csp = plain.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert plain.headers["Referrer-Policy"] == "no-referrer"
    assert plain.headers["Cache-Control"] == "no-store"
    assert plain.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in plain.headers
    assert behind_tls.headers["Strict-Transport-Security"].startswith("max-age=")
    assert asset.headers["Cache-Control"].startswith("public")  # assets may be cached
    assert api.headers["Cache-Control"] == "no-store" and "Content-Security-Policy" in api.headers
    assert "<script>" not in plain.text and " style=" not in plain.text  # nothing inline


async def test_the_address_of_the_user_is_never_stored(service, invite, db, stack):
    address = "203.0.113.77"
    [token] = await invite(contact_id="crm-private")
    async with client(service, address) as http:
        csrf = csrf_of(await http.get(f"/s/{token}"))
        await http.post(
            f"/s/{token}", data={"satisfaction_globale": "3", "csrf": csrf, "action": "save"}
        )
        done = await http.post(f"/s/{token}", data={**REQUIRED, "csrf": csrf, "action": "submit"})
        assert done.status_code == 200
    [event] = await events_about(stack, "crm-private")
    assert address not in json.dumps(event)
    columns = await db.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'survey_responses'"
    )
    assert not [
        c for c in columns if c["data_type"] == "inet" or re.search(r"ip|addr", c["column_name"])
    ]
    for table in {c["table_name"] for c in columns}:
        rows = await db.fetch(f'SELECT t::text AS row FROM survey_responses."{table}" t')
        assert not [r for r in rows if address in r["row"]], f"{table} holds the address"
    assert address not in service.log_path.read_text(encoding="utf-8", errors="replace")


async def test_the_json_api_is_described_by_openapi(service):
    async with client(service) as http:
        spec = (await http.get("/openapi.json")).json()
        docs = await http.get("/docs")
    operation = spec["paths"]["/v1/responses/{token}"]["post"]
    assert {"201", "200", "404", "409", "410", "422", "429"} <= set(operation["responses"])
    assert not [path for path in spec["paths"] if path.startswith("/s/")]
    assert docs.status_code == 404  # Swagger UI would load scripts from a CDN


async def test_characters_postgres_refuses_are_dropped_not_a_server_error(service, invite, db):
    [token] = await invite()
    body = (
        '{"answers": {"satisfaction_globale": 5, "recommandation": 6,'
        ' "suggestion": "a\\u0000b\\ud800c"}}'
    )
    async with client(service) as http:
        answer = await http.post(
            f"/v1/responses/{token}", content=body, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 201, answer.text
    assert (
        await db.fetchval(
            "SELECT answers->>'suggestion' FROM responses ORDER BY answered_at DESC LIMIT 1"
        )
        == "ab?c"
    )


async def test_static_assets_are_compressed_once_and_cached_by_browsers(service):
    path = "/static/dsfr/core/core.main.min.css"
    async with client(service) as http:
        compressed = await http.get(path, headers={"Accept-Encoding": "gzip"})
        plain = await http.get(path, headers={"Accept-Encoding": "identity"})
        again = await http.get(path, headers={"If-None-Match": compressed.headers["ETag"]})
        missing = await http.get("/static/dsfr/../../pyproject.toml")
    assert compressed.headers["Content-Encoding"] == "gzip"
    assert int(compressed.headers["Content-Length"]) < 30_000 < len(plain.content)
    assert compressed.content == plain.content  # httpx decoded it: the same file
    assert "Content-Encoding" not in plain.headers
    assert compressed.headers["Cache-Control"] == "public, max-age=86400"
    assert compressed.headers["Vary"] == "Accept-Encoding"
    assert again.status_code == 304
    assert missing.status_code == 404


async def test_a_page_answered_elsewhere_meanwhile_is_not_answered_again(service, invite, db):
    """The process remembers the invitation it showed (recent.py): the form posted after an
    answer came by another way (the JSON API, another tab) still finds the link answered."""
    [token] = await invite()
    async with client(service) as http:
        csrf = csrf_of(await http.get(f"/s/{token}"))
        api = await http.post(f"/v1/responses/{token}", json={"answers": REQUIRED})
        assert api.status_code == 201
        late = await http.post(f"/s/{token}", data={**REQUIRED, "csrf": csrf, "action": "submit"})
        invalid = await http.post(
            f"/s/{token}", data={"recommandation": "99", "csrf": csrf, "action": "submit"}
        )
    assert late.status_code == invalid.status_code == 409
    assert "Vous avez déjà répondu à ce questionnaire." in invalid.text
    assert await stored(db, token) == {"responses": 1, "draft": None}


async def test_a_chunked_form_past_the_size_limit_is_refused(service, invite, db):
    [token] = await invite()
    async with client(service) as http:
        csrf = csrf_of(await http.get(f"/s/{token}"))

        async def chunks():  # no Content-Length: only the bytes read can tell
            yield f"csrf={csrf}&action=submit&satisfaction_globale=8&recommandation=9".encode()
            for _ in range(40):
                yield b"&suggestion=" + b"x" * 1000

        answer = await http.post(
            f"/s/{token}",
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 413 and "Réponses trop longues" in answer.text
    assert await stored(db, token) == {"responses": 0, "draft": None}


async def test_a_form_posted_to_a_process_that_never_showed_the_page_is_stored(
    service, invite, db, stack
):
    """Behind several replicas the POST may reach a process that did not serve the GET: it
    reads the invitation itself (here: no GET at all, the form's CSRF value computed from the
    service's development secret, as the page would carry it)."""
    [token] = await invite(contact_id="crm-other-replica")
    digest = hashlib.sha256(token.encode()).hexdigest()
    invitation_id = await db.fetchval(
        "SELECT invitation_id FROM invitations WHERE token_sha256 = $1", digest
    )
    csrf = security.csrf_token(ResponsesSettings().csrf_secret.get_secret_value().encode(),
                               invitation_id)  # fmt: skip
    async with client(service) as http:
        done = await http.post(f"/s/{token}", data={**REQUIRED, "csrf": csrf, "action": "submit"})
        again = await http.post(f"/s/{token}", data={**REQUIRED, "csrf": csrf, "action": "submit"})
    assert done.status_code == 200 and "vos réponses sont bien enregistrées" in done.text
    assert again.status_code == 409
    assert await stored(db, token) == {"responses": 1, "draft": None}
    assert len(await events_about(stack, "crm-other-replica")) == 1


async def test_behind_a_trusted_proxy_the_right_most_forwarded_address_is_the_client(service):
    """The ingress appends the address it saw; what the client wrote left of it is not believed."""
    shared = "192.0.2.90"
    statuses = []
    async with httpx.AsyncClient(base_url=service.url) as http:
        for n in range(80):  # default burst: 60 (and 2 a second come back meanwhile)
            forged = f"203.0.113.{n}, {shared}"  # a new forged left part each time
            answer = await http.get(f"/s/guess-{n}", headers={"X-Forwarded-For": forged})
            statuses.append(answer.status_code)
        neighbour = await http.get("/s/guess-0", headers={"X-Forwarded-For": "192.0.2.91"})
    assert statuses[:60] == [404] * 60 and 429 in statuses[60:]
    assert neighbour.status_code == 404  # another user behind the same ingress: not throttled


@pytest.mark.parametrize("rating", [True, False, 7.0, 7.5])
async def test_a_rating_must_be_a_json_integer_not_a_boolean_or_a_decimal(
    service, invite, db, rating
):
    [token] = await invite()
    async with client(service) as http:
        answer = await http.post(
            f"/v1/responses/{token}",
            json={"answers": {"satisfaction_globale": rating, "recommandation": 9}},
        )
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["error"] == "invalid_answers"
    assert list(problem["problems"]) == ["satisfaction_globale"]
    assert "nombre entier" in problem["problems"]["satisfaction_globale"]
    assert "integer" in problem["problems"]["satisfaction_globale"]
    assert await stored(db, token) == {"responses": 0, "draft": None}


SPILLED = "Rappelez-moi au 06 12 34 56 78 ou jean.dupont@example.fr, NIR 1 85 05 78 006 084 36"
CLEAN = "Rappelez-moi au [téléphone] ou [courriel], NIR [numéro de sécurité sociale]"


async def test_free_text_is_redacted_before_it_is_stored_or_emitted(service, invite, db, stack):
    page_token, api_token, draft_token = await invite(3, contact_id="crm-redacted")
    async with client(service) as http:
        csrf = csrf_of(await http.get(f"/s/{page_token}"))
        page = await http.post(
            f"/s/{page_token}",
            data={**REQUIRED, "suggestion": SPILLED, "csrf": csrf, "action": "submit"},
        )
        api = await http.post(
            f"/v1/responses/{api_token}", json={"answers": {**REQUIRED, "suggestion": SPILLED}}
        )
        draft = await http.post(
            f"/v1/responses/{draft_token}",
            json={"answers": {"suggestion": SPILLED}, "partial": True},
        )
    assert page.status_code == 200 and api.status_code == 201 and draft.status_code == 200
    digests = [hashlib.sha256(t.encode()).hexdigest() for t in (page_token, api_token)]
    texts = await db.fetch(
        "SELECT r.answers->>'suggestion' AS text FROM responses r JOIN invitations i"
        " USING (invitation_id) WHERE i.token_sha256 = ANY($1)",
        digests,
    )
    assert [row["text"] for row in texts] == [CLEAN, CLEAN]
    assert json.loads((await stored(db, draft_token))["draft"]) == {"suggestion": CLEAN}
    events = await events_about(stack, "crm-redacted")
    assert [event["data"]["answers"]["suggestion"] for event in events] == [CLEAN, CLEAN]
    assert "06 12" not in json.dumps(events) and "dupont" not in json.dumps(events)


async def test_an_oversize_json_body_is_refused_before_it_is_parsed(service, invite, db):
    [token] = await invite()
    huge = {"answers": {**REQUIRED, "suggestion": "x" * 100_000}}  # the cap: 64 KiB

    async def chunks():  # no Content-Length: only the bytes read can tell
        yield b'{"answers": {"satisfaction_globale": 8, "recommandation": 9, "suggestion": "'
        for _ in range(10):
            yield b"x" * 10_000
        yield b'"}}'

    async with client(service) as http:
        declared = await http.post(f"/v1/responses/{token}", json=huge)
        chunked = await http.post(
            f"/v1/responses/{token}",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        form = await http.post(f"/s/{token}", data={**REQUIRED, "suggestion": "x" * 100_000})
    for answer in (declared, chunked, form):
        assert answer.status_code == 413, answer.text[:300]
    assert "trop" in declared.text and "trop" in chunked.text
    assert await stored(db, token) == {"responses": 0, "draft": None}


async def test_a_response_says_when_its_invitation_was_sent(service, invite, stack):
    """Issue #18: scoring counts an answer with its invitation's cohort (the week it was sent
    in), so the response event carries the invitation's sent_at as `invited_at`."""
    sent_at = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    [token] = await invite(contact_id="crm-cohort", sent_at=sent_at)
    async with client(service) as http:
        answer = await http.post(f"/v1/responses/{token}", json={"answers": {**REQUIRED}})
    assert answer.status_code in (200, 201), answer.text[:300]
    records = await read_topic(
        stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name,
        until=lambda rs: any(b"crm-cohort" in r.value for r in rs), timeout=30,
    )  # fmt: skip
    [event] = [json.loads(r.value) for r in records if b"crm-cohort" in r.value]
    assert datetime.fromisoformat(event["data"]["invited_at"]) == sent_at


async def test_a_response_carries_its_invitations_site_timezone(service, invite, stack):
    """Issue #15: scoring buckets an answer in its site's clock, so the response event carries
    the time zone the invitation brought; an invitation without one gives a response without."""
    [overseas] = await invite(contact_id="crm-clock-gp", site_timezone="America/Guadeloupe")
    [older] = await invite(contact_id="crm-clock-none")
    async with client(service) as http:
        for token in (overseas, older):
            answer = await http.post(f"/v1/responses/{token}", json={"answers": {**REQUIRED}})
            assert answer.status_code in (200, 201), answer.text[:300]
    records = await read_topic(
        stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name,
        until=lambda rs: sum(b"crm-clock-" in r.value for r in rs) >= 2, timeout=30,
    )  # fmt: skip
    events = [json.loads(r.value)["data"] for r in records if b"crm-clock-" in r.value]
    zones = {event["contact_id"]: event.get("site_timezone") for event in events}
    assert zones == {"crm-clock-gp": "America/Guadeloupe", "crm-clock-none": None}


async def test_a_guadeloupe_verbatim_belongs_to_that_weeks_board_there(service, invite, db):
    """Issue #15: the managers' verbatims view cuts weeks on the site's own clock: Sunday
    23:30 in Guadeloupe is Monday 03:30 in UTC, the next ISO week in Paris."""
    tokens = await invite(5, site_id="site-gp-verbatims", site_timezone="America/Guadeloupe")
    async with client(service) as http:
        for token in tokens:
            answer = await http.post(
                f"/v1/responses/{token}",
                json={"answers": {**REQUIRED, "suggestion": "Accueil agréable"}},
            )
            assert answer.status_code == 201, answer.text[:300]
    await db.execute(
        "UPDATE responses SET answered_at = '2026-11-30T03:30:00Z' WHERE invitation_id IN "
        "(SELECT invitation_id FROM invitations WHERE site_id = 'site-gp-verbatims')"
    )
    weeks = await db.fetch(
        "SELECT week FROM reporting_verbatims WHERE site_id = 'site-gp-verbatims'"
    )
    assert [row["week"] for row in weeks] == ["2026-W48"] * 5


SHORT = "sms-court-2026-v1"


async def test_a_link_of_the_short_questionnaire_shows_and_accepts_its_three_items_only(
    service, invite, db, stack
):
    """Issue #15: the page and the JSON API follow the invitation's questionnaire version."""
    page_token, api_token = await invite(2, questionnaire_version=SHORT, contact_id="crm-court")
    async with client(service) as http:
        page = await http.get(f"/s/{page_token}")
        assert page.status_code == 200
        fields = set(re.findall(r'<input[^>]* name="([a-z_]+)"', page.text)) - {"csrf"}
        assert fields == {"satisfaction_globale", "effort", "plusieurs_contacts"}
        assert "Votre avis en trois questions" in page.text and "3 étapes en tout" in page.text
        assert "Étape 3 sur 3" in page.text and "recontacté" not in page.text
        missing = await http.post(
            f"/s/{page_token}", data={"effort": "6", "csrf": csrf_of(page), "action": "submit"}
        )
        assert missing.status_code == 422 and "Merci de corriger 1 réponse" in missing.text
        answered = await http.post(
            f"/s/{page_token}",
            data={"satisfaction_globale": "8", "effort": "6", "plusieurs_contacts": "non",
                  "csrf": csrf_of(page), "action": "submit"},
        )  # fmt: skip
        assert answered.status_code == 200 and "bien enregistrées" in answered.text
        foreign = await http.post(f"/v1/responses/{api_token}", json={"answers": REQUIRED})
        assert foreign.status_code == 422
        assert foreign.json()["problems"] == {
            "recommandation": "Question inconnue : recommandation."
        }
    assert await stored(db, api_token) == {"responses": 0, "draft": None}
    records = await read_topic(
        stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name,
        until=lambda rs: any(b"crm-court" in r.value for r in rs), timeout=30,
    )  # fmt: skip
    [event] = [json.loads(r.value) for r in records if b"crm-court" in r.value]
    assert event["data"]["questionnaire_version"] == SHORT
    assert event["data"]["answers"] == {
        "satisfaction_globale": 8, "effort": 6, "plusieurs_contacts": "non",
    }  # fmt: skip
