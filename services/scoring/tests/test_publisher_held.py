"""The publisher's held state (issue #14) publishes what a publish from scratch publishes.

A publisher keeps each site's day vectors with their row versions, its windows' sums, its
periods' tallies and figures, and shares the figures of two periods with the same inputs. Here
one such publisher follows a site through batches (new days, changed days, a purged day, a new
cell, invitations, contacts, a clock told late), and after each batch its event must equal,
field for field, the one the code before issue #14 computed from a full read (`from_scratch`,
a copy of it reading the tables with plain SQL).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from scoring import domain, repository, tally_vectors
from scoring.consumer import ScoringHandler
from scoring.publisher import IndicatorsPublisher, earliest_start, encode_fast
from scoring.settings import ScoringSettings

from contracts import questionnaire
from contracts.envelope import CloudEvent, new_event_id
from contracts.events import ContactSeen, InvitationSent, ResponseSubmitted, SiteIndicatorsUpdated
from contracts.sites import site_timezone
from contracts.topics import CONTACT_SEEN, INVITATION_SENT, RESPONSE_SUBMITTED, SURVEY_RESPONSE
from plumbing import db

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).parents[1] / "scoring" / "migrations"
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
SITES = ["site-a", "site-b"]
THEMES = [item.id for item in domain.theme_items(questionnaire.load())]


def _response(rng: random.Random, site: str, moment: datetime, **extra: Any) -> CloudEvent[Any]:
    answers: dict[str, int | str] = {"canal": "telephone", "recommandation": rng.randint(0, 10),
                                     "satisfaction_globale": rng.randint(1, 10)}  # fmt: skip
    if rng.random() < 0.6:
        answers["effort"] = rng.randint(1, 7)
    if rng.random() < 0.6:
        answers["plusieurs_contacts"] = rng.choice(["oui", "non"])
    for theme in THEMES:
        if rng.random() < 0.5:
            answers[theme] = rng.randint(1, 10)
    answers |= extra
    data = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:16]}", invitation_id=f"inv-{uuid.uuid4().hex[:16]}",
        contact_id=f"crm-{uuid.uuid4().hex[:16]}", site_id=site, network="urssaf",
        channel="telephone", motif=rng.choice(["declaration", "paiement"]),
        questionnaire_version="urssaf-chaud-2024-v1", answers=answers, answered_at=moment,
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=moment,
        subject=site, data=data,
    )  # fmt: skip


def _invitation(site: str, moment: datetime) -> CloudEvent[Any]:
    data = InvitationSent(
        invitation_id=f"inv-{uuid.uuid4().hex[:16]}", contact_id=f"crm-{uuid.uuid4().hex[:12]}",
        site_id=site, network="urssaf", channel="telephone", motif="declaration",
        survey_channel="email", user_pseudo_id="u" * 32,
        questionnaire_version="urssaf-chaud-2024-v1", token_sha256="0" * 64, sent_at=moment,
        expires_at=moment + timedelta(days=7),
    )  # fmt: skip
    return CloudEvent[InvitationSent](
        id=new_event_id(), source="/test", type=INVITATION_SENT.type, time=moment,
        subject=site, data=data,
    )  # fmt: skip


def _contact(site: str, user: str, moment: datetime, zone: str | None = None) -> CloudEvent[Any]:
    data = ContactSeen(
        contact_id=f"crm-{uuid.uuid4().hex[:12]}", site_id=site, network="urssaf",
        user_pseudo_id=user * 32, channel="telephone", motif="declaration", closed_at=moment,
        site_timezone=zone,
    )  # fmt: skip
    return CloudEvent[ContactSeen](
        id=new_event_id(), source="/test", type=CONTACT_SEEN.type, time=moment, subject=site,
        data=data,
    )  # fmt: skip


async def from_scratch(
    conn: asyncpg.Connection, settings: ScoringSettings, site_id: str, now: datetime
) -> SiteIndicatorsUpdated:
    """`IndicatorsPublisher.site_event` as it was before issue #14: everything read and
    computed again."""
    since = earliest_start(now)
    told = await conn.fetchval("SELECT timezone FROM sites WHERE site_id = $1", site_id)
    vectors = [(r[0], r[1]) for r in await conn.fetch(
        "SELECT day, counts FROM site_day_vectors WHERE site_id = $1 AND day >= $2 ORDER BY day",
        site_id, since,
    )]  # fmt: skip
    cohort_days = [tuple(r) for r in await conn.fetch(
        "SELECT day, sum(count)::bigint, sum(answered)::bigint, max(open_until) "
        "FROM invitation_tallies WHERE site_id = $1 AND day >= $2 GROUP BY day ORDER BY day",
        site_id, since,
    )]  # fmt: skip
    zone = ZoneInfo(site_timezone(told, site_id=site_id, network="urssaf",
                                  metropolitan=settings.reporting_timezone))  # fmt: skip
    form = questionnaire.load()
    windows = domain.periods(now.astimezone(zone).date())
    days = [(period.start, period.end) for period in windows]
    cohorts = tally_vectors.period_cohorts(cohort_days, days)  # type: ignore[arg-type]
    sums = tally_vectors.period_sums(vectors, days)
    midnight = lambda day: datetime.combine(day, datetime.min.time(), zone)  # noqa: E731
    fcr = await repository.fcr_counts_for_periods(
        conn, site_id=site_id, window_days=settings.fcr_window_days, as_of=now,
        periods=[(midnight(p.start), midnight(p.end + timedelta(days=1))) for p in windows],
    )  # fmt: skip
    cells = await repository.cell_names(conn)
    tallies = [tally_vectors.tally_of(summed, tally_vectors.cell_list(cells)) for summed in sums]
    form = domain.questionnaire_of(tallies, questionnaire.load_all(), fallback=form)
    periods = [
        domain.period_figures(
            period,
            tally,
            invitations=domain.cohort_of(*counts),
            fcr=f,
            now=now,
            questionnaire=domain.questionnaire_of([tally], questionnaire.load_all(), fallback=form),
        )
        for period, tally, counts, f in zip(windows, tallies, cohorts, fcr, strict=True)
    ]
    return SiteIndicatorsUpdated(
        site_id=site_id, network="urssaf", computed_at=now, periods=periods,
        site_timezone=zone.key,
    )  # fmt: skip


@pytest.fixture(scope="module")
async def database(stack: Any) -> str:
    await db.migrate(stack.database_url, schema="scoring", migrations_dir=MIGRATIONS)
    return str(stack.database_url)


async def test_a_publisher_holding_what_it_read_publishes_what_a_full_read_publishes(database):
    rng = random.Random(14)
    settings = ScoringSettings(database_url=database, fcr_refresh_seconds=0)
    handler = ScoringHandler(settings, raise_alerts=False)
    held = IndicatorsPublisher(settings=settings, pool=None, registry=CollectorRegistry())  # type: ignore[arg-type]
    conn = await db.connect(database, schema="scoring")

    async def batch(events: list[CloudEvent[Any]]) -> None:
        async with conn.transaction():
            await handler(conn, SURVEY_RESPONSE.name, events)

    def spread(site: str, n: int, days: int) -> list[CloudEvent[Any]]:
        return [_response(rng, site, NOW - timedelta(minutes=rng.randrange(days * 1440 + 1)))
                for _ in range(n)]  # fmt: skip

    steps: list[tuple[str, Any]] = [
        ("history", lambda: batch(spread("site-a", 300, 60) + spread("site-b", 40, 20))),
        ("a few days change", lambda: batch(spread("site-a", 5, 60) + spread("site-b", 3, 60))),
        ("today only", lambda: batch(spread("site-a", 3, 0) + spread("site-b", 1, 0))),
        (
            "an older day",
            lambda: batch([_response(rng, s, NOW - timedelta(days=150)) for s in SITES]),
        ),
        (
            "a purged day",
            lambda: conn.execute(
                "DELETE FROM site_day_vectors WHERE site_id = 'site-a' AND day = "
                "(SELECT min(day) FROM site_day_vectors WHERE site_id = 'site-a')"
            ),
        ),
        ("a new cell", lambda: batch([_response(rng, "site-a", NOW, nature_x=3)])),
        (
            "invitations",
            lambda: batch(
                [_invitation(s, NOW - timedelta(days=d)) for s in SITES for d in (0, 3, 40)]
            ),
        ),
        (
            "contacts",
            lambda: batch(
                [_contact("site-a", u, NOW - timedelta(days=d)) for u in "xyz" for d in (1, 3, 12)]
            ),
        ),
        (
            "a clock told late",
            lambda: batch(
                [_contact("site-b", "w", NOW, "America/Cayenne"), *spread("site-b", 2, 10)]
            ),
        ),
        ("nothing changed", lambda: batch([])),
    ]
    try:
        for name, step in steps:
            await step()
            for now in (NOW, NOW + timedelta(minutes=5)):
                for site in SITES:
                    event = await held.site_event(conn, site, "urssaf", None, now)
                    expected = await from_scratch(conn, settings, site, now)
                    assert event.data == expected, (name, site)
                    assert _json(event.data) == _json(expected), (name, site)
        # The next day: other windows, the sums made again from the vectors held.
        tomorrow = NOW + timedelta(days=1)
        await batch(spread("site-a", 4, 3))
        for site in SITES:
            event = await held.site_event(conn, site, "urssaf", None, tomorrow)
            assert _json(event.data) == _json(await from_scratch(conn, settings, site, tomorrow))
    finally:
        await conn.close()


def _json(data: SiteIndicatorsUpdated) -> bytes:
    event = CloudEvent[SiteIndicatorsUpdated](
        id="x", source="/scoring", type="t", time=NOW, subject=data.site_id, data=data
    )
    return encode_fast(event)
