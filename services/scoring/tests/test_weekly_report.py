"""The weekly report, rendered for a seeded week and sent through the real SMTP sink: its figures
are scoring.domain's on the same tallies, computed here from the answers themselves."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from scoring import domain, weekly_report
from scoring.settings import ScoringSettings
from scoring.themes import tag

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
    # The week's answers answer the week's own invitations (one cohort, issue #18).
    await conn.execute(
        "INSERT INTO invitation_tallies (site_id, day, channel, motif, count, answered) "
        "VALUES ($1, $2, 'telephone', 'declaration', $3, $4)",
        SITE_ID, monday, INVITATIONS_PER_WEEK, len(answers),
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
    assert not hasattr(report.call_backs[0], "suggestion")  # no free text beside a contact id


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
        assert "Taux de réponse" in part and "Contact a-1" in part
        assert "Trop d" not in part  # an old alert's free text, never beside its contact id
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


async def test_a_guadeloupe_sites_call_back_is_dated_on_its_own_clock(pool):
    """Issue #15: an alert raised Monday 23 November at 02:00 UTC was raised on Sunday 22 at
    22:00 in Guadeloupe: the weekly e-mail dates it on the site's clock, not Paris's."""
    site = "urssaf-guadeloupe-rapport"
    raised = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO sites (site_id, network, site_name, timezone) "
            "VALUES ($1, 'urssaf', 'Urssaf Guadeloupe', 'America/Guadeloupe')", site,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO alerts (alert_id, invitation_id, contact_id, site_id, network, reasons,"
            " answers, raised_at) VALUES ($1, $1, $1, $2, 'urssaf', $3, $4, $5)",
            "a-gp", site, ["low_recommendation"], {"recommandation": 2}, raised,
        )  # fmt: skip
        [call] = await weekly_report.pending_call_backs(conn, site_id=site)
        zone = await weekly_report.site_zone(conn, site)
        weeks = [await conn.fetchval(f"SELECT week FROM {view} WHERE alert_id = 'a-gp'")
                 for view in ("reporting_alerts", "reporting_alert_outcomes")]  # fmt: skip
    assert weeks == ["2026-W47", "2026-W47"]  # W48 in Paris
    assert (call.raised_at.date(), call.raised_at.hour) == (date(2026, 11, 22), 22)
    assert call.raised_at.utcoffset() == timedelta(hours=-4)
    assert str(zone) == "America/Guadeloupe"


async def test_the_email_shows_teams_and_survey_channels_under_the_floor_as_the_board(pool):
    """Issue #15: « Par équipe » lists a team of 6 answers (never one of 2, under the floor of 5)
    and « Par canal d'enquête » the e-mail's response rate and after-reminder share, the SMS's
    withheld (2 answers); the board's views (reporting_team_results, reporting_survey_channels)
    give the same figures with the same floor."""
    site, monday = "site-equipes-rapport", weekly_report.week_start(WEEK)
    sent_at = datetime.combine(monday, datetime.min.time(), UTC) + timedelta(hours=9)
    team_a = [(9, 10)] * 4 + [(9, 2), (3, 2)]  # satisfaction 5/6 at 8+, NPS (4 - 2) / 6
    answers = [("equipe-a", *pair) for pair in team_a] + [("equipe-b", 9, 10)] * 2
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO sites (site_id, network, site_name) VALUES ($1, 'urssaf', 'Équipes')",
            site,
        )
        invitations = [(f"{site}-mail-{n}", "email") for n in range(10)]
        invitations += [(f"{site}-sms-{n}", "sms") for n in range(4)]
        answered = [key for key, channel in invitations if channel == "email"][:6]
        answered += [key for key, channel in invitations if channel == "sms"][:2]
        for number, (key, channel) in enumerate(invitations):
            reminded = sent_at + timedelta(days=2) if number in (0, 1, 7) else None
            await conn.execute(
                "INSERT INTO invitation_facts (invitation_id, site_id, survey_channel, sent_day,"
                " sent_at, reminded_at) VALUES ($1, $2, $3, $4, $5, $6)",
                key, site, channel, monday, sent_at, reminded,
            )  # fmt: skip
        for key, (team, satisfaction, recommandation) in zip(answered, answers, strict=True):
            late = key.endswith(("-mail-0", "-mail-1"))  # answered after their reminder
            await conn.execute(
                "INSERT INTO response_facts (response_id, invitation_id, site_id, day, "
                "answered_at, channel, motif, team, cells) VALUES ($1, $1, $2, $3, $4, "
                "'telephone', 'declaration', $5, $6)",
                key, site, monday + timedelta(days=3 if late else 0),
                sent_at + timedelta(days=3 if late else 0, hours=1), team,
                {"__responses__": "1", "satisfaction_globale": str(satisfaction),
                 "recommandation": str(recommandation)},
            )  # fmt: skip
        report = await weekly_report.build_report(
            conn, ScoringSettings(), site_id=site, week=WEEK, now=NOW
        )
        teams = await conn.fetch(
            "SELECT team, responses, satisfaction_pct, nps FROM reporting_team_results "
            "WHERE site_id = $1 AND week = $2", site, WEEK,
        )  # fmt: skip
        channels = await conn.fetch(
            "SELECT survey_channel, invitations, response_rate_pct, answers_after_reminder_pct "
            "FROM reporting_survey_channels WHERE site_id = $1 AND week = $2 ORDER BY 1",
            site, WEEK,
        )  # fmt: skip
    [team] = report.teams
    assert (team.team, team.responses, report.teams_withheld) == ("equipe-a", 6, 1)
    assert team.satisfaction == pytest.approx(500 / 6) and team.nps == pytest.approx(200 / 6)
    assert [tuple(row.values()) for row in teams] == [
        ("equipe-a", 6, Decimal("83.3"), Decimal("33.3"))
    ]
    mail, sms = report.survey_channels
    assert (mail.survey_channel, mail.invitations, mail.withheld) == ("email", 10, False)
    assert mail.response_rate == pytest.approx(60) and mail.after_reminder == pytest.approx(200 / 6)
    assert (sms.survey_channel, sms.invitations, sms.withheld) == ("sms", 4, True)
    assert sms.response_rate is None and sms.after_reminder is None
    assert [tuple(row.values()) for row in channels] == [
        ("email", 10, Decimal("60.0"), Decimal("33.3")),
        ("sms", 4, None, None),
    ]
    _, html, text = weekly_report.render(report)
    for body in (html, text):
        assert "Par équipe" in body or "PAR ÉQUIPE" in body
        assert "equipe-a" in body and "equipe-b" not in body
        assert "83,3\u202f%" in body and "33,3" in body
        assert "60,0\u202f%" in body or "60\u202f%" in body
    assert "SMS : 4 invitations, taux non communiqué (moins de 5 réponses)" in text
    assert "E-mail : 10 invitations, taux de réponse 60" in text
    assert "1 autre(s) équipe(s) : moins de 5 réponses, non communiqué." in text


def test_smtp_credentials_in_the_url_are_decoded():
    client = weekly_report._smtp("smtps://rapports%40urssaf.fr:p%40ss%3Aw0rd@smtp.exemple.fr")
    assert (client.hostname, client.port, client.use_tls) == ("smtp.exemple.fr", 465, True)
    assert (client._login_username, client._login_password) == ("rapports@urssaf.fr", "p@ss:w0rd")


# --------------------------------------------------------------------------- issue #12

SMALL_ID, SMALL_NAME, _ = SITES[1]
SMALL_VERBATIM = "Je suis la seule personne venue mardi à 9 h."


@pytest.fixture(scope="module")
async def small_site(stack, seeded):
    """A site with 3 responses in the week (below the floor of 5), a verbatim and an alert
    that still holds free text (stored before the fix)."""
    conn = await db.connect(stack.database_url, schema="scoring")
    try:
        await conn.execute(
            "INSERT INTO sites (site_id, network, site_name) VALUES ($1, $2, $3)",
            SMALL_ID, NETWORK, SMALL_NAME,
        )  # fmt: skip
        monday = weekly_report.week_start(WEEK)
        for item, value in (("__responses__", "1"), ("recommandation", "2"),
                            ("satisfaction_globale", "3")):  # fmt: skip
            await conn.execute(
                "INSERT INTO tallies (site_id, day, channel, motif, item, value, count) "
                "VALUES ($1, $2, 'telephone', 'declaration', $3, $4, 3)",
                SMALL_ID, monday, item, value,
            )  # fmt: skip
        await conn.execute(
            "INSERT INTO verbatims (response_id, site_id, day, channel, motif, text, "
            "satisfaction, recommandation, contact_id) "
            "VALUES ('r-small', $1, $2, 'telephone', 'declaration', $3, 3, 2, 'c-small')",
            SMALL_ID, monday, SMALL_VERBATIM,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO alerts (alert_id, invitation_id, contact_id, site_id, network, reasons, "
            "answers, raised_at) VALUES ('a-small', 'a-small', 'c-small', $1, $2, "
            "'{low_recommendation}', $3, $4)",
            SMALL_ID, NETWORK, {"recommandation": 2, "suggestion": SMALL_VERBATIM}, NOW,
        )  # fmt: skip
    finally:
        await conn.close()


async def test_a_site_week_below_the_floor_shows_no_figure_nor_verbatim(pool, small_site):
    """Issue #12, 7: below the anonymity floor the e-mail lists no verbatim and no figure, and a
    contact id is never printed beside free text."""
    async with pool.acquire() as conn:
        report = await weekly_report.build_report(
            conn, ScoringSettings(), site_id=SMALL_ID, week=WEEK, now=NOW
        )
    assert report.responses == 3 and report.below_floor
    assert report.verbatims == [] and report.themes_to_improve == []
    assert all(line.value is None and line.low is None for line in report.figures)
    _, html, text = weekly_report.render(report)
    for part in (html, text):
        assert "seule personne" not in part
        assert "Moins de 5 réponses cette semaine" in part
        assert "Contact c-small" in part  # the consenting detractor is still called back
        assert "Taux de réponse" not in part  # no figure table at all
    assert "n = 3" not in text


async def test_the_floor_is_the_settings_one(pool, seeded):
    async with pool.acquire() as conn:
        report = await weekly_report.build_report(
            conn, ScoringSettings(anonymity_floor=50), site_id=SITE_ID, week=WEEK, now=NOW
        )
    assert report.responses == 45 and report.below_floor and report.verbatims == []


async def test_one_bad_site_does_not_stop_the_weekly_report(stack, pool, seeded, small_site):
    """Issue #12, 5: a site name with control characters cannot add a header, a recipient that
    would is refused for its own site only, and the other sites are mailed."""
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE sites SET site_name = $2 WHERE site_id = $1",
            SMALL_ID, "Marseille\r\nBcc: espion@exemple.fr",
        )  # fmt: skip
    try:
        result = await weekly_report.send_weekly_reports(
            settings(stack), pool, week=WEEK, smtp_url=stack.smtp_url,
            recipients={
                SITES[2][0]: ["chef.abymes@exemple.fr\r\nBcc: espion@exemple.fr"],
                SMALL_ID: ["chef.marseille@exemple.fr"],
                SITE_ID: ["chef.montreuil@exemple.fr"],
            },
        )  # fmt: skip
    finally:
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE sites SET site_name = $2 WHERE site_id = $1", SMALL_ID, SMALL_NAME
            )
    assert result.failed == [SITES[2][0]]
    assert sorted(report.site_id for report in result.mailed) == sorted([SMALL_ID, SITE_ID])

    def delivered():
        wanted = {"chef.marseille@exemple.fr", "chef.montreuil@exemple.fr"}
        mails = [m for m in read_maildir(stack.maildir) if str(m["To"]) in wanted]
        return mails if len(mails) == 2 else None

    mails = await async_wait_for(delivered, timeout=10)
    for mail in mails:  # the name stays inside the Subject: no header of its own, no recipient
        assert "bcc" not in {name.lower() for name in mail}
        assert "espion" not in str(mail["X-Envelope-To"])
    marseille = next(m for m in mails if str(m["To"]) == "chef.marseille@exemple.fr")
    assert "Marseille Bcc" in str(marseille["Subject"]).replace("\n", " ")


async def test_reporting_views_apply_the_settings_floor(stack, seeded):
    """Issue #12, 7: the Grafana views blank a figure of fewer answers than the floor, inside a
    breakdown cell too, and read the floor the service wrote (not a constant)."""
    site = "site-floor-views"
    monday = weekly_report.week_start(WEEK)
    conn = await db.connect(stack.database_url, schema="scoring")
    try:
        rows = [("__responses__", "1", 6), ("satisfaction_globale", "9", 6),
                ("recommandation", "10", 3)]  # fmt: skip
        for item, value, count in rows:
            await conn.execute(
                "INSERT INTO tallies (site_id, day, channel, motif, item, value, count) "
                "VALUES ($1, $2, 'courriel', 'paiement', $3, $4, $5)",
                site, monday, item, value, count,
            )  # fmt: skip

        async def as_grafana(sql: str) -> list:
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE grafana_reader")
                return await conn.fetch(sql, site)

        indicators = "SELECT indicator, value, low FROM reporting_weekly_indicators " \
            "WHERE site_id = $1"  # fmt: skip
        breakdown = "SELECT dimension, key, nps, satisfaction FROM reporting_weekly_breakdown " \
            "WHERE site_id = $1 ORDER BY dimension"  # fmt: skip
        figures = {row["indicator"]: row for row in await as_grafana(indicators)}
        assert figures["nps"]["value"] is None and figures["nps"]["low"] is None  # 3 answers
        assert figures["satisfaction"]["value"] == 100  # 6 answers
        cells = [tuple(row.values()) for row in await as_grafana(breakdown)]
        assert cells == [("channel", "courriel", None, 100), ("motif", "paiement", None, 100)]

        await conn.execute("UPDATE reporting_settings SET anonymity_floor = 7")
        try:
            figures = {row["indicator"]: row for row in await as_grafana(indicators)}
            assert figures["satisfaction"]["value"] is None
            assert await as_grafana(breakdown) == []
        finally:
            await conn.execute("UPDATE reporting_settings SET anonymity_floor = 5")
    finally:
        await conn.close()


# --------------------------------------------------------------------------- issue #18


def _week(satisfied: int, unsatisfied: int, promoters: int = 0, detractors: int = 0):
    tally = {
        domain.RESPONSES_ITEM: {"1": satisfied + unsatisfied},
        "satisfaction_globale": {"9": satisfied, "5": unsatisfied},
    }
    if promoters or detractors:
        tally["recommandation"] = {"10": promoters, "3": detractors}
    return domain.figures(tally, invitations=0, questionnaire=questionnaire.load())


def _headline(current, previous, floor=weekly_report.ANONYMITY_FLOOR):
    lines = weekly_report.headline_figures(current, previous, floor)
    return {line.indicator: line for line in lines}


def test_a_change_within_the_noise_reads_stable_not_as_a_trend():
    # The case: about 45 answers, a drop of 4.4 points that the e-mail called a drop.
    lines = _headline(_week(30, 15), _week(32, 13))
    satisfaction = lines["satisfaction"]
    assert satisfaction.change == pytest.approx(30 / 45 * 100 - 32 / 45 * 100)
    assert weekly_report.format_change(satisfaction) == (
        "stable (écart dans la marge d'incertitude)"
    )


def test_a_real_change_says_its_direction_and_size():
    lines = _headline(_week(45, 5), _week(20, 30))
    assert weekly_report.format_change(lines["satisfaction"]) == "en hausse de 50 points"


def test_no_change_against_a_withheld_week():
    lines = _headline(_week(30, 15), weekly_report.withheld_week(_week(3, 1)))
    assert weekly_report.format_change(lines["satisfaction"]) == "pas de comparaison"


def test_email_figures_round_half_away_from_zero():
    assert weekly_report._number(8.25) == "8,3"  # half to even on the binary float gave 8,2
    assert weekly_report._number(-42.5, 0) == "\u221243"
    assert weekly_report._number(62.5, 0) == "63"


def test_a_figure_is_never_shown_outside_its_own_interval():
    # One promoter, on a manager's view with a floor of 1: NPS +100, interval -48.5 to 98.5.
    line = _headline(_week(1, 0, promoters=1), [], floor=1)["nps"]
    assert line.adjusted is True and line.value == pytest.approx(25.0)
    assert line.low is not None and line.high is not None
    assert line.low <= line.value <= line.high
    assert weekly_report.format_value(line) == "+25 (centre de l'intervalle : trop peu de réponses)"
    assert weekly_report.format_interval(line) == "\u221248,5 à 98,5"


# --------------------------------------------------------------------------- issue #17

IRRITANTS_ID = "site-irritants"
# (week, text, how many): W46 one complaint about delays in 20 answers; W47 eight, then the
# welcome twice, clarity and the car park once each (the fourth theme leaves the top 3).
IRRITANT_VERBATIMS = [
    (PREVIOUS, "Trop long", 1),
    (WEEK, "Délais interminables, trois semaines pour une réponse", 8),
    (WEEK, "L'accueil était désagréable", 2),
    (WEEK, "Réponse incompréhensible", 1),
    (WEEK, "Le parking est toujours plein", 1),
    (WEEK, "Conseillère très aimable, merci", 3),
]


@pytest.fixture(scope="module")
async def irritants_site(stack, seeded):
    """A site of 20 answers a week for W46 and W47, its verbatims tagged as the consumer does."""
    conn = await db.connect(stack.database_url, schema="scoring")
    try:
        await conn.execute(
            "INSERT INTO sites (site_id, network, site_name) VALUES ($1, $2, 'Irritants')",
            IRRITANTS_ID, NETWORK,
        )  # fmt: skip
        for week in (PREVIOUS, WEEK):
            await conn.execute(
                "INSERT INTO tallies (site_id, day, channel, motif, item, value, count) "
                "VALUES ($1, $2, 'telephone', 'declaration', '__responses__', '1', 20)",
                IRRITANTS_ID, weekly_report.week_start(week),
            )  # fmt: skip
        number = 0
        for week, text, count in IRRITANT_VERBATIMS:
            tagging = tag(text)
            for _ in range(count):
                number += 1
                await conn.execute(
                    "INSERT INTO verbatims (response_id, site_id, day, channel, motif, text, "
                    "satisfaction, themes, tone) VALUES ($1, $2, $3, 'telephone', "
                    "'declaration', $4, 3, $5, $6)",
                    f"r-irr-{number}", IRRITANTS_ID, weekly_report.week_start(week) + timedelta(1),
                    text, [t.theme for t in tagging.themes], tagging.tone,
                )  # fmt: skip
    finally:
        await conn.close()


async def test_the_email_says_what_irritates_most_this_week_with_its_trend(pool, irritants_site):
    async with pool.acquire() as conn:
        report = await weekly_report.build_report(
            conn, ScoringSettings(), site_id=IRRITANTS_ID, week=WEEK, now=NOW
        )
    assert report.top_irritants is not None
    assert [(i.theme, i.count) for i in report.top_irritants] == [
        ("delais", 8), ("courtoisie", 2), ("clarte", 1)
    ]  # fmt: skip
    _, html, text = weekly_report.render(report)
    assert "CE QUI IRRITE LE PLUS CETTE SEMAINE" in text
    assert (
        "1. Délais de traitement : 8 commentaires, en hausse "
        "(moyenne des semaines précédentes : 1,0)" in text
    )
    assert (
        "2. Courtoisie : 2 commentaires, stable (écart dans la marge d'incertitude) "
        "(moyenne des semaines précédentes : 0,0)" in text
    )
    assert "3. Clarté de la réponse : 1 commentaire, stable" in text
    assert "Autre" not in text  # fourth: the e-mail keeps three
    assert "Ce qui irrite le plus cette semaine</h2>" in html
    assert "Délais de traitement : 8 commentaires, en hausse" in html


async def test_no_irritant_ranking_below_the_floor(pool, small_site):
    async with pool.acquire() as conn:
        report = await weekly_report.build_report(
            conn, ScoringSettings(), site_id=SMALL_ID, week=WEEK, now=NOW
        )
    assert report.top_irritants is None
    _, html, text = weekly_report.render(report)
    assert "CE QUI IRRITE LE PLUS CETTE SEMAINE" in text
    assert "Non communiqué : moins de 5 réponses cette semaine." in text
    assert "Non communiqué : moins de 5 réponses cette semaine." in html
