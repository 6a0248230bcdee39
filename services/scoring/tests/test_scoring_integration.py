"""Scoring through the real broker and database: one scoring process for the module.

Order matters: the crash test kills and restarts the shared process, and the rebuild test
comes last so it replays everything the earlier tests produced.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry
from scoring import domain, repository, tagging
from scoring.retention import Purger
from scoring.settings import ScoringSettings

from contracts.envelope import CloudEvent, decode, new_event_id, utc_now
from contracts.events import (
    ContactClosed,
    ContactSeen,
    InvitationReminded,
    InvitationSent,
    ResponseSubmitted,
    SurveyChannel,
    UserErased,
)
from contracts.topics import (
    CONTACT_CLOSED,
    CONTACT_SEEN,
    CRM_CONTACT_CLOSED,
    DETRACTOR_ALERT,
    INVITATION_REMINDED,
    INVITATION_SENT,
    RESPONSE_SUBMITTED,
    SCORING_ALERT,
    SITE_INDICATORS,
    SITE_INDICATORS_UPDATED,
    SURVEY_CONTACT,
    SURVEY_INVITATION,
    SURVEY_RESPONSE,
    USER_ERASED,
)
from plumbing import db
from plumbing.auth import NETWORK_ADMIN, SITE_MANAGER, LocalIssuer, bearer
from plumbing.services import System, start_system
from plumbing.testing import async_wait_for, produce, read_topic

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")
CHANNELS = ("telephone", "courriel", "accueil_physique")
MOTIFS = ("declaration", "paiement", "recouvrement")


# --------------------------------------------------------------------------- the process


class ScoringProcess:
    """The module's scoring process, which the crash test may kill and restart."""

    def __init__(self, stack: Any, log_dir: Path, jwks_url: str) -> None:
        self.stack = stack
        self.log_dir = log_dir
        self.jwks_url = jwks_url
        self.system: System | None = None

    def start(self) -> None:
        self.system = start_system(
            self.stack.env(), self.log_dir, only=("scoring",),
            extra_env={
                "PUBLISH_INTERVAL_SECONDS": "0.2", "FCR_REFRESH_SECONDS": "0.1",
                # Many tests answer days ago: no slower pace for them (its own test:
                # test_publisher_concurrency).
                "PUBLISH_CATCHING_UP_SECONDS": "0.2", "ADMIN_JWKS_URL": self.jwks_url,
            },
        )  # fmt: skip

    @property
    def url(self) -> str:
        assert self.system is not None
        return self.system["scoring"].url

    def kill(self) -> None:
        assert self.system is not None
        self.system["scoring"].kill()

    def stop(self) -> None:
        if self.system is not None:
            self.system.stop()


@pytest.fixture(scope="module")
def network_admin(issuer: tuple[LocalIssuer, str]) -> dict[str, str]:
    """Headers of a network administrator of the test events' network."""
    return bearer(issuer[0].mint(subject="admin-urssaf", roles=[NETWORK_ADMIN], network="urssaf"))


@pytest.fixture(scope="module")
def scoring(
    stack: Any, issuer: tuple[LocalIssuer, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScoringProcess]:
    process = ScoringProcess(stack, tmp_path_factory.mktemp("scoring"), issuer[1])
    process.start()
    try:
        yield process
    finally:
        process.stop()


# --------------------------------------------------------------------------- events


def response(
    site_id: str, answers: dict[str, int | str], *, answered_at: datetime | None = None,
    invitation_id: str | None = None, channel: str = "telephone", motif: str = "declaration",
    nature: str | None = None, profile: str | None = None, contact_id: str | None = None,
    invited_at: datetime | None = None,
) -> CloudEvent[ResponseSubmitted]:  # fmt: skip
    moment = answered_at or utc_now()
    data = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:12]}",
        invitation_id=invitation_id or f"inv-{uuid.uuid4().hex[:12]}",
        contact_id=contact_id or f"crm-{uuid.uuid4().hex[:12]}", site_id=site_id,
        network="urssaf",
        channel=channel, motif=motif, request_nature=nature, profile=profile,
        questionnaire_version="urssaf-chaud-2024-v1", answers=answers, answered_at=moment,
        invited_at=invited_at,
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=moment,
        subject=site_id, data=data,
    )  # fmt: skip


def invitation(
    site_id: str, invitation_id: str, sent_at: datetime | None = None
) -> CloudEvent[InvitationSent]:
    now = sent_at or utc_now()
    data = InvitationSent(
        invitation_id=invitation_id, contact_id=f"crm-{uuid.uuid4().hex[:12]}", site_id=site_id,
        network="urssaf", channel="telephone", motif="declaration", survey_channel="email",
        user_pseudo_id="u" * 32, questionnaire_version="urssaf-chaud-2024-v1",
        token_sha256="0" * 64, sent_at=now, expires_at=now + timedelta(days=7),
    )  # fmt: skip
    return CloudEvent[InvitationSent](
        id=new_event_id(), source="/test", type=INVITATION_SENT.type, time=now,
        subject=site_id, data=data,
    )  # fmt: skip


def pseudonym(user: str) -> str:
    """A stand-in for survey-dispatch's keyed HMAC pseudonym (16 to 128 characters)."""
    return f"pseudo_{user}".ljust(24, "0")


def contact(
    site_id: str, user: str, motif: str, channel: str, closed_at: datetime,
    contact_id: str | None = None,
) -> CloudEvent[ContactSeen]:  # fmt: skip
    data = ContactSeen(
        contact_id=contact_id or f"crm-{uuid.uuid4().hex[:12]}", closed_at=closed_at,
        site_id=site_id, network="urssaf", channel=channel, motif=motif,
        user_pseudo_id=pseudonym(user),
    )  # fmt: skip
    return CloudEvent[ContactSeen](
        id=new_event_id(), source="/test", type=CONTACT_SEEN.type, time=closed_at,
        subject=site_id, data=data,
    )  # fmt: skip


def crm_contact(site_id: str, user_ref: str, closed_at: datetime) -> CloudEvent[ContactClosed]:
    """The CRM's own event, with its contact points: scoring must never read it."""
    data = ContactClosed(
        contact_id=f"crm-{uuid.uuid4().hex[:12]}", closed_at=closed_at, site_id=site_id,
        network="urssaf", channel="telephone", motif="paiement", user_ref=user_ref,
        email="usager@exemple.fr", mobile_phone="+33612345678",
    )  # fmt: skip
    return CloudEvent[ContactClosed](
        id=new_event_id(), source="/test", type=CONTACT_CLOSED.type, time=closed_at,
        subject=site_id, data=data,
    )  # fmt: skip


def erasure(user: str) -> CloudEvent[UserErased]:
    now = utc_now()
    data = UserErased(
        erasure_id=f"era-{uuid.uuid4().hex[:12]}", network="urssaf",
        user_pseudo_id=pseudonym(user), requested_at=now,
    )  # fmt: skip
    return CloudEvent[UserErased](
        id=new_event_id(), source="/test", type=USER_ERASED.type, time=now, subject="urssaf",
        data=data,
    )  # fmt: skip


# --------------------------------------------------------------------------- reading back


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


async def responses_by_day(database_url: str, site_id: str) -> dict[date, int]:
    rows = await fetch(
        database_url,
        "SELECT day, sum(count)::bigint AS n FROM scoring.tallies "
        "WHERE site_id = $1 AND item = '__responses__' GROUP BY day",
        site_id,
    )
    return {row["day"]: int(row["n"]) for row in rows}


async def counted(database_url: str, site_id: str) -> int:
    return sum((await responses_by_day(database_url, site_id)).values())


async def indicators_of(
    stack: Any,
    site_id: str,
    matches: Callable[[dict[str, Any]], bool],
    timeout: float = 30,
    period: str = "rolling_90d",
) -> dict[str, Any]:
    """The first indicators event of the site whose figures for `period` satisfy `matches`."""

    def found(records: list[Any]) -> dict[str, Any] | None:
        for record in records:
            event = decode(SITE_INDICATORS_UPDATED.envelope, record.value)
            if event.data.site_id == site_id:
                figures = period_of(event.data.model_dump(mode="json"), period)
                if matches(figures):
                    return figures
        return None

    records = await read_topic(
        stack.kafka_bootstrap_servers, SITE_INDICATORS.name,
        until=lambda rs: found(rs) is not None, timeout=timeout,
    )  # fmt: skip
    result = found(records)
    assert result is not None
    return result


def period_of(data: dict[str, Any], period_id: str) -> dict[str, Any]:
    period = next(p for p in data["periods"] if p["period"] == period_id)
    return {figure["indicator"]: figure for figure in period["figures"]}


# --------------------------------------------------------------------------- tests


async def test_the_same_response_three_times_counts_once(stack, scoring):
    event = response("site-triple", {"recommandation": 9})
    for _ in range(3):  # three separate sends: three records, one event id
        await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, [event])
    figures = await indicators_of(stack, "site-triple", lambda f: f["nps"]["sample_size"] >= 1)
    assert figures["nps"]["sample_size"] == 1

    async def duplicates_seen() -> bool:
        async with httpx.AsyncClient(base_url=scoring.url) as client:
            text = (await client.get("/metrics")).text
        return sum_metric(text, "consumer_events_total", 'outcome="duplicate"') >= 2

    await async_wait_for(duplicates_seen, timeout=20)
    assert await counted(stack.database_url, "site-triple") == 1


def sum_metric(text: str, name: str, label: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " ")) and label in line
    )


async def test_the_same_response_under_a_new_event_id_counts_once(stack, scoring):
    """A producer that re-sends a response it already sent, under a new event id, slips past the
    inbox (keyed by event id): the response id keeps it from being counted twice."""
    site = "site-resent"
    first = response(site, {"recommandation": 9})
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, [first])
    await async_wait_for(lambda: counted_is(stack, site, 1), timeout=30)
    again = first.model_copy(update={"id": new_event_id()})
    later = response(site, {"recommandation": 2})  # same site, same partition: read after it
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, [again, later])
    await async_wait_for(lambda: counted_is(stack, site, 2, at_least=True), timeout=30)
    assert await counted(stack.database_url, site) == 2
    figures = await indicators_of(stack, site, lambda f: f["nps"]["sample_size"] >= 2)
    assert figures["nps"]["sample_size"] == 2


async def test_an_invitation_sent_again_under_a_new_event_id_counts_once(stack, scoring):
    """Issue #14: scoring keeps no inbox of event ids; an invitation is claimed by its own id
    (invitation_facts), so a copy under a new event id, or a redelivery, is not counted again
    in the response rate's denominator."""
    site = "site-invitation-resent"
    first = invitation(site, "inv-resent-1")
    again = first.model_copy(update={"id": new_event_id()})
    other = invitation(site, "inv-resent-2")  # same site, same partition: read after the copy
    await produce(stack.kafka_bootstrap_servers, SURVEY_INVITATION.name, [first])
    await produce(stack.kafka_bootstrap_servers, SURVEY_INVITATION.name, [first, again, other])

    async def last_one_stored() -> bool:  # then the copies before it were handled too
        return bool(await fetch(
            stack.database_url,
            "SELECT 1 FROM scoring.invitation_facts WHERE invitation_id = 'inv-resent-2'",
        ))  # fmt: skip

    await async_wait_for(last_one_stored, timeout=30)
    rows = await fetch(
        stack.database_url,
        "SELECT sum(count)::int AS n FROM scoring.invitation_tallies WHERE site_id = $1", site,
    )  # fmt: skip
    assert rows[0]["n"] == 2
    after = await indicators_of(
        stack, site, lambda f: f["response_rate"]["counts"]["invitations"] == 2
    )
    assert after["response_rate"]["counts"]["invitations"] == 2


async def counted_is(stack, site: str, expected: int, *, at_least: bool = False) -> bool:
    n = await counted(stack.database_url, site)
    return n >= expected if at_least else n == expected


async def test_a_response_before_its_invitation_still_counts(stack, scoring):
    site = "site-early"
    await produce(
        stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name,
        [response(site, {"recommandation": 10}, invitation_id="inv-early-1")],
    )  # fmt: skip
    before = await indicators_of(stack, site, lambda f: f["nps"]["sample_size"] == 1)
    assert before["response_rate"]["value"] is None  # no invitation seen: no rate, not 100 %

    await produce(
        stack.kafka_bootstrap_servers, SURVEY_INVITATION.name, [invitation(site, "inv-early-1")]
    )
    after = await indicators_of(
        stack, site, lambda f: f["response_rate"]["counts"]["invitations"] == 1
    )
    assert after["response_rate"]["value"] == 100
    assert after["nps"]["sample_size"] == 1

    # A second response whose invitation is not seen yet waits for it: 100 %, never 200 %, and
    # the denominator stays the invitations (issue #18: the cohort's rate, no max()).
    await produce(
        stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name,
        [response(site, {"recommandation": 8}, invitation_id="inv-early-2")],
    )  # fmt: skip
    capped = await indicators_of(stack, site, lambda f: f["nps"]["sample_size"] == 2)
    assert capped["response_rate"]["value"] == 100
    assert capped["response_rate"]["counts"] == {"responses": 1, "invitations": 1}


async def test_the_current_weeks_rate_is_its_own_invitations_answered(stack, scoring):
    """Issue #18: the week's response rate is the answers to the week's invitations over those
    invitations, provisional while their links are open. This week 4 invitations went out and 1
    was answered; 3 answers received this week answer last week's 4 invitations. The old rule
    (answers received / invitations sent, max()) read 4/4 = 100 % for this week."""
    site = "site-cohort"
    now = utc_now()
    monday = datetime.combine(
        now.astimezone(PARIS).date() - timedelta(days=now.astimezone(PARIS).weekday()),
        datetime.min.time(), PARIS,
    )  # fmt: skip
    last_friday = monday - timedelta(days=3) + timedelta(hours=10)
    sent = [invitation(site, f"inv-cohort-old-{n}", sent_at=last_friday) for n in range(4)]
    sent += [invitation(site, f"inv-cohort-new-{n}", sent_at=now) for n in range(4)]
    answered = [
        response(site, {"recommandation": 9}, invitation_id=f"inv-cohort-old-{n}",
                 invited_at=last_friday, answered_at=now)
        for n in range(3)
    ] + [response(site, {"recommandation": 10}, invitation_id="inv-cohort-new-0",
                  invited_at=now, answered_at=now)]  # fmt: skip
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, answered)
    await produce(stack.kafka_bootstrap_servers, SURVEY_INVITATION.name, sent)

    week = await indicators_of(
        stack, site, period="iso_week",
        matches=lambda f: f["nps"]["sample_size"] == 4
        and f["response_rate"]["counts"].get("invitations") == 4,
    )  # fmt: skip
    rate = week["response_rate"]
    assert rate["counts"] == {"responses": 1, "invitations": 4}
    assert rate["value"] == 25 and rate["sample_size"] == 4
    assert rate["provisional"] is True  # the week's links expire in 7 days
    before = await indicators_of(
        stack, site, period="previous_iso_week",
        matches=lambda f: f["response_rate"]["counts"] == {"responses": 3, "invitations": 4},
    )  # fmt: skip
    assert before["response_rate"]["value"] == 75
    assert before["nps"]["sample_size"] == 0  # its answers came this week: tallied this week
    rows = await fetch(
        stack.database_url,
        "SELECT day, count, answered, open_until FROM scoring.invitation_tallies "
        "WHERE site_id = $1 ORDER BY day",
        site,
    )
    assert [(r["day"], r["count"], r["answered"]) for r in rows] == [
        (last_friday.date(), 4, 3), (now.astimezone(PARIS).date(), 4, 1),
    ]  # fmt: skip
    assert rows[-1]["open_until"] == now + timedelta(days=7)


async def test_late_and_out_of_order_events_land_in_their_own_day(stack, scoring):
    site = "site-late"
    now = utc_now()
    near_midnight = datetime.combine(
        (now - timedelta(days=3)).date(), datetime.min.time(), UTC
    ) + timedelta(hours=23, minutes=30)  # 23:30 UTC is already the next day in Paris
    moments = [now, now - timedelta(days=40), near_midnight, now - timedelta(days=10)]
    events = [response(site, {"recommandation": 7}, answered_at=m) for m in moments]
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, events)

    expected = Counter(moment.astimezone(PARIS).date() for moment in moments)
    assert near_midnight.astimezone(PARIS).date() == near_midnight.date() + timedelta(days=1)

    async def landed() -> bool:
        return await responses_by_day(stack.database_url, site) == dict(expected)

    await async_wait_for(landed, timeout=30)
    await indicators_of(stack, site, lambda f: f["nps"]["sample_size"] == 4)
    last_30_days = await indicators_of(
        stack, site, lambda f: f["nps"]["sample_size"] == 3, period="rolling_30d"
    )  # the 40-day-old response is in the rolling 90 days only
    assert last_30_days["nps"]["counts"]["passives"] == 3


async def test_sunday_2330_in_guadeloupe_counts_in_that_week_there_not_the_next(stack, scoring):
    """Issue #15: the same instant, a Sunday 23:30 in Guadeloupe, is Monday in Paris: the
    Guadeloupe site's answer is in its own ISO week (tallies, reporting view, published periods),
    the Paris site's in the next. An event without the zone falls back to the site's default."""
    guadeloupe = ZoneInfo("America/Guadeloupe")
    today = utc_now().astimezone(guadeloupe).date()
    sunday = today - timedelta(days=today.weekday() + 8)  # the Sunday of two weeks ago
    moment = datetime.combine(sunday, datetime.min.time(), guadeloupe) + timedelta(hours=23.5)
    sites = {  # site -> the zone its event tells
        "site-clock-gp": "America/Guadeloupe", "urssaf-guadeloupe-ancien": None,
        "site-clock-paris": None,
    }  # fmt: skip
    at = moment.astimezone(UTC)
    events = [
        # Answered at once: the day of its invitation's cohort is the same.
        response(site, {"recommandation": 9}, answered_at=at, invited_at=at)
        for site in sites
    ]
    events = [
        event.model_copy(update={"data": event.data.model_copy(update={"site_timezone": zone})})
        for event, zone in zip(events, sites.values(), strict=True)
    ]
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, events)
    monday = sunday + timedelta(days=1)
    expected = {"site-clock-gp": sunday, "urssaf-guadeloupe-ancien": sunday,
                "site-clock-paris": monday}  # fmt: skip

    async def landed() -> bool:
        days = {site: await responses_by_day(stack.database_url, site) for site in sites}
        return days == {site: {day: 1} for site, day in expected.items()}

    await async_wait_for(landed, timeout=30)
    rows = await fetch(
        stack.database_url,
        "SELECT s.site_id, s.timezone, c.week_start FROM scoring.sites s "
        "JOIN scoring.reporting_weekly_counts c USING (site_id) WHERE s.site_id = ANY($1)",
        list(sites),
    )
    assert {row["site_id"]: (row["timezone"], row["week_start"]) for row in rows} == {
        "site-clock-gp": ("America/Guadeloupe", sunday - timedelta(days=6)),
        "urssaf-guadeloupe-ancien": ("America/Guadeloupe", sunday - timedelta(days=6)),
        "site-clock-paris": ("Europe/Paris", monday),
    }
    cohorts = await fetch(
        stack.database_url,
        "SELECT site_id, day FROM scoring.invitation_tallies WHERE site_id = ANY($1)",
        list(sites),
    )
    assert {row["site_id"]: row["day"] for row in cohorts} == expected

    def published(records: list[Any]) -> dict[str, Any] | None:
        for record in records:
            event = decode(SITE_INDICATORS_UPDATED.envelope, record.value)
            if event.data.site_id == "site-clock-gp" and event.data.site_timezone:
                return event.data.model_dump(mode="json")
        return None

    records = await read_topic(
        stack.kafka_bootstrap_servers, SITE_INDICATORS.name,
        until=lambda rs: published(rs) is not None, timeout=30,
    )  # fmt: skip
    data = published(records)
    assert data is not None and data["site_timezone"] == "America/Guadeloupe"
    week = next(p for p in data["periods"] if p["period"] == "iso_week")
    assert date.fromisoformat(week["start"]) == today - timedelta(days=today.weekday())


async def test_a_detractor_raises_exactly_one_alert_without_contact_points(stack, scoring):
    site = "site-detractor"
    answers = {"recommandation": 3, "satisfaction_globale": 2, "plusieurs_contacts": "oui",
               "recontact": "oui", "suggestion": "Rappelez-moi, personne ne répond."}  # fmt: skip
    detractor = response(site, answers, invitation_id="inv-angry")
    resubmitted = detractor.model_copy(update={"id": new_event_id()})  # same invitation
    happy = response(site, {"recommandation": 10}, invitation_id="inv-happy")
    await produce(
        stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name,
        [detractor, detractor, resubmitted, happy],
    )  # fmt: skip

    async def all_counted() -> bool:  # neither the repeat nor the same response re-sent count
        return await counted(stack.database_url, site) == 2

    await async_wait_for(all_counted, timeout=30)
    await asyncio.sleep(1.5)  # let the outbox relay send anything it would send

    records = await read_topic(
        stack.kafka_bootstrap_servers, SCORING_ALERT.name,
        until=lambda rs: any(b"inv-angry" in r.value for r in rs), timeout=30,
    )  # fmt: skip
    alerts = [
        decode(DETRACTOR_ALERT.envelope, r.value).data for r in records if site.encode() in r.value
    ]
    assert [a.invitation_id for a in alerts] == ["inv-angry"]
    assert {reason.value for reason in alerts[0].reasons} == {
        "low_recommendation", "low_satisfaction", "repeat_contact_with_suggestion",
    }  # fmt: skip
    assert alerts[0].answers["recommandation"] == 3
    payload = json.loads(next(r.value for r in records if b"inv-angry" in r.value))
    assert not {"email", "mobile_phone", "phone", "user_ref"} & set(payload["data"])
    assert "@" not in json.dumps(payload["data"])
    # Free text never travels to the call-back queue, nor stays in the alert's row.
    assert payload["data"]["answers"] == {
        "recommandation": 3, "satisfaction_globale": 2, "plusieurs_contacts": "oui",
        "recontact": "oui",
    }  # fmt: skip
    stored = await fetch(
        stack.database_url, "SELECT answers FROM scoring.alerts WHERE invitation_id = 'inv-angry'"
    )
    assert "suggestion" not in json.loads(stored[0]["answers"])


async def test_the_indicators_event_carries_the_hand_computed_nps(stack, scoring):
    site = "site-nps"
    ratings = [10, 10, 9, 9, 9, 8, 7, 6, 2, 0]  # 5 promoters, 2 passives, 3 detractors
    events = [response(site, {"recommandation": r, "effort": 6}) for r in ratings]
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, events)
    figures = await indicators_of(stack, site, lambda f: f["nps"]["sample_size"] == 10)

    nps = figures["nps"]
    assert nps["value"] == pytest.approx(50 - 30)
    assert nps["counts"] == {"promoters": 5, "passives": 2, "detractors": 3}
    # Adjusted Wald by hand: add 3/4 promoter and 3/4 detractor, n + 3 = 13.
    p, d = 5.75 / 13, 3.75 / 13
    half = 1.96 * ((p + d - (p - d) ** 2) / 13) ** 0.5
    assert nps["interval"]["method"] == "adjusted_wald"
    assert nps["interval"]["low"] == pytest.approx((p - d - half) * 100, abs=0.1)
    assert nps["interval"]["high"] == pytest.approx((p - d + half) * 100, abs=0.1)
    assert figures["ces"]["value"] == 100 and figures["ces"]["sample_size"] == 10
    assert figures["satisfaction"]["sample_size"] == 0  # skipped item: not in the denominator

    async with httpx.AsyncClient(base_url=scoring.url) as client:
        metrics = (await client.get("/metrics")).text
    assert sum_metric(metrics, "scoring_response_to_indicators_seconds_count", "") >= 1
    assert sum_metric(metrics, "consumer_batch_size_records_count", SURVEY_RESPONSE.name) >= 1


async def test_a_short_questionnaires_responses_leave_out_the_indicators_it_lacks(stack, scoring):
    """Issue #15: figures from the version each response carries; no NPS or themes at n = 0
    for a site whose responses come from the three-item SMS questionnaire."""
    site = "site-sms-court"

    def short(answers: dict[str, int | str]) -> CloudEvent[ResponseSubmitted]:
        event = response(site, answers)
        data = event.data.model_copy(update={"questionnaire_version": "sms-court-2026-v1"})
        return event.model_copy(update={"data": data})

    sms = [short({"satisfaction_globale": s}) for s in (9, 10)]
    sms.append(short({"satisfaction_globale": 4, "effort": 6, "plusieurs_contacts": "non"}))
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, sms)
    figures = await indicators_of(
        stack, site, lambda f: f["satisfaction"]["sample_size"] == 3, period="iso_week"
    )
    assert set(figures) == {"satisfaction", "satisfaction_mean", "ces", "ces_mean",
                            "fcr_declared", "fcr_observed", "response_rate"}  # fmt: skip
    assert figures["satisfaction"]["counts"] == {"satisfied": 2, "total": 3}
    assert figures["ces"]["sample_size"] == figures["fcr_declared"]["sample_size"] == 1

    default = response(site, {"satisfaction_globale": 8, "recommandation": 10})
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, [default])
    mixed = await indicators_of(
        stack, site, lambda f: f["satisfaction"]["sample_size"] == 4, period="iso_week"
    )
    assert mixed["nps"]["sample_size"] == 1 and mixed["nps"]["value"] == 100
    assert "theme_clarte" in mixed and mixed["theme_clarte"]["sample_size"] == 0


async def test_breakdown_withholds_cells_below_the_anonymity_floor(stack, scoring, network_admin):
    site = "site-breakdown"
    events = [
        response(site, {"recommandation": 9, **({"effort": 7} if i < 2 else {})}) for i in range(6)
    ] + [response(site, {"recommandation": 2}, channel="courriel") for _ in range(2)]
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, events)

    async def all_counted() -> bool:
        return await counted(stack.database_url, site) == 8

    await async_wait_for(all_counted, timeout=30)
    async with httpx.AsyncClient(base_url=scoring.url, headers=network_admin) as client:
        reply = await client.get(f"/v1/sites/{site}/breakdown", params={"dimension": "channel"})
        unknown = await client.get(f"/v1/sites/{site}/breakdown", params={"dimension": "agent"})
    assert reply.status_code == 200, reply.text
    cells = {cell["value"]: cell for cell in reply.json()["cells"]}
    assert cells["courriel"] == {
        "value": "courriel", "withheld": True, "reason": "below the anonymity floor"
    }  # fmt: skip
    telephone = {f["indicator"]: f for f in cells["telephone"]["figures"]}
    assert cells["telephone"]["responses"] == 6
    assert telephone["nps"]["value"] == 100 and telephone["nps"]["sample_size"] == 6
    assert telephone["ces"]["sample_size"] == 2 and telephone["ces"]["value"] is None
    assert unknown.status_code == 422  # never an agent, never an arbitrary column


async def test_contact_distributions_and_provisional_observed_fcr(stack, scoring, network_admin):
    site = "site-cnav"
    now = utc_now()
    events = [
        contact(site, "user-a", "paiement", "telephone", now - timedelta(hours=3)),
        contact(site, "user-a", "paiement", "telephone", now - timedelta(hours=2)),
        contact(site, "user-a", "paiement", "courriel", now - timedelta(hours=1)),
        contact(site, "user-b", "declaration", "courriel", now - timedelta(hours=1)),
    ]
    await produce(stack.kafka_bootstrap_servers, SURVEY_CONTACT.name, events)
    figures = await indicators_of(
        stack, site, lambda f: f["fcr_observed"]["counts"].get("pending", 0) == 2
    )
    fcr = figures["fcr_observed"]
    assert fcr["counts"] == {"resolved": 0, "repeated": 2, "pending": 2}
    assert fcr["provisional"] is True  # two windows still open: the figure may still fall
    async with httpx.AsyncClient(base_url=scoring.url, headers=network_admin) as client:
        reply = await client.get(f"/v1/sites/{site}/contacts", params={"period": "rolling_30d"})
    body = reply.json()
    assert body["by_motif"] == {"declaration": 1, "paiement": 3}
    assert body["by_channel"] == {"courriel": 2, "telephone": 2}
    assert body["by_motif_and_channel"]["paiement"] == {"courriel": 1, "telephone": 2}
    assert body["users_by_contact_count"] == {"1": 1, "2": 0, "3": 1, "4": 0, "5+": 0}


async def test_managers_extras_teams_survey_channels_past_week_own_answers_and_csv(
    stack, scoring, network_admin
):
    """Issue #15: a past ISO week's results by team (floored), by survey channel with the
    reminder's effect, by the user's own corrected `canal`, and the manager's CSV."""
    site = "site-extras"
    today = utc_now().date()
    wednesday = today - timedelta(days=today.weekday() + 19)  # three weeks ago
    answered = datetime.combine(wednesday, time(12), UTC)
    year, number, _ = wednesday.isocalendar()
    week = f"{year}-W{number:02d}"
    invitations = [f"inv-ext-{uuid.uuid4().hex[:8]}-{i}" for i in range(8)]
    contacts = [f"crm-ext-{uuid.uuid4().hex[:8]}-{i}" for i in range(8)]
    # Six answers to e-mail invitations (team A; five corrected the channel to « courriel »),
    # two more of team B whose invitations scoring never saw.
    answers: list[dict[str, int | str]] = (
        [{"recommandation": 9, "canal": "courriel"} for _ in range(5)]
        + [{"recommandation": 3, "suggestion": '=HYPERLINK("http://x")'}]
        + [{"recommandation": 10} for _ in range(2)]
    )
    responses = [
        response(
            site,
            answer,
            answered_at=answered,
            invitation_id=invitations[i],
            contact_id=contacts[i],
            channel="telephone",
            invited_at=answered - timedelta(hours=2) if i < 6 else None,
        )
        for i, answer in enumerate(answers)
    ]
    sent = [
        invitation(
            site,
            invitations[i] if i < 6 else f"inv-ext-{uuid.uuid4().hex[:8]}",
            answered - timedelta(hours=2),
        )
        for i in range(8)
    ]
    sms = [
        CloudEvent[InvitationSent](
            id=new_event_id(),
            source="/test",
            type=INVITATION_SENT.type,
            time=answered,
            subject=site,
            data=event.data.model_copy(update={"survey_channel": SurveyChannel.SMS}),
        )
        for event in (
            invitation(
                site, f"inv-ext-sms-{i}-{uuid.uuid4().hex[:6]}", answered - timedelta(hours=2)
            )
            for i in range(3)
        )
    ]

    def reminder(invitation_id: str, at: datetime) -> CloudEvent[InvitationReminded]:
        data = InvitationReminded(
            invitation_id=invitation_id,
            site_id=site,
            network="urssaf",
            survey_channel="email",
            reminded_at=at,
        )
        return CloudEvent[InvitationReminded](
            id=new_event_id(),
            source="/test",
            type=INVITATION_REMINDED.type,
            time=at,
            subject=site,
            data=data,
        )

    # Two answers came after their invitation's reminder; a third reminded one never answered.
    reminders = [reminder(invitations[i], answered - timedelta(minutes=30)) for i in (0, 1)]
    reminders.append(reminder(sent[6].data.invitation_id, answered + timedelta(hours=1)))
    seen = [
        CloudEvent[ContactSeen](
            id=new_event_id(),
            source="/test",
            type=CONTACT_SEEN.type,
            time=answered,
            subject=site,
            data=ContactSeen(
                contact_id=contact_id,
                site_id=site,
                network="urssaf",
                channel="telephone",
                motif="declaration",
                team="equipe-a" if i < 6 else "equipe-b",
                user_pseudo_id=pseudonym(f"extras-{i}"),
                closed_at=answered - timedelta(days=1),
            ),
        )
        for i, contact_id in enumerate(contacts)
    ]
    # Answers first, then what they join: the order of the topics must not matter.
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, responses)
    await produce(stack.kafka_bootstrap_servers, SURVEY_INVITATION.name, [*sent, *sms, *reminders])
    await produce(stack.kafka_bootstrap_servers, SURVEY_CONTACT.name, seen)

    async def all_in() -> bool:
        [row] = await fetch(
            stack.database_url,
            "SELECT (SELECT count(*) FROM scoring.response_facts WHERE site_id = $1) AS r, "
            "(SELECT count(*) FROM scoring.invitation_facts WHERE site_id = $1 "
            " AND sent_day IS NOT NULL) AS i, "
            "(SELECT count(reminded_at) FROM scoring.invitation_facts WHERE site_id = $1) AS m, "
            "(SELECT count(team) FROM scoring.response_facts WHERE site_id = $1) AS t",
            site,
        )
        return (row["r"], row["i"], row["m"], row["t"]) == (8, 11, 3, 8)

    await async_wait_for(all_in, timeout=30)
    path = f"/v1/sites/{site}"
    async with httpx.AsyncClient(base_url=scoring.url, headers=network_admin) as client:
        teams = (await client.get(f"{path}/teams", params={"week": week})).json()
        channels = (await client.get(f"{path}/survey-channels", params={"week": week})).json()
        crm = (
            await client.get(f"{path}/breakdown", params={"dimension": "channel", "week": week})
        ).json()
        own = (
            await client.get(
                f"{path}/breakdown",
                params={"dimension": "channel", "week": week, "answers": "user"},
            )
        ).json()
        this_week = (
            await client.get(
                f"{path}/breakdown", params={"dimension": "channel", "period": "iso_week"}
            )
        ).json()
        export = await client.get(f"{path}/export.csv", params={"week": week})
        bad_week = await client.get(f"{path}/teams", params={"week": f"{year}-W60"})
        anonymous = await client.get(
            f"{path}/export.csv", params={"week": week}, headers={"Authorization": ""}
        )
    assert (crm["period"], crm["start"]) == (week, (wednesday - timedelta(days=2)).isoformat())
    assert [(c["value"], c["responses"]) for c in crm["cells"]] == [("telephone", 8)]
    assert not any(c["value"] == "telephone" for c in this_week["cells"])
    # The user's own answer replaces the CRM's; a cell below the floor is withheld whole.
    cells = {c["value"]: c for c in own["cells"]}
    assert cells["courriel"]["responses"] == 5 and cells["telephone"]["withheld"] is True
    # Teams: never an agent; team B's two answers are withheld.
    teams_by = {c["value"]: c for c in teams["cells"]}
    assert teams_by["equipe-a"]["responses"] == 6 and teams_by["equipe-b"]["withheld"] is True
    nps = {f["indicator"]: f for f in teams_by["equipe-a"]["figures"]}["nps"]
    assert nps["sample_size"] == 6 and round(nps["value"], 3) == round(100 * 4 / 6, 3)
    # Survey channels: e-mail 8 sent, 6 answered (4 before any reminder, 2 after it); SMS none.
    rows = {row["survey_channel"]: row for row in channels["survey_channels"]}
    assert rows["sms"] == {
        "survey_channel": "sms",
        "invitations": 3,
        "withheld": True,
        "reason": "below the anonymity floor",
    }
    email = {f["indicator"]: f for f in rows["email"]["figures"]}
    assert (rows["email"]["invitations"], rows["email"]["responses"]) == (8, 6)
    assert email["response_rate"]["value"] == 75.0
    assert email["response_rate_before_reminder"]["value"] == 50.0
    assert email["answers_after_reminder"]["counts"] == {"after": 2, "total": 6}
    assert email["reminded_answered"]["sample_size"] == 3  # below the floor: no value
    assert email["reminded_answered"]["value"] is None
    # The CSV: admin-authenticated, the site's breakdowns and its verbatims, formulas neutralised.
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert anonymous.status_code == 401 and bad_week.status_code == 422
    lines = export.text.splitlines()
    assert lines[0].startswith("site;periode;date_debut")
    assert any(";ventilation;motif;declaration;nps;" in line for line in lines)
    [verbatim] = [line for line in lines if ";verbatim;" in line]
    assert "'=HYPERLINK" in verbatim and ";=HYPERLINK" not in verbatim


async def test_a_verbatim_is_tagged_at_ingest_and_managers_filter_by_theme_and_tone(
    stack, scoring, network_admin
):
    """Issue #17: each verbatim is stored with its themes, tone and trigger words (tagged in the
    consumer's batch); the manager's verbatims route and CSV filter by theme and tone (400 in
    French for a value the tagger never gives) and the route ranks the week's irritants."""
    site = "site-themes"
    today = utc_now().date()
    monday = today - timedelta(days=today.weekday() + 7)  # last week, whole
    year, number, _ = monday.isocalendar()
    week = f"{year}-W{number:02d}"
    waiting = "Trop d'attente au téléphone, personne ne décroche"
    texts = [waiting, waiting, '=HYPERLINK("http://x") délais trop longs',
             "L'accueil était désagréable", "Conseillère très aimable, merci",
             "Il faudrait ouvrir le samedi", ""]  # fmt: skip
    history = ["Trop long", "", "", "", ""]  # the week before: one complaint about delays
    events = [
        response(site, {"recommandation": 5, "suggestion": text} if text else {"recommandation": 8},
                 answered_at=datetime.combine(day, time(11), UTC))
        for day, batch in ((monday + timedelta(days=2), texts), (monday - timedelta(days=5),
                                                                 history))
        for text in batch
    ]  # fmt: skip
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, events)
    await async_wait_for(lambda: rows_of(stack, "verbatims", site, 7), timeout=30)
    [stored] = await fetch(
        stack.database_url,
        "SELECT themes, tone, trigger_words::text AS words, tagger FROM scoring.verbatims "
        "WHERE site_id = $1 AND text = $2 LIMIT 1", site, waiting,
    )  # fmt: skip
    assert stored["themes"] == ["facilite_contact", "delais"] and stored["tone"] == "irritant"
    assert stored["tagger"] == tagging.tagger_version()  # a restart's Retagger leaves it alone
    assert json.loads(stored["words"]) == {
        "themes": {"facilite_contact": ["téléphone", "décroche"], "delais": ["attente"]},
        "tone": ["Trop", "décroche"],
    }
    path = f"/v1/sites/{site}"
    async with httpx.AsyncClient(base_url=scoring.url, headers=network_admin) as client:
        delays = (await client.get(f"{path}/verbatims",
                                   params={"week": week, "theme": "delais"})).json()  # fmt: skip
        suggestions = (
            await client.get(f"{path}/verbatims", params={"week": week, "tone": "suggestion"})
        ).json()
        bad_theme = await client.get(f"{path}/verbatims", params={"week": week, "theme": "x'"})
        bad_tone = await client.get(f"{path}/export.csv", params={"week": week, "tone": "colere"})
        export = await client.get(
            f"{path}/export.csv", params={"week": week, "theme": "delais", "tone": "irritant"}
        )
    assert sorted(v["text"] for v in delays["verbatims"]) == sorted([*texts[:3]])
    first = next(v for v in delays["verbatims"] if v["text"] == waiting)
    assert first["theme_labels"] == "Facilité pour nous contacter, Délais de traitement"
    assert (first["tone"], first["tagged"]) == ("irritant", True)
    assert [v["text"] for v in suggestions["verbatims"]] == ["Il faudrait ouvrir le samedi"]
    top = {i["theme"]: i for i in delays["top_irritants"]}
    assert (top["delais"]["count"], top["delais"]["previous_mean"]) == (3, 1.0)
    assert top["delais"]["trend_text"] == "stable (écart dans la marge d'incertitude)"
    assert top["courtoisie"]["count"] == 1
    assert bad_theme.status_code == 400 and "thème inconnu" in bad_theme.json()["detail"]
    assert bad_tone.status_code == 400 and "ton inconnu" in bad_tone.json()["detail"]
    verbatim_lines = [line for line in export.text.splitlines() if ";verbatim;" in line]
    assert len(verbatim_lines) == 3
    assert all(line.endswith(";irritant") for line in verbatim_lines)
    hyperlink = next(line for line in verbatim_lines if "HYPERLINK" in line)
    assert "'=HYPERLINK" in hyperlink and ";Délais de traitement;irritant" in hyperlink


async def test_fcr_sql_agrees_with_the_domain_on_generated_contacts(stack, scoring):
    connection = await asyncpg.connect(stack.database_url)
    try:
        await connection.execute("DROP SCHEMA IF EXISTS fcr_check CASCADE; CREATE SCHEMA fcr_check")
        await connection.execute(
            "CREATE TABLE fcr_check.contacts (LIKE scoring.contacts INCLUDING ALL)"
        )
        await connection.execute("SET search_path = fcr_check")
        for seed in range(6):
            await connection.execute("TRUNCATE contacts")
            await check_fcr_twins(connection, random.Random(seed))
    finally:
        await connection.close()


async def check_fcr_twins(connection: asyncpg.Connection, rng: random.Random) -> None:
    as_of = datetime(2026, 3, 20, 12, tzinfo=UTC)
    window = rng.choice([1, 7, 14])
    seen = generated_contacts(rng, as_of, window)
    await connection.executemany(
        "INSERT INTO contacts (contact_id, site_id, network, user_pseudo_id, channel, motif, "
        "closed_at) VALUES ($1, $2, 'n', $3, 'telephone', $4, $5) "
        "ON CONFLICT (contact_id) DO NOTHING",
        [(c.contact_id, site, c.user, c.motif, c.closed_at) for site, c in seen],
    )
    status = domain.classify_contacts([c for _, c in seen], window_days=window, as_of=as_of)
    first_site = {}
    for site, c in seen:
        first_site.setdefault(c.contact_id, (site, c.closed_at))
    periods = [
        (as_of - timedelta(days=30), as_of), (as_of - timedelta(days=5), as_of),
        (as_of - timedelta(days=20), as_of - timedelta(days=6)),
    ]  # fmt: skip
    for site in ("s1", "s2"):
        each = []
        for start, end in periods:
            expected = Counter(
                status[cid]
                for cid, (s, at) in first_site.items()
                if s == site and start <= at < end
            )
            got = await repository.fcr_counts(
                connection, site_id=site, start=start, end=end, window_days=window, as_of=as_of
            )
            assert got == (expected["resolved"], expected["repeated"], expected["pending"])
            each.append(got)
        together = await repository.fcr_counts_for_periods(
            connection, site_id=site, periods=periods, window_days=window, as_of=as_of
        )  # the publisher's one-scan twin
        assert together == each


def generated_contacts(
    rng: random.Random, as_of: datetime, window: int
) -> list[tuple[str, domain.ContactSeen]]:
    """Dense enough for repeats; exact window boundaries and re-sent contact ids included."""
    seen: list[tuple[str, domain.ContactSeen]] = []
    for index in range(250):
        closed = as_of - timedelta(minutes=rng.randrange(0, 30 * 24 * 60))
        user, motif = f"u{rng.randrange(25)}", rng.choice(["a", "b"])
        site = rng.choice(["s1", "s2"])
        seen.append((site, domain.ContactSeen(f"c{index}", user, motif, closed)))
        if rng.random() < 0.1:  # a follow-up exactly at the window's edge: still repeated
            edge = closed + timedelta(days=window)
            seen.append((site, domain.ContactSeen(f"c{index}e", user, motif, edge)))
        if rng.random() < 0.05:  # the CRM re-sent the contact: first occurrence wins
            seen.append((site, seen[-1][1]))
    return [(s, c) for s, c in seen if c.closed_at <= as_of]


async def test_contacts_come_only_from_the_pseudonymous_stream(stack, scoring):
    """Issue #12, 3: scoring never reads crm.contact.closed.v1 (e-mails, phones, raw user refs)
    and stores survey-dispatch's keyed pseudonym as the only user identifier."""
    site = "site-pseudo"
    now = utc_now()
    from_crm = crm_contact(site, "REF-CRM-000123", now - timedelta(hours=2))
    seen = contact(site, "user-p", "paiement", "telephone", now - timedelta(hours=1))
    await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [from_crm])
    await produce(stack.kafka_bootstrap_servers, SURVEY_CONTACT.name, [seen])

    async def stored() -> list[asyncpg.Record]:
        return await fetch(
            stack.database_url, "SELECT * FROM scoring.contacts WHERE site_id = $1", site
        )

    rows = await async_wait_for(stored, timeout=30)
    await asyncio.sleep(2)  # time enough for a CRM record to be folded too, if it were read
    rows = await stored()
    assert [row["contact_id"] for row in rows] == [seen.data.contact_id]
    assert rows[0]["user_pseudo_id"] == pseudonym("user-p")
    assert "user_hash" not in dict(rows[0])
    async with httpx.AsyncClient(base_url=scoring.url) as client:
        metrics = (await client.get("/metrics")).text
    assert CRM_CONTACT_CLOSED.name not in metrics


async def test_only_consenting_detractors_raise_an_alert_and_all_count(stack, scoring):
    site = "site-consent"
    low = {"recommandation": 1, "satisfaction_globale": 1}
    events = [
        response(site, low, invitation_id="inv-consent-none"),
        response(site, {**low, "recontact": "non"}, invitation_id="inv-consent-non"),
        response(site, {**low, "recontact": "oui"}, invitation_id="inv-consent-oui"),
    ]
    await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, events)
    await indicators_of(stack, site, lambda f: f["nps"]["sample_size"] == 3)  # all three count
    rows = await fetch(
        stack.database_url, "SELECT invitation_id FROM scoring.alerts WHERE site_id = $1", site
    )
    assert [row["invitation_id"] for row in rows] == ["inv-consent-oui"]
    records = await read_topic(
        stack.kafka_bootstrap_servers, SCORING_ALERT.name,
        until=lambda rs: any(b"inv-consent-oui" in r.value for r in rs), timeout=30,
    )  # fmt: skip
    assert not any(b"inv-consent-no" in r.value for r in records)


async def test_manager_routes_answer_only_the_sites_managers(stack, scoring, issuer):
    """Issue #12, 8: a token on every manager route; a manager sees their sites only; a
    malformed or unknown site id is a 4xx, never a 500."""
    local, _ = issuer
    site, other = "site-guarded", "site-guarded-other"
    await produce(
        stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name,
        [response(site, {"recommandation": 9}), response(other, {"recommandation": 9})],
    )  # fmt: skip

    async def known() -> bool:
        return await counted(stack.database_url, site) == 1 and (
            await counted(stack.database_url, other) == 1
        )

    await async_wait_for(known, timeout=30)
    await async_wait_for(  # the sites row is written in the same transaction as the tallies
        lambda: fetch(stack.database_url, "SELECT 1 FROM scoring.sites WHERE site_id = $1", site)
    )
    manager = bearer(local.mint(subject="m1", roles=[SITE_MANAGER], site_ids=[site]))
    admin = bearer(local.mint(subject="a1", roles=[NETWORK_ADMIN], network="urssaf"))
    stranger = bearer(local.mint(subject="a2", roles=[NETWORK_ADMIN], network="cnav"))
    forged = bearer(
        LocalIssuer(issuer=local.issuer, audience=local.audience).mint(
            subject="m1", roles=[NETWORK_ADMIN], network="urssaf"
        )
    )
    breakdown = {"dimension": "channel"}
    async with httpx.AsyncClient(base_url=scoring.url) as client:

        async def status(path: str, headers: dict[str, str] | None = None) -> int:
            params = breakdown if path.endswith("/breakdown") else {}
            return (await client.get(path, params=params, headers=headers)).status_code

        for route in ("breakdown", "contacts", "teams", "survey-channels", "export.csv"):
            assert await status(f"/v1/sites/{site}/{route}") == 401
            assert await status(f"/v1/sites/{site}/{route}", forged) == 401
            assert await status(f"/v1/sites/{site}/{route}", manager) == 200
            assert await status(f"/v1/sites/{other}/{route}", manager) == 403
            assert await status(f"/v1/sites/{other}/{route}", admin) == 200
            assert await status(f"/v1/sites/{site}/{route}", stranger) == 403
            assert await status(f"/v1/sites/never-seen/{route}", admin) == 404
            assert await status(f"/v1/sites/%00/{route}", admin) == 422
            assert await status(f"/v1/sites/a%0d%0ab/{route}", admin) == 422
            assert await status(f"/v1/sites/{'x' * 121}/{route}", admin) == 422
            assert await status(f"/v1/sites/%00/{route}") == 401  # no token: nothing learnt
        reply = await client.get(
            f"/v1/sites/{site}/breakdown", params={"dimension": "channel", "period": "x" * 41},
            headers=admin,
        )  # fmt: skip
        assert reply.status_code == 422


async def test_a_users_erasure_removes_their_contacts_and_verbatims_and_unlinks_alerts(
    stack, scoring
):
    """Issue #12, 13: on UserErased, the user's contacts and verbatims go and their alerts lose
    the contact id; the tallies (anonymous counts) stay. The contact may come before or after
    the response that carries the verbatim."""
    site = "site-erasure"
    now = utc_now()
    before_response = contact(site, "user-x", "paiement", "telephone", now - timedelta(hours=3),
                              contact_id="crm-erase-1")  # fmt: skip
    after_response = contact(site, "user-x", "paiement", "telephone", now - timedelta(hours=2),
                             contact_id="crm-erase-2")  # fmt: skip
    kept = contact(site, "user-y", "paiement", "telephone", now - timedelta(hours=1),
                   contact_id="crm-erase-3")  # fmt: skip
    angry = {"recommandation": 1, "recontact": "oui", "suggestion": "Jamais de réponse."}
    await produce(stack.kafka_bootstrap_servers, SURVEY_CONTACT.name, [before_response, kept])
    await async_wait_for(lambda: contacts_of(stack, site, 2), timeout=30)
    await produce(
        stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name,
        [response(site, angry, contact_id="crm-erase-1", invitation_id="inv-erase-1"),
         response(site, angry, contact_id="crm-erase-2", invitation_id="inv-erase-2"),
         response(site, angry, contact_id="crm-erase-3", invitation_id="inv-erase-3")],
    )  # fmt: skip
    await async_wait_for(lambda: rows_of(stack, "verbatims", site, 3), timeout=30)
    await produce(stack.kafka_bootstrap_servers, SURVEY_CONTACT.name, [after_response])
    await async_wait_for(lambda: contacts_of(stack, site, 3), timeout=30)

    await produce(stack.kafka_bootstrap_servers, SURVEY_INVITATION.name, [erasure("user-x")])

    async def erased() -> bool:
        return await contacts_of(stack, site, 1)

    await async_wait_for(erased, timeout=30)
    contacts = await fetch(
        stack.database_url, "SELECT contact_id FROM scoring.contacts WHERE site_id = $1", site
    )
    assert [row["contact_id"] for row in contacts] == ["crm-erase-3"]
    verbatims = await fetch(
        stack.database_url, "SELECT contact_id FROM scoring.verbatims WHERE site_id = $1", site
    )
    assert [row["contact_id"] for row in verbatims] == ["crm-erase-3"]
    alerts = await fetch(
        stack.database_url,
        "SELECT invitation_id, contact_id, user_pseudo_id FROM scoring.alerts "
        "WHERE site_id = $1 ORDER BY invitation_id",
        site,
    )
    assert [tuple(row.values()) for row in alerts] == [
        ("inv-erase-1", None, None), ("inv-erase-2", None, None),
        ("inv-erase-3", "crm-erase-3", pseudonym("user-y")),
    ]  # fmt: skip
    facts = await fetch(  # issue #15: a response's facts no longer point at the erased contacts
        stack.database_url,
        "SELECT invitation_id, contact_id FROM scoring.response_facts WHERE site_id = $1 "
        "ORDER BY invitation_id",
        site,
    )
    assert [tuple(row.values()) for row in facts] == [
        ("inv-erase-1", None), ("inv-erase-2", None), ("inv-erase-3", "crm-erase-3"),
    ]  # fmt: skip
    assert await counted(stack.database_url, site) == 3  # figures already tallied stay


async def test_a_contact_redelivered_after_its_users_erasure_does_not_come_back(stack, scoring):
    """Issue #14 kept the inbox for contacts: a contact's batch committed, its offset not yet
    (a crash), its user erased meanwhile (another topic); the redelivered contact, the same
    event, must not bring the erased pseudonym back."""
    site = "site-erased-redelivery"
    now = utc_now()
    seen = contact(site, "user-gone", "paiement", "telephone", now - timedelta(hours=2))
    await produce(stack.kafka_bootstrap_servers, SURVEY_CONTACT.name, [seen])
    await async_wait_for(lambda: contacts_of(stack, site, 1), timeout=30)
    await produce(stack.kafka_bootstrap_servers, SURVEY_INVITATION.name, [erasure("user-gone")])
    await async_wait_for(lambda: contacts_of(stack, site, 0), timeout=30)
    later = contact(site, "user-other", "paiement", "telephone", now - timedelta(hours=1))
    await produce(stack.kafka_bootstrap_servers, SURVEY_CONTACT.name, [seen, later])
    await async_wait_for(lambda: has_contact(stack, later.data.contact_id), timeout=30)
    assert not await has_contact(stack, seen.data.contact_id)


async def has_contact(stack: Any, contact_id: str) -> bool:
    rows = await fetch(
        stack.database_url, "SELECT 1 FROM scoring.contacts WHERE contact_id = $1", contact_id
    )
    return bool(rows)


async def contacts_of(stack: Any, site: str, expected: int) -> bool:
    return await rows_of(stack, "contacts", site, expected)


async def rows_of(stack: Any, table: str, site: str, expected: int) -> bool:
    rows = await fetch(
        stack.database_url, f"SELECT count(*) AS n FROM scoring.{table} WHERE site_id = $1", site
    )
    return int(rows[0]["n"]) == expected


async def test_rows_past_their_retention_are_purged(stack, scoring):
    """Issue #12, 13: contacts beyond the FCR window plus their margin, old verbatims and
    alerts, and inbox ids older than their topic's retention plus a margin are deleted; the
    rest stays. On a copy of the tables, so the live ones stay as the rebuild expects."""
    connection = await asyncpg.connect(stack.database_url)
    try:
        await connection.execute(
            "DROP SCHEMA IF EXISTS purge_check CASCADE; CREATE SCHEMA purge_check"
        )
        for table in ("contacts", "verbatims", "alerts", "inbox", "response_facts",
                      "invitation_facts", "tally_cells", "tally_vectors",
                      "retention_horizon"):  # fmt: skip
            await connection.execute(
                f"CREATE TABLE purge_check.{table} (LIKE scoring.{table} INCLUDING ALL)"
            )
    finally:
        await connection.close()
    now = utc_now()
    settings = ScoringSettings(fcr_window_days=7, contacts_retention_days=30,
                               verbatims_retention_days=90, alerts_retention_days=60,
                               inbox_margin_days=7)  # fmt: skip
    pool = await db.create_pool(stack.database_url, schema="purge_check")
    try:
        async with pool.acquire() as conn:
            for name, age in (("old", 38), ("young", 36)):
                await conn.execute(
                    "INSERT INTO contacts VALUES ($1, 's', 'n', 'p', 'telephone', 'm', $2)",
                    name, now - timedelta(days=age),
                )  # fmt: skip
            for name, age in (("old", 91), ("young", 89)):
                await conn.execute(
                    "INSERT INTO verbatims (response_id, site_id, day, channel, motif, text) "
                    "VALUES ($1, 's', $2, 'telephone', 'm', 'texte')",
                    name, (now - timedelta(days=age)).date(),
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO alerts (alert_id, invitation_id, contact_id, site_id, network, "
                    "reasons, answers, raised_at) VALUES ($1, $1, $1, 's', 'n', '{}', '{}', $2)",
                    name, now - timedelta(days=age - 30),
                )  # fmt: skip
            # Issue #15: a response's and an invitation's facts, counted on their day; and
            # issue #14: "late", about a day as old as "old" but counted just now, is what keeps
            # a copy of it from counting twice: it stays.
            for name, age, counted_days_ago in (("old", 91, 91), ("young", 89, 89),
                                                ("late", 91, 0)):  # fmt: skip
                await conn.execute(
                    "INSERT INTO response_facts (response_id, invitation_id, site_id, day, "
                    "answered_at, channel, motif, cells, counted_at) VALUES ($1, $1, 's', $2, "
                    "now(), 'telephone', 'm', '{}', $3)",
                    name, (now - timedelta(days=age)).date(),
                    now - timedelta(days=counted_days_ago),
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO invitation_facts (invitation_id, site_id, sent_day, counted_at) "
                    "VALUES ($1, 's', $2, $3)",
                    name, (now - timedelta(days=age)).date(),
                    now - timedelta(days=counted_days_ago),
                )  # fmt: skip
            inbox = [("invitation-old", SURVEY_INVITATION.name, 38),
                     ("invitation-young", SURVEY_INVITATION.name, 36),
                     ("response-kept", SURVEY_RESPONSE.name, 300)]  # fmt: skip
            for event_id, topic, age in inbox:
                await conn.execute(
                    "INSERT INTO inbox VALUES ($1, $2, $3)", event_id, topic,
                    now - timedelta(days=age),
                )  # fmt: skip
        purger = Purger(
            settings=settings, pool=pool, registry=CollectorRegistry(),
            topics=(SURVEY_RESPONSE, SURVEY_INVITATION, SURVEY_CONTACT),
        )  # fmt: skip
        deleted = await purger.purge_once(now)
        assert deleted == {"contacts": 1, "verbatims": 1, "alerts": 1, "inbox": 1,
                           "response_facts": 1, "invitation_facts": 1}  # fmt: skip
        async with pool.acquire() as conn:
            for table, key in (("contacts", "contact_id"), ("verbatims", "response_id"),
                               ("alerts", "alert_id")):  # fmt: skip
                rows = await conn.fetch(f"SELECT {key} FROM {table}")
                assert [row[key] for row in rows] == ["young"], table
            for table, key in (("response_facts", "response_id"),
                               ("invitation_facts", "invitation_id")):  # fmt: skip
                rows = await conn.fetch(f"SELECT {key} FROM {table} ORDER BY {key}")
                assert [row[key] for row in rows] == ["late", "young"], table
            rows = await conn.fetch("SELECT event_id FROM inbox ORDER BY event_id")
            assert [row["event_id"] for row in rows] == ["invitation-young", "response-kept"]
    finally:
        await pool.close()


async def test_the_service_writes_its_anonymity_floor_for_the_reporting_views(stack, scoring):
    rows = await fetch(
        stack.database_url,
        "SELECT anonymity_floor, scoring.reporting_anonymity_floor() AS used "
        "FROM scoring.reporting_settings",
    )
    assert [tuple(row.values()) for row in rows] == [(5, 5)]


def crash_stream(rng: random.Random, count: int) -> list[CloudEvent[ResponseSubmitted]]:
    now = utc_now()
    events = []
    for _ in range(count):
        answers: dict[str, int | str] = {"recommandation": rng.randint(0, 10)}
        if rng.random() < 0.7:
            answers["satisfaction_globale"] = rng.randint(1, 10)
        if rng.random() < 0.5:
            answers["effort"] = rng.randint(1, 7)
        if rng.random() < 0.5:
            answers["plusieurs_contacts"] = rng.choice(["oui", "non"])
        events.append(response(
            f"crash-{rng.randrange(8)}", answers,
            answered_at=now - timedelta(minutes=rng.randrange(0, 20 * 24 * 60)),
            channel=rng.choice(CHANNELS), motif=rng.choice(MOTIFS),
            nature=rng.choice([None, "information", "reclamation"]),
            profile=rng.choice([None, "employeur", "particulier"]),
        ))  # fmt: skip
    return events


def ground_truth(events: list[CloudEvent[ResponseSubmitted]]) -> Counter[tuple[Any, ...]]:
    truth: Counter[tuple[Any, ...]] = Counter()
    unique = {event.id: event.data for event in events}
    for data in unique.values():
        base = (data.site_id, data.answered_at.astimezone(PARIS).date(), data.channel.value,
                data.motif, data.request_nature.value if data.request_nature else "",
                data.profile or "")  # fmt: skip
        for item, value in domain.tally_rows(data.answers, version=data.questionnaire_version):
            truth[(*base, item, value)] += 1
    return truth


async def crash_tallies(database_url: str) -> Counter[tuple[Any, ...]]:
    rows = await fetch(
        database_url,
        "SELECT site_id, day, channel, motif, nature, profile, item, value, count "
        "FROM scoring.tallies WHERE site_id LIKE 'crash-%'",
    )
    return Counter({tuple(row.values())[:-1]: int(row["count"]) for row in rows})


async def test_sigkill_at_random_points_ends_with_the_ground_truth(stack, scoring):
    rng = random.Random(5000)
    events = crash_stream(rng, 5000)
    resent = rng.sample(events, 250)  # at-least-once upstream: some records twice
    stream = events + resent
    rng.shuffle(stream)

    async def produce_steadily() -> None:
        for start in range(0, len(stream), 150):  # ~1,500 records/s over ~3.5 s
            chunk = stream[start : start + 150]
            await produce(stack.kafka_bootstrap_servers, SURVEY_RESPONSE.name, chunk)
            await asyncio.sleep(0.1)

    producing = asyncio.create_task(produce_steadily())
    counted_at_kills = []
    for _ in range(3):
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        scoring.kill()
        counted_at_kills.append(sum(c for k, c in (await crash_tallies(stack.database_url)).items()
                                    if k[6] == domain.RESPONSES_ITEM))  # fmt: skip
        await asyncio.to_thread(scoring.start)
    await producing
    assert any(0 < n < 5000 for n in counted_at_kills), counted_at_kills  # killed mid-stream
    truth = ground_truth(events)

    async def settled() -> bool:
        return await crash_tallies(stack.database_url) == truth

    try:
        await async_wait_for(settled, timeout=60, interval=0.5)
    finally:
        got = await crash_tallies(stack.database_url)
        extra = sum((got - truth).values())
        missing = sum((truth - got).values())
        print(f"crash test: {extra} counted too many, {missing} missing")
    assert sum(c for k, c in truth.items() if k[6] == domain.RESPONSES_ITEM) == 5000


async def test_rebuild_from_the_topics_equals_the_incremental_tallies(stack, scoring):
    def rebuild() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scoring", "rebuild"],
            env={**os.environ, **stack.env()}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    done = await asyncio.to_thread(rebuild)
    assert done.returncode == 0, done.stdout + done.stderr
    report = last_json_line(done.stdout)
    print("rebuild report:", {k: v for k, v in report.items() if k != "tables"})
    assert report["equal"] is True
    assert report["events_by_type"][RESPONSE_SUBMITTED.type] >= 5000
    assert report["duplicates"] >= 250 + 2  # the re-sent records, the triple send
    assert report["tables"]["contacts"]["rows"] >= 4

    # The comparison is not vacuous: one wrong count in the live tallies is caught.
    await fetch(
        stack.database_url,
        "UPDATE scoring.site_day_vectors SET counts[1] = counts[1] + 1 WHERE site_id = 'site-nps'",
    )
    tampered = await asyncio.to_thread(rebuild)
    assert tampered.returncode == 1
    assert last_json_line(tampered.stdout)["tables"]["site_day_vectors"]["only_incremental"] >= 1
    await fetch(
        stack.database_url,
        "UPDATE scoring.site_day_vectors SET counts[1] = counts[1] - 1 WHERE site_id = 'site-nps'",
    )

    # After the retention purge: the facts, verbatims and contacts it deleted come back in the
    # rebuild, as they are in the topics; that is expected, not a difference. The breakdowns
    # the purge archived (tally_vectors) are compared through `tallies`, archive plus facts.
    # Counted on their day, as in production, the facts older than the middle day go.
    await fetch(stack.database_url, "UPDATE scoring.response_facts SET counted_at = day")
    await fetch(
        stack.database_url,
        "UPDATE scoring.invitation_facts SET counted_at = coalesce(sent_day, reminded_at::date)",
    )
    [middle] = await fetch(
        stack.database_url,
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY day) FROM scoring.response_facts",
    )
    pool = await db.create_pool(stack.database_url, schema="scoring")
    try:
        purger = Purger(
            settings=ScoringSettings(), pool=pool, registry=CollectorRegistry(),
            topics=(SURVEY_RESPONSE, SURVEY_INVITATION, SURVEY_CONTACT),
        )  # fmt: skip
        later = datetime.combine(middle[0] + timedelta(days=90), time(12), tzinfo=UTC)
        deleted = await purger.purge_once(later)
    finally:
        await pool.close()
    [kept] = await fetch(stack.database_url, "SELECT count(*) FROM scoring.response_facts")
    assert deleted["response_facts"] > 0 and kept[0] > 0, (deleted, kept)
    purged = await asyncio.to_thread(rebuild)
    report = last_json_line(purged.stdout)
    assert purged.returncode == 0, {k: v for k, v in report["tables"].items() if not v["equal"]}
    assert report["tables"]["response_facts"]["past_retention"] == deleted["response_facts"]
    assert report["tables"]["verbatims"]["past_retention"] == deleted["verbatims"]
    assert report["tables"]["tallies"]["rows"] > 0

    # Neither comparison is vacuous: a fact missing inside the retention, and a wrong count in
    # the archive, are each caught.
    await fetch(
        stack.database_url,
        "DELETE FROM scoring.response_facts WHERE response_id = "
        "(SELECT max(response_id) FROM scoring.response_facts)",
    )
    await fetch(
        stack.database_url,
        "UPDATE scoring.tally_vectors SET counts[1] = counts[1] + 1 "
        "WHERE ctid = (SELECT min(ctid) FROM scoring.tally_vectors)",
    )
    wrong = await asyncio.to_thread(rebuild)
    assert wrong.returncode == 1
    tables = last_json_line(wrong.stdout)["tables"]
    assert tables["response_facts"]["only_rebuilt"] == 1
    assert tables["tallies"]["only_incremental"] >= 1


def last_json_line(stdout: str) -> dict[str, Any]:
    return dict(json.loads(stdout.strip().splitlines()[-1]))
