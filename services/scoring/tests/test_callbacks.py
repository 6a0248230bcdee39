"""Call-backs that close (issue #15), through a real scoring process, broker and database: the
CRMs' reports recorded once, an unknown alert to the DLQ, the managers' counts (API, reporting
views, weekly e-mail, gauges), the per-network detractor rule, and the example's report-back."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from scoring import callbacks, weekly_report
from scoring.settings import ScoringSettings

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import CallbackCompleted, ResponseSubmitted
from contracts.topics import (
    CALLBACK_COMPLETED,
    CRM_CALLBACK_COMPLETED,
    RESPONSE_SUBMITTED,
    SURVEY_RESPONSE,
)
from plumbing import db
from plumbing.auth import NETWORK_ADMIN, SITE_MANAGER, LocalIssuer, bearer
from plumbing.services import System, start_system
from plumbing.testing import async_wait_for, produce, read_topic

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
LOW = {"recommandation": 2, "satisfaction_globale": 2, "recontact": "oui"}


def admin_of(issuer: tuple[LocalIssuer, str], network: str) -> dict[str, str]:
    return bearer(issuer[0].mint(subject=f"admin-{network}", roles=[NETWORK_ADMIN],
                                 network=network))  # fmt: skip


@pytest.fixture(scope="module")
def scoring(
    stack: Any, issuer: tuple[LocalIssuer, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    system = start_system(
        stack.env(), tmp_path_factory.mktemp("scoring"), only=("scoring",),
        extra_env={"ADMIN_JWKS_URL": issuer[1], "OPEN_ALERTS_POLL_SECONDS": "0.2",
                   "OPEN_ALERT_THRESHOLD_DAYS": "3"},
    )  # fmt: skip
    try:
        yield system
    finally:
        system.stop()


def response(
    site_id: str, answers: dict[str, int | str], *, network: str = "urssaf",
    answered_at: datetime | None = None,
) -> CloudEvent[ResponseSubmitted]:  # fmt: skip
    moment = answered_at or utc_now()
    data = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:12]}", invitation_id=f"inv-{uuid.uuid4().hex[:12]}",
        contact_id=f"crm-{uuid.uuid4().hex[:12]}", site_id=site_id, network=network,
        channel="telephone", motif="declaration", questionnaire_version="urssaf-chaud-2024-v1",
        answers=answers, answered_at=moment,
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=moment,
        subject=site_id, data=data,
    )  # fmt: skip


def completed(
    alert_id: str, site_id: str, outcome: str, at: datetime, *, callback_id: str | None = None
) -> CloudEvent[CallbackCompleted]:
    data = CallbackCompleted(
        callback_id=callback_id or f"rap-{uuid.uuid4().hex[:12]}", alert_id=alert_id,
        site_id=site_id, network="urssaf", outcome=outcome, completed_at=at, team="equipe-a",
    )  # fmt: skip
    return CloudEvent[CallbackCompleted](
        id=new_event_id(), source="/crm", type=CALLBACK_COMPLETED.type, time=at, subject=site_id,
        data=data,
    )  # fmt: skip


async def fetch(stack: Any, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await db.connect(stack.database_url, schema="scoring")
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def alerts_of(stack: Any, site_id: str, count: int = 1) -> list[asyncpg.Record]:
    async def raised() -> list[asyncpg.Record] | None:
        rows = await fetch(
            stack, "SELECT * FROM alerts WHERE site_id = $1 ORDER BY raised_at", site_id
        )
        return rows if len(rows) >= count else None

    return await async_wait_for(raised, timeout=30)


async def test_a_callback_is_recorded_once_and_its_alert_keeps_the_first_outcome(
    stack, scoring, issuer
):
    site = "site-callbacks"
    raised_at = utc_now() - timedelta(days=1)
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, [
        response(site, LOW, answered_at=raised_at),
        response(site, LOW, answered_at=raised_at - timedelta(hours=1)),
    ])  # fmt: skip
    first_alert, second_alert = await alerts_of(stack, site, 2)
    alert_id = second_alert["alert_id"]  # the later one: the earlier stays open
    first = completed(alert_id, site, "injoignable", raised_at + timedelta(hours=2))
    redelivered = first.model_copy(update={"id": new_event_id()})  # same callback id
    later = completed(alert_id, site, "rappele_resolu", raised_at + timedelta(hours=20))
    bootstrap = stack.kafka_bootstrap_servers

    def recorded(count: int) -> Any:
        async def check() -> bool:
            rows = await fetch(stack, "SELECT 1 FROM callbacks WHERE alert_id = $1", alert_id)
            return len(rows) == count

        return check

    # The later call-back is reported first (a CRM's queue may lag), the earlier one after it,
    # then again (the same callback id in a new event, and the same event redelivered).
    await produce(bootstrap, CRM_CALLBACK_COMPLETED.name, [later])
    await async_wait_for(recorded(1), timeout=30)
    await produce(bootstrap, CRM_CALLBACK_COMPLETED.name, [first, redelivered, first])
    await async_wait_for(recorded(2), timeout=30)
    (alert,) = await fetch(stack, "SELECT * FROM alerts WHERE alert_id = $1", alert_id)
    # The earliest completion stands, whatever the order the reports came in.
    assert alert["outcome"] == "injoignable" and alert["callback_id"] == first.data.callback_id
    assert alert["handled_at"] == first.data.completed_at and alert["team"] == "equipe-a"

    # The managers' API: the week's counts and the open alert with its age.
    url = scoring["scoring"].url
    week = "{}-W{:02d}".format(*raised_at.astimezone(UTC).isocalendar()[:2])
    manager = bearer(issuer[0].mint(subject="m", roles=[SITE_MANAGER], site_ids=[site]))
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        answer = await client.get(f"/v1/sites/{site}/callbacks", params={"week": week},
                                  headers=manager)  # fmt: skip
        assert answer.status_code == 200, answer.text
        bad = await client.get(f"/v1/sites/{site}/callbacks", params={"week": "2026-W99"},
                               headers=manager)  # fmt: skip
        other = await client.get("/v1/sites/site-detractor/callbacks", headers=manager)
    body = answer.json()
    if body["raised"] == 2:  # both alerts in the same ISO week (not across a Monday)
        assert (body["handled"], body["handled_within_48h"], body["open"]) == (1, 1, 1)
    outcomes = {o["label"]: o["count"] for o in body["outcomes"]}
    assert outcomes["injoignable"] == 1 and outcomes["rappelé et résolu"] == 0
    assert [a["alert_id"] for a in body["open_alerts"]] == [first_alert["alert_id"]]
    assert body["open_alerts"][0]["age_days"] == 1
    assert "contact_id" not in body["open_alerts"][0]
    assert bad.status_code == 422 and "semaine" in bad.json()["detail"]
    assert other.status_code in (403, 404)

    # The reporting view the board's « Traitées » reads agrees.
    rows = await fetch(
        stack,
        "SELECT sum(raised) AS raised, sum(handled) AS handled, sum(handled_within_48h) AS fast, "
        "sum(injoignable) AS injoignable, sum(open) AS open FROM reporting_weekly_callbacks "
        "WHERE site_id = $1",
        site,
    )
    assert dict(rows[0]) == {"raised": 2, "handled": 1, "fast": 1, "injoignable": 1, "open": 1}
    outcomes_view = await fetch(
        stack, "SELECT outcome_label, open_age_days FROM reporting_alert_outcomes "
        "WHERE site_id = $1 ORDER BY raised_at", site,
    )  # fmt: skip
    assert [tuple(r) for r in outcomes_view] == [(None, 1), ("injoignable", None)]

    # The weekly e-mail lists only the open alert, with its age, and the handled counts.
    conn = await db.connect(stack.database_url, schema="scoring")
    try:
        report = await weekly_report.build_report(
            conn, ScoringSettings(database_url=stack.database_url), site_id=site, week=week
        )
    finally:
        await conn.close()
    assert [call.contact_id for call in report.call_backs] == [first_alert["contact_id"]]
    assert report.call_backs[0].age_days == 1
    assert report.callbacks is not None and report.callbacks.handled == 1
    _, html, text = weekly_report.render(report)
    for part in (text, html):
        assert "traitée" in part and "sous 48" in part and "injoignable 1" in part
        assert "en attente depuis 1 jour" in part
        assert second_alert["contact_id"] not in part  # handled: no longer listed


async def test_the_call_back_week_of_a_guadeloupe_site_is_its_own(stack, scoring, issuer):
    """Issue #15: an alert raised on Sunday 23:30 in Guadeloupe (Monday 04:30 in Paris) counts
    in that Sunday's ISO week on the site's call-back board, not in the next one."""
    site = "site-callbacks-gp"
    guadeloupe = ZoneInfo("America/Guadeloupe")
    today = utc_now().astimezone(guadeloupe).date()
    sunday = today - timedelta(days=today.weekday() + 1)
    moment = datetime.combine(sunday, time(23, 30), guadeloupe).astimezone(UTC)
    event = response(site, LOW, answered_at=moment)
    told = event.data.model_copy(update={"site_timezone": "America/Guadeloupe"})
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name,
                  [event.model_copy(update={"data": told})])  # fmt: skip
    await alerts_of(stack, site)
    manager = bearer(issuer[0].mint(subject="m-gp", roles=[SITE_MANAGER], site_ids=[site]))
    weeks = {"{}-W{:02d}".format(*day.isocalendar()[:2]): expected
             for day, expected in ((sunday, 1), (sunday + timedelta(days=1), 0))}  # fmt: skip
    async with httpx.AsyncClient(base_url=scoring["scoring"].url, timeout=10) as client:
        for week, expected in weeks.items():
            answer = await client.get(f"/v1/sites/{site}/callbacks", params={"week": week},
                                      headers=manager)  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert answer.json()["raised"] == expected, week
        # Without week=, the board opens on today's week on the site's own clock.
        before = utc_now()
        answer = await client.get(f"/v1/sites/{site}/callbacks", headers=manager)
        assert answer.status_code == 200, answer.text
        assert answer.json()["week"] in {  # the week may turn between the two clock reads
            callbacks.default_week(moment, guadeloupe) for moment in (before, utc_now())
        }


def test_the_call_back_default_week_is_chosen_on_the_sites_clock():
    """Issue #15: at Sunday 23:30 in Guadeloupe (Monday 05:30 in Paris), the call-back board's
    default week is that Sunday's ISO week on the site's clock, not Paris's next one."""
    guadeloupe = ZoneInfo("America/Guadeloupe")
    sunday_night = datetime(2026, 11, 22, 23, 30, tzinfo=guadeloupe).astimezone(UTC)
    assert callbacks.default_week(sunday_night, guadeloupe) == "2026-W47"
    assert callbacks.default_week(sunday_night, ZoneInfo("Europe/Paris")) == "2026-W48"


async def test_a_callback_for_an_unknown_alert_goes_to_the_dlq_with_its_reason(stack, scoring):
    unknown = completed("alr-nobody-raised-this", "site-x", "refus", utc_now())
    await produce(stack.kafka_bootstrap_servers, CRM_CALLBACK_COMPLETED.name, [unknown])
    records = await read_topic(
        stack.kafka_bootstrap_servers, CRM_CALLBACK_COMPLETED.dlq_name,
        until=lambda rs: any(b"alr-nobody-raised-this" in r.value for r in rs), timeout=30,
    )  # fmt: skip
    letter = next(r for r in records if b"alr-nobody-raised-this" in r.value)
    headers = {key: value.decode() for key, value in letter.headers}
    assert "unknown alert alr-nobody-raised-this" in headers["dlq-error"]
    assert (
        await fetch(stack, "SELECT 1 FROM callbacks WHERE alert_id = 'alr-nobody-raised-this'")
        == []
    )


async def test_the_detractor_rule_is_set_per_network_through_the_audited_admin_api(
    stack, scoring, issuer
):
    url = scoring["scoring"].url
    path = "/admin/v1/networks/msa/detractor-rule"
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        other_network = await client.put(path, json={"max_recommendation": 3},
                                         headers=admin_of(issuer, "urssaf"))  # fmt: skip
        invalid = await client.put(path, json={"max_recommendation": 42},
                                   headers=admin_of(issuer, "msa"))  # fmt: skip
        unknown_key = await client.put(path, json={"agent": "Dupont"},
                                       headers=admin_of(issuer, "msa"))  # fmt: skip
        changed = await client.put(path, json={"max_recommendation": 3},
                                   headers=admin_of(issuer, "msa"))  # fmt: skip
        anonymous = await client.get(path)
    assert other_network.status_code == 403
    assert invalid.status_code == 422 and "max_recommendation" in invalid.json()["detail"]
    assert unknown_key.status_code == 422
    assert anonymous.status_code == 401
    assert changed.status_code == 200, changed.text
    rule = changed.json()
    assert rule["effective"]["max_recommendation"] == 3 and rule["updated_by"] == "admin-msa"
    assert rule["audit"][0]["changed_by"] == "admin-msa"
    assert rule["audit"][0]["before"] is None
    assert rule["audit"][0]["after"] == {"max_recommendation": 3}

    # A 5 is a detractor for urssaf (default rule) and no longer for msa (the replica that took
    # the change reloads before answering, the others on its NOTIFY; one process here).
    answers = {"recommandation": 5, "recontact": "oui"}
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, [
        response("site-msa-rule", answers, network="msa"),
        response("site-urssaf-rule", answers),
    ])  # fmt: skip
    await alerts_of(stack, "site-urssaf-rule")

    async def msa_counted() -> bool:  # its response was handled (the site is known) ...
        return bool(await fetch(stack, "SELECT 1 FROM sites WHERE site_id = 'site-msa-rule'"))

    await async_wait_for(msa_counted, timeout=30)
    assert await fetch(stack, "SELECT 1 FROM alerts WHERE site_id = 'site-msa-rule'") == []


async def test_open_alerts_are_gauged_per_site_with_the_overdue_ones(stack, scoring):
    site = "site-overdue"
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, [
        response(site, LOW, answered_at=utc_now() - timedelta(days=5)),
        response(site, LOW, answered_at=utc_now() - timedelta(hours=1)),
    ])  # fmt: skip
    await alerts_of(stack, site, 2)

    async def gauged() -> str | None:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"{scoring['scoring'].url}/metrics")).text
        return text if f'scoring_open_alerts{{site_id="{site}"}} 2.0' in text else None

    text = await async_wait_for(gauged, timeout=15)
    assert f'scoring_open_alerts_overdue{{site_id="{site}"}} 1.0' in text  # over 3 days
    assert "scoring_open_alert_threshold_days 3.0" in text
    gauge = f'scoring_oldest_open_alert_age_seconds{{site_id="{site}"}}'
    oldest = next(line for line in text.splitlines() if line.startswith(gauge))
    assert float(oldest.split()[-1]) > 5 * 86400 - 60


async def test_the_example_reports_a_callback_and_the_alert_counts_as_handled(
    stack, scoring, tmp_path
):
    site = "site-example"
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, [response(site, LOW)])
    (alert,) = await alerts_of(stack, site)
    queue = tmp_path / "callbacks.sqlite3"
    example = str(ROOT / "examples" / "callback_queue.py")

    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, example, *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, out.decode(), err.decode()

    async def queued() -> bool:  # the outbox relays the alert to scoring.alert.v1
        code, out, err = await run(
            "consume", "--bootstrap", stack.kafka_bootstrap_servers, "--db", str(queue),
            "--from-beginning", "--idle-timeout", "1",
        )  # fmt: skip
        assert code == 0, err
        return alert["alert_id"] in out

    await async_wait_for(queued, timeout=30, interval=0.5)
    code, out, err = await run(
        "done", alert["alert_id"], "--outcome", "rappele_resolu", "--team", "accueil-75",
        "--bootstrap", stack.kafka_bootstrap_servers, "--db", str(queue),
    )  # fmt: skip
    assert code == 0, err
    assert "rappelé et résolu" in out

    async def handled() -> asyncpg.Record | None:
        rows = await fetch(stack, "SELECT * FROM alerts WHERE alert_id = $1", alert["alert_id"])
        return rows[0] if rows[0]["handled_at"] is not None else None

    row = await async_wait_for(handled, timeout=30)
    assert row["outcome"] == "rappele_resolu" and row["team"] == "accueil-75"
    with contextlib.closing(sqlite3.connect(queue)) as connection:  # off the `list`
        status = connection.execute(
            "SELECT status FROM callbacks WHERE alert_id = ?", (alert["alert_id"],)
        ).fetchone()
    assert status == ("rappelé",)
    recorded = await fetch(stack, "SELECT outcome FROM reporting_alert_outcomes "
                                  "WHERE alert_id = $1", alert["alert_id"])  # fmt: skip
    assert recorded[0]["outcome"] == "rappele_resolu"
