"""The weekly report, rendered for a seeded week and sent through the real SMTP sink: its figures
are scoring.domain's on the same tallies, computed here from the answers themselves."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from scoring import domain, weekly_report
from scoring.settings import ScoringSettings

from contracts import questionnaire
from plumbing import db
from plumbing.crm_simulator import SITES, CrmSimulator
from plumbing.sinks import read_maildir
from plumbing.testing import async_wait_for

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[1] / "scoring" / "migrations"
SITE_ID, SITE_NAME, NETWORK = SITES[0]
WEEK, PREVIOUS = "2026-W47", "2026-W46"
INVITATIONS_PER_WEEK = 60
CONTACTS = 12  # closed contacts of W47, each by a different user: all resolved
NOW = datetime(2026, 12, 7, 8, tzinfo=UTC)  # a Monday morning, after the FCR window


def test_week_helpers():
    assert weekly_report.week_start("2026-W47") == date(2026, 11, 16)
    assert weekly_report.last_complete_week(date(2026, 11, 23)) == "2026-W47"
    assert weekly_report.last_complete_week(date(2026, 11, 29)) == "2026-W47"
    assert weekly_report.last_complete_week(date(2026, 1, 5)) == "2026-W01"


@pytest.fixture(scope="module")
async def seeded(stack):
    """Scoring's tables for two weeks of one site; returns each week's tally of the answers."""
    await db.migrate(stack.database_url, schema="scoring", migrations_dir=MIGRATIONS)
    conn = await db.connect(stack.database_url, schema="scoring")
    simulator = CrmSimulator(seed=11)
    tallies = {}
    try:
        await conn.execute(
            "INSERT INTO sites (site_id, network, site_name) VALUES ($1, $2, $3)",
            SITE_ID, NETWORK, SITE_NAME,
        )  # fmt: skip
        for week, responses in ((PREVIOUS, 35), (WEEK, 45)):
            answers = [simulator.answers() for _ in range(responses)]
            tallies[week] = await seed_week(conn, weekly_report.week_start(week), answers)
        await seed_contacts_and_alerts(conn, weekly_report.week_start(WEEK))
        await seed_verbatims(conn, weekly_report.week_start(WEEK))
    finally:
        await conn.close()
    return tallies


async def seed_week(conn, monday: date, answers: list[dict]) -> dict[str, dict[str, int]]:
    counts: Counter[tuple[date, str, str]] = Counter()
    for number, one in enumerate(answers):
        day = monday + timedelta(days=number % 7)
        counts.update((day, item, value) for item, value in domain.tally_rows(one))
    for (day, item, value), count in counts.items():
        await conn.execute(
            "INSERT INTO tallies (site_id, day, channel, motif, item, value, count) "
            "VALUES ($1, $2, 'telephone', 'declaration', $3, $4, $5)",
            SITE_ID, day, item, value, count,
        )  # fmt: skip
    await conn.execute(
        "INSERT INTO invitation_tallies VALUES ($1, $2, 'telephone', 'declaration', $3)",
        SITE_ID, monday, INVITATIONS_PER_WEEK,
    )  # fmt: skip
    return domain.merge({item: {value: 1}} for one in answers for item, value in
                        domain.tally_rows(one))  # fmt: skip


async def seed_contacts_and_alerts(conn, monday: date) -> None:
    closed_at = datetime.combine(monday, datetime.min.time(), UTC) + timedelta(hours=10)
    for number in range(CONTACTS):
        await conn.execute(
            "INSERT INTO contacts VALUES ($1, $2, $3, $4, 'telephone', 'declaration', $5)",
            f"c-{number}", SITE_ID, NETWORK, f"user-{number}", closed_at,
        )  # fmt: skip
    alerts = [
        ("a-1", ["low_recommendation"], {"recommandation": 2, "suggestion": "Trop d'attente."},
         None),
        ("a-2", ["low_satisfaction"], {"satisfaction_globale": 2}, None),
        ("a-3", ["low_recommendation"], {"recommandation": 1}, closed_at + timedelta(hours=2)),
    ]  # fmt: skip
    for alert_id, reasons, answers, handled_at in alerts:
        await conn.execute(
            "INSERT INTO alerts VALUES ($1, $1, $1, $2, $3, $4, $5, $6, $7)",
            alert_id, SITE_ID, NETWORK, reasons, answers, closed_at, handled_at,
        )  # fmt: skip


VERBATIMS = [("Très bon accueil, merci.", 9, 10, 0), ("Délais trop longs pour ma DSN.", 3, 2, 2),
             ("Hors semaine : ne doit pas apparaître.", 5, 5, -3)]  # fmt: skip


async def seed_verbatims(conn, monday: date) -> None:
    for number, (text, satisfaction, recommandation, offset) in enumerate(VERBATIMS):
        await conn.execute(
            "INSERT INTO verbatims VALUES ($1, $2, $3, 'telephone', 'declaration', $4, $5, $6)",
            f"r-{number}", SITE_ID, monday + timedelta(days=offset), text, satisfaction,
            recommandation,
        )  # fmt: skip


@pytest.fixture(scope="module")
async def pool(stack, seeded):
    created = await db.create_pool(stack.database_url, schema="scoring")
    yield created
    await created.close()


def settings(stack) -> ScoringSettings:
    return ScoringSettings(database_url=stack.database_url)


async def test_report_figures_are_scoring_domain_figures(stack, seeded, pool):
    form = questionnaire.load()
    expected = {
        figure.indicator: figure
        for figure in domain.figures(
            seeded[WEEK], invitations=INVITATIONS_PER_WEEK, questionnaire=form
        )
    }
    expected["fcr_observed"] = domain.observed_fcr(CONTACTS, 0, 0)
    before = domain.figures(seeded[PREVIOUS], invitations=INVITATIONS_PER_WEEK, questionnaire=form)
    previous = {figure.indicator: figure.value for figure in before}
    async with pool.acquire() as conn:
        report = await weekly_report.build_report(conn, settings(stack), site_id=SITE_ID,
                                                  week=WEEK, now=NOW)  # fmt: skip

    assert report.responses == 45 and report.site_name == SITE_NAME
    assert [line.indicator for line in report.figures] == list(weekly_report.HEADLINE)
    for line in report.figures:
        figure = expected[line.indicator]
        assert line.value == pytest.approx(figure.value), line.indicator
        assert line.sample_size == figure.sample_size, line.indicator
        assert figure.interval is not None
        assert (line.low, line.high) == pytest.approx((figure.interval.low, figure.interval.high))
        if line.indicator != "fcr_observed":  # no contacts seeded in the previous week
            assert line.previous == pytest.approx(previous[line.indicator]), line.indicator

    themes = sorted(
        (expected[item.id].value, item.question)
        for item in domain.theme_items(form)
        if expected[item.id].sample_size >= weekly_report.ANONYMITY_FLOOR
    )[:3]
    assert [t.label for t in report.themes_to_improve] == [label for _, label in themes]
    assert [t.mean for t in report.themes_to_improve] == pytest.approx([m for m, _ in themes])
    assert [call.contact_id for call in report.call_backs] == ["a-1", "a-2"]
    assert report.call_backs[0].suggestion == "Trop d'attente."


async def test_report_is_sent_accessible_and_readable_on_a_phone(
    stack, seeded, pool, artifacts_dir
):
    await weekly_report.send_weekly_reports(
        settings(stack), pool, week=WEEK, smtp_url=stack.smtp_url,
        recipients={SITE_ID: ["responsable.montreuil@exemple.fr"]},
        board_url="https://grafana.exemple.fr/d/enquetes-site-weekly/",
    )  # fmt: skip

    def delivered():
        return [m for m in read_maildir(stack.maildir) if WEEK in str(m["Subject"])]

    mail = (await async_wait_for(delivered, timeout=10))[-1]
    assert mail["To"] == "responsable.montreuil@exemple.fr"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for part in (text, html):
        assert "Taux de réponse" in part and "Trop d" in part
        assert "var-site=urssaf-idf-montreuil" in part and "var-week=2026-W47" in part
        assert "en hausse de" in part or "en baisse de" in part or "stable" in part
    (artifacts_dir / "weekly_report.html").write_text(html, encoding="utf-8")  # for a person
    assert '<html lang="fr">' in html
    assert 'name="viewport"' in html and "max-width:600px" in html
    assert '<th scope="col"' in html and "<caption" in html
    assert "agent" not in text.replace("Aucun résultat individuel d'agent", "")


async def test_cli_command_mails_the_configured_sites(stack, seeded):
    configured = ScoringSettings(
        database_url=stack.database_url, smtp_url=stack.smtp_url, weekly_report_week=PREVIOUS,
        weekly_report_recipients={SITE_ID: ["adjointe.montreuil@exemple.fr"]},
    )  # fmt: skip
    await asyncio.to_thread(weekly_report.command, configured)

    def delivered():
        return [m for m in read_maildir(stack.maildir) if PREVIOUS in str(m["Subject"])]

    mail = (await async_wait_for(delivered, timeout=10))[-1]
    assert mail["To"] == "adjointe.montreuil@exemple.fr"


async def test_the_weeks_verbatims_are_listed_least_satisfied_first(pool):
    async with pool.acquire() as conn:
        report = await weekly_report.build_report(
            conn, ScoringSettings(), site_id=SITE_ID, week=WEEK, now=NOW
        )
    assert [v.text for v in report.verbatims] == [
        "Délais trop longs pour ma DSN.",
        "Très bon accueil, merci.",
    ]
    _, html, text = weekly_report.render(report)
    assert "« Délais trop longs pour ma DSN. »" in text
    assert "Hors semaine" not in html


def test_smtp_credentials_in_the_url_are_decoded():
    client = weekly_report._smtp("smtps://rapports%40urssaf.fr:p%40ss%3Aw0rd@smtp.exemple.fr")
    assert (client.hostname, client.port, client.use_tls) == ("smtp.exemple.fr", 465, True)
    assert (client._login_username, client._login_password) == ("rapports@urssaf.fr", "p@ss:w0rd")
