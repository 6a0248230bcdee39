"""The Grafana boards: the committed JSON matches the generator, and every SQL panel runs, as
the read-only role Grafana uses, against the services' reporting views filled with real rows.

No Grafana server can be installed here, so the check is screenshot-free: it proves the JSON is
current and every query is valid and returns data; deploy/grafana/README.md says how to look
at the boards in a real Grafana.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from scoring import domain, irritants, repository
from scoring.themes import THEMES, TONES, tag

from contracts import figures, questionnaire
from contracts.events import SiteIndicatorsUpdated
from plumbing import db
from plumbing.crm_simulator import SITES, CrmSimulator

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "grafana" / "build.py"
MIGRATIONS = {
    "survey_dispatch": ROOT / "services/survey-dispatch/survey_dispatch/migrations",
    "survey_responses": ROOT / "services/responses/survey_responses/migrations",
    "scoring": ROOT / "services/scoring/scoring/migrations",
    "publication": ROOT / "services/publication/publication/migrations",
}
WEEKS = {"2026-W46": date(2026, 11, 9), "2026-W47": date(2026, 11, 16)}
SITE_ID, SITE_NAME, NETWORK = SITES[0]
RESPONSES_PER_SITE_WEEK = 40
CHANNEL_MOTIFS = [("telephone", "declaration"), ("accueil_physique", "recouvrement")]
VARIABLES = {
    "network": NETWORK,
    "site": SITE_ID,
    "week": "2026-W47",
    "indicator": "satisfaction",
    "verbatim_filter": "",
    "verbatim_theme": "tous",
    "verbatim_tone": "tous",
    "public_floor": "30",
    "public_period": "rolling_90d",
}


def load_build() -> Any:
    spec = importlib.util.spec_from_file_location("grafana_build", BUILD)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sql_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel or variable title, SQL) for every PostgreSQL query of every board."""
    build = load_build()
    queries = []
    for name, make in build.DASHBOARDS.items():
        board = make()
        for panel in board["panels"]:
            for target in panel["targets"]:
                if "rawSql" in target:
                    queries.append((name, panel["title"], target["rawSql"]))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                queries.append((name, f"variable {variable['name']}", variable["query"]))
    return queries


def substitute(sql: str, **values: str) -> str:
    """Grafana's interpolation of ${name} variables, as it does for single-value variables:
    raw, or with `:sqlstring` quoted and its quotes doubled."""

    def value(match: re.Match[str]) -> str:
        text = values.get(match.group(1), VARIABLES.get(match.group(1), ""))
        if match.group(2) == "sqlstring":
            return "'" + text.replace("'", "''") + "'"
        assert match.group(2) is None, match.group(0)
        return text

    return re.sub(r"\$\{(\w+)(?::(\w+))?\}", value, sql)


def test_committed_dashboards_match_the_generator():
    result = subprocess.run(
        [sys.executable, str(BUILD), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_panel_names_a_known_datasource_and_reads_only_reporting_views():
    build = load_build()
    for name, make in build.DASHBOARDS.items():
        for panel in make()["panels"]:
            for target in panel["targets"]:
                assert target["datasource"] in (build.POSTGRES, build.PROMETHEUS), name
                tables = re.findall(r"\b(?:FROM|JOIN)\s+(\w+)\.(\w+)", target.get("rawSql", ""))
                assert all(view.startswith("reporting_") for _, view in tables), panel["title"]


def test_no_board_mentions_an_agent():
    """No individual agent anywhere (the design's decision on agent-level scores)."""
    for path in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"):
        assert not re.search(r"agent|conseiller", path.read_text(encoding="utf-8"), re.I), path


# --------------------------------------------------------------------------- real database


@pytest.fixture(scope="module")
async def reporting_db(stack):
    for schema, folder in MIGRATIONS.items():
        await db.migrate(stack.database_url, schema=schema, migrations_dir=folder)
    connection = await asyncpg.connect(stack.database_url)
    try:
        await seed(connection)
        yield connection
    finally:
        await connection.close()


async def seed(connection: asyncpg.Connection) -> None:
    simulator = CrmSimulator(seed=7)
    for site_id, site_name, network in SITES[:2]:
        await connection.execute(
            "INSERT INTO scoring.sites (site_id, network, site_name) VALUES ($1, $2, $3)",
            site_id, network, site_name,
        )  # fmt: skip
        for monday in WEEKS.values():
            for number in range(RESPONSES_PER_SITE_WEEK):
                await seed_response(connection, simulator, (site_id, network), monday, number)
        await seed_publication(connection, site_id, site_name, network)


async def seed_response(
    connection: asyncpg.Connection, simulator: CrmSimulator, site: tuple[str, str],
    monday: date, number: int,
) -> None:  # fmt: skip
    """One closed contact, its invitation, answer and tallies, in every service's tables."""
    site_id, network = site
    channel, motif = CHANNEL_MOTIFS[number % 2]
    closed_at = datetime.combine(monday + timedelta(days=number % 5), datetime.min.time(), UTC)
    closed_at += timedelta(hours=9, minutes=number)
    key = f"{site_id}-{monday.isoformat()}-{number}"
    answers = simulator.answers() | {"suggestion": verbatim_text(monday, number),
                                     "recommandation": 3}  # fmt: skip
    if number % 3:
        answers["recommandation"] = 9
    await connection.execute(
        "INSERT INTO survey_dispatch.contacts (contact_id, network, site_id, decided_at, decision) "
        "VALUES ($1, $2, $3, $4, 'invite')", key, network, site_id, closed_at,
    )  # fmt: skip
    await connection.execute(
        "INSERT INTO survey_dispatch.invitations (invitation_id, contact_id, network, site_id, "
        "channel, motif, user_pseudo_id, survey_channel, token_sha256, questionnaire_version, "
        "closed_at, status, send_at, sent_at) VALUES ($1, $1, $2, $3, $4, $5, $6, 'email', $1, "
        "'v1', $7::timestamptz, 'sent', $7, $7 + interval '1 minute')",
        key, network, site_id, channel, motif, f"user-{number}", closed_at,
    )  # fmt: skip
    await connection.execute(
        "INSERT INTO survey_responses.invitations (invitation_id, token_sha256, contact_id, "
        "network, site_id, channel, motif, questionnaire_version, expires_at) "
        "VALUES ($1, $1, $1, $2, $3, $4, $5, 'v1', $6)",
        key, network, site_id, channel, motif, closed_at + timedelta(days=7),
    )  # fmt: skip
    answered_at = closed_at + timedelta(hours=1)
    await connection.execute(
        "INSERT INTO survey_responses.responses (response_id, invitation_id, answers, answered_at)"
        " VALUES ($1, $1, $2::jsonb, $3)", key, json.dumps(answers), answered_at,
    )  # fmt: skip
    await seed_scoring(connection, key, site, closed_at, channel, motif, answers)


# Issue #17: W46 has 5 complaints about waiting on the phone and 5 about the welcome; W47 has
# 20 about waiting (a rise) and 5 about the welcome (stable); one W47 verbatim is untagged.
WAITING = "Trop d'attente au téléphone, personne ne décroche"
WELCOME = "L'accueil était désagréable"
OTHERS = ("Conseillère très aimable, merci", "Il faudrait ouvrir le samedi", "RAS",
          "Réponse claire et rapide")  # fmt: skip


def verbatim_text(monday: date, number: int) -> str:
    if number % 8 == 1:
        return WELCOME
    if number % 8 == 0 or (monday == WEEKS["2026-W47"] and number % 2 == 0):
        return WAITING
    return f"{OTHERS[number % len(OTHERS)]} ({number})"


async def seed_scoring(
    connection: asyncpg.Connection, key: str, site: tuple[str, str], closed_at: datetime,
    channel: str, motif: str, answers: dict[str, int | str],
) -> None:  # fmt: skip
    site_id, network = site
    day = closed_at.date()
    for item, value in Counter(domain.tally_rows(answers)):
        await connection.execute(
            # A view since scoring's 0151: an insert adds its count (a trigger); the breakdown
            # by channel and motif is the response's fact, below (0270).
            "INSERT INTO scoring.site_day_tallies (site_id, day, item, value, count) "
            "VALUES ($1, $2, $3, $4, 1)",
            site_id, day, item, value,
        )  # fmt: skip
    # Two invitations per answer, sent the day of the answer (their cohort, issue #18).
    await connection.execute(
        "INSERT INTO scoring.invitation_tallies (site_id, day, channel, motif, count, answered) "
        "VALUES ($1, $2, $3, $4, 2, 1) ON CONFLICT (site_id, day, channel, motif) DO UPDATE "
        "SET count = invitation_tallies.count + 2, answered = invitation_tallies.answered + 1",
        site_id, day, channel, motif,
    )  # fmt: skip
    await connection.execute(
        "INSERT INTO scoring.contacts VALUES ($1, $2, $3, $4, $5, $6, $7)",
        key, site_id, network, f"user-{key[-1]}", channel, motif, closed_at,
    )  # fmt: skip
    # Issue #15: the response's facts (team) and its invitation's (survey channel, reminder).
    number = int(key.rsplit("-", 1)[1])
    # Issue #17: the verbatim as scoring's consumer stores it, tagged (the last one untagged).
    tagging = tag(str(answers["suggestion"]))
    tagged = number != RESPONSES_PER_SITE_WEEK - 1
    await connection.execute(
        "INSERT INTO scoring.verbatims (response_id, site_id, day, channel, motif, text, "
        "satisfaction, recommandation, contact_id, themes, tone, trigger_words, effort) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $1, $9, $10, $11::jsonb, $12)",
        key, site_id, day, channel, motif, answers["suggestion"],
        answers.get("satisfaction_globale"), answers.get("recommandation"),
        [t.theme for t in tagging.themes] if tagged else None,
        tagging.tone if tagged else None,
        json.dumps({"themes": {t.theme: list(t.words) for t in tagging.themes},
                    "tone": list(tagging.tone_words)}) if tagged else None,
        answers.get("effort"),
    )  # fmt: skip
    answered_at = closed_at + timedelta(hours=1)
    reminded_at = closed_at + timedelta(minutes=30) if number % 4 == 0 else None
    await connection.execute(
        "INSERT INTO scoring.invitation_facts (invitation_id, site_id, survey_channel, sent_day, "
        "sent_at, reminded_at) VALUES ($1, $2, $3, $4, $5, $6)",
        key, site_id, "sms" if number % 2 else "email", day, closed_at, reminded_at,
    )  # fmt: skip
    await connection.execute(
        "INSERT INTO scoring.response_facts (response_id, invitation_id, contact_id, site_id, "
        "day, answered_at, channel, motif, team, cells) "
        "VALUES ($1, $1, $1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
        key, site_id, day, answered_at, channel, motif, f"equipe-{number % 2 + 1}",
        json.dumps(dict(domain.tally_rows(answers))),
    )  # fmt: skip
    if reasons := domain.detractor_reasons(answers):
        await connection.execute(
            "INSERT INTO scoring.alerts (alert_id, invitation_id, contact_id, site_id, network, "
            "reasons, answers, raised_at, handled_at) VALUES ($1, $1, $1, $2, $3, $4, $5::jsonb, "
            "$6::timestamptz, CASE WHEN $7 THEN $6 + interval '1 hour' END)",
            key, site_id, network, [reason.value for reason in reasons], json.dumps(answers),
            closed_at, key.endswith("0"),
        )  # fmt: skip


async def seed_publication(
    connection: asyncpg.Connection, site_id: str, site_name: str, network: str
) -> None:
    start, end = WEEKS["2026-W46"], WEEKS["2026-W47"] + timedelta(days=6)
    tally = await scoring_tally(connection, site_id, start, end)
    period = domain.Period("rolling_90d", start, end)
    figures = domain.period_figures(
        period, tally, invitations=0, questionnaire=questionnaire.load()
    )
    event = SiteIndicatorsUpdated(
        site_id=site_id, site_name=site_name, network=network,
        computed_at=datetime.now(UTC), periods=[figures],
    )  # fmt: skip
    await connection.execute(
        "INSERT INTO publication.site_indicators VALUES ($1, $2, $3, $4, $5::jsonb)",
        site_id, network, site_name, event.computed_at, event.model_dump_json(),
    )  # fmt: skip


async def scoring_tally(
    connection: asyncpg.Connection, site_id: str, start: date, end: date
) -> dict[str, dict[str, int]]:
    """Scoring's own query, run in scoring's schema."""
    async with connection.transaction():
        await connection.execute("SET LOCAL search_path TO scoring")
        return await repository.tally_between(connection, site_id=site_id, start=start, end=end)


async def scoring_cohort(
    connection: asyncpg.Connection, site_id: str, start: date, end: date
) -> domain.Cohort:
    """The invitation cohort scoring's own query reads (issue #18: the response rate)."""
    async with connection.transaction():
        await connection.execute("SET LOCAL search_path TO scoring")
        counts = await repository.cohort_between(connection, site_id=site_id, start=start, end=end)
    return domain.cohort_of(*counts)


async def as_grafana(connection: asyncpg.Connection, sql: str) -> list[asyncpg.Record]:
    async with connection.transaction():
        await connection.execute("SET LOCAL ROLE grafana_reader")
        return await connection.fetch(sql)


@pytest.mark.integration
@pytest.mark.parametrize(("board", "title", "sql"), sql_queries())
async def test_every_sql_query_returns_data_as_grafana_reader(reporting_db, board, title, sql):
    rows = await as_grafana(reporting_db, substitute(sql))
    assert rows, f"{board} / {title} returned no row"
    assert any(value is not None for row in rows for value in row.values()), title


@pytest.mark.integration
async def test_grafana_reader_cannot_read_the_tables(reporting_db):
    for table in ("scoring.tallies", "survey_responses.responses", "survey_dispatch.invitations"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_grafana(reporting_db, f"SELECT 1 FROM {table} LIMIT 1")


@pytest.mark.integration
async def test_weekly_view_matches_scoring_domain(reporting_db):
    """The views' figures are scoring.domain's figures on the same tallies, intervals too."""
    monday = WEEKS["2026-W47"]
    tally = await scoring_tally(reporting_db, SITE_ID, monday, monday + timedelta(days=6))
    invitations = await scoring_cohort(reporting_db, SITE_ID, monday, monday + timedelta(days=6))
    assert invitations.invited == 2 * RESPONSES_PER_SITE_WEEK
    expected = {
        figure.indicator: figure
        for figure in domain.figures(
            tally, invitations=invitations, questionnaire=questionnaire.load()
        )
    }
    rows = await as_grafana(
        reporting_db,
        substitute("SELECT * FROM scoring.reporting_weekly_site WHERE site_id = '${site}' "
                   "AND week = '${week}'"),
    )  # fmt: skip
    by_indicator = {row["indicator"]: row for row in rows}
    for indicator in ("nps", "ces", "fcr_declared", "satisfaction", "response_rate"):
        row, figure = by_indicator[indicator], expected[indicator]
        assert row["sample_size"] == figure.sample_size, indicator
        assert row["value"] == pytest.approx(figure.value), indicator
        assert figure.interval is not None
        assert row["low"] == pytest.approx(figure.interval.low), indicator
        assert row["high"] == pytest.approx(figure.interval.high), indicator
    assert by_indicator["satisfaction_mean"]["value"] == pytest.approx(
        expected["satisfaction_mean"].value
    )
    assert by_indicator["nps"]["previous_value"] is not None


@pytest.mark.integration
async def test_breakdowns_below_the_anonymity_floor_are_not_shown(reporting_db):
    await reporting_db.execute(
        "INSERT INTO scoring.tallies (site_id, day, channel, motif, item, value, count) "
        "VALUES ($1, $2, 'courriel', 'rare', '__responses__', '1', 4)",
        SITE_ID, WEEKS["2026-W47"],
    )  # fmt: skip
    keys = {
        row["key"]
        for row in await as_grafana(
            reporting_db,
            substitute(
                "SELECT key FROM scoring.reporting_weekly_breakdown "
                "WHERE site_id = '${site}' AND week = '${week}'"
            ),
        )
    }
    assert "telephone" in keys and "declaration" in keys
    assert "courriel" not in keys and "rare" not in keys


# --------------------------------------------------------------------------- issue #18


def test_no_panel_shows_a_change_as_a_bare_number_or_an_arrow():
    """A change is told in words with its verdict; its number only when it is not noise; no
    stat panel draws a percent-change arrow or a sparkline."""
    build = load_build()
    for name, make in build.DASHBOARDS.items():
        for panel in make()["panels"]:
            if panel["type"] == "stat":
                assert panel["options"]["showPercentChange"] is False, panel["title"]
                assert panel["options"]["graphMode"] == "none", panel["title"]
            for target in panel["targets"]:
                sql = " ".join(target.get("rawSql", "").split())
                bare = re.sub(r"CASE WHEN distinguishable THEN change END", "", sql)
                assert not re.search(r"\bchange\b(?! ?_)", bare), (name, panel["title"])


async def sql_value(connection: asyncpg.Connection, sql: str, *args: Any) -> Any:
    async with connection.transaction():
        await connection.execute("SET LOCAL search_path TO scoring")
        return await connection.fetchval(sql, *args)


@pytest.mark.integration
@pytest.mark.parametrize(
    "counts", [(56, 70, 48, 80), (9, 10, 3, 10), (6, 7, 2, 7), (5, 56, 0, 29), (0, 10, 0, 20)]
)
async def test_the_boards_newcombe_interval_is_contracts_figures(reporting_db, counts):
    k1, n1, k2, n2 = counts
    (l1, u1), (l2, u2) = figures.wilson(k1, n1), figures.wilson(k2, n2)
    expected = figures.newcombe_difference(k1, n1, k2, n2)
    for side, bound in ((-1, expected[0]), (1, expected[1])):
        got = await sql_value(
            reporting_db, "SELECT reporting_newcombe_bound($1, $2, $3, $4, $5, $6, $7)",
            100 * k1 / n1, 100 * l1, 100 * u1, 100 * k2 / n2, 100 * l2, 100 * u2, side,
        )  # fmt: skip
        assert got == pytest.approx(100 * bound, abs=1e-9)


@pytest.mark.integration
async def test_the_boards_nps_difference_and_words_are_contracts_figures(reporting_db):
    low, high = figures.nps_difference(40, 10, 80, 30, 20, 80)
    for side, bound in ((-1, low), (1, high)):
        got = await sql_value(
            reporting_db, "SELECT reporting_nps_difference_bound(40, 10, 80, 30, 20, 80, $1)", side
        )
        assert got == pytest.approx(100 * bound, abs=1e-9)
    for difference, low, high in ((25.0, 1.6, 46.6), (-7.5, -11.8, -3.2), (-4.4, -24.0, 15.0),
                                  (0.3, 0.1, 0.5), (1.5, 0.2, 2.8)):  # fmt: skip
        change = figures.Change(difference, low, high, "percent", figures.NEWCOMBE)
        text = await sql_value(
            reporting_db, "SELECT reporting_change_text($1, $2, $3)", difference, low, high
        )
        assert text == change.text, difference


@pytest.mark.integration
async def test_the_weekly_boards_verdict_is_the_e_mails(reporting_db):
    """Each change on the site board has the verdict contracts.figures.compare gives the same
    two weeks' figures (as scoring.domain computes them)."""
    form = questionnaire.load()
    weeks = {}
    for week, monday in WEEKS.items():
        tally = await scoring_tally(reporting_db, SITE_ID, monday, monday + timedelta(days=6))
        cohort = await scoring_cohort(reporting_db, SITE_ID, monday, monday + timedelta(days=6))
        computed = domain.figures(tally, invitations=cohort, questionnaire=form)
        weeks[week] = {figure.indicator: figure.model_dump() for figure in computed}
    rows = await as_grafana(
        reporting_db,
        substitute("SELECT * FROM scoring.reporting_weekly_changes WHERE site_id = '${site}' "
                   "AND week = '${week}'"),
    )  # fmt: skip
    by_indicator = {row["indicator"]: row for row in rows}
    for indicator in ("nps", "ces", "fcr_declared", "satisfaction", "response_rate"):
        row = by_indicator[indicator]
        change = figures.compare(weeks["2026-W47"][indicator], weeks["2026-W46"][indicator])
        assert change is not None, indicator
        assert row["change_low"] == pytest.approx(change.low, abs=1e-9), indicator
        assert row["change_high"] == pytest.approx(change.high, abs=1e-9), indicator
        assert row["distinguishable"] is change.distinguishable, indicator
        assert row["change_text"] == change.text, indicator
    assert by_indicator["satisfaction_mean"]["change_text"] is None  # no rule for the mean here


def test_every_figure_column_of_the_site_board_is_rounded_half_away_before_grafana():
    build = load_build()
    for panel in build.site_board()["panels"]:
        sql = " ".join("".join(t.get("rawSql", "") for t in panel["targets"]).split())
        for column in ("value", "low", "high", "previous_value", "mean", "satisfaction", "nps"):
            for match in re.finditer(rf"(?<![\w.(]){column} AS", sql):
                raise AssertionError(f"{panel['title']}: {column} shown unrounded at {match}")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("expression", "value", "decimals", "expected"),
    [("2.675", 2.675, 2, "2.68"), ("42.5", 42.5, 0, "43"), ("-42.5", -42.5, 0, "-43"),
     ("62.5", 62.5, 0, "63"), ("17.0 / 40 * 100", 17 / 40 * 100, 0, "43"),
     ("8.25", 8.25, 1, "8.3")],
)  # fmt: skip
async def test_the_boards_rounding_is_contracts_figures(
    reporting_db, expression, value, decimals, expected
):
    got = await reporting_db.fetchval(f"SELECT round(({expression})::float8::numeric, {decimals})")
    assert str(got) == expected
    assert str(figures.round_half_away(value, decimals)) == expected


@pytest.mark.integration
async def test_the_boards_show_a_figure_inside_its_interval_and_an_open_cohort_provisional(
    reporting_db,
):
    """Issue #18 on the boards: with the managers' floor lowered to 1, one promoter's NPS (+100,
    interval -48.5 to 98.5) is shown at its interval's centre with a note (scoring.domain
    .manager_value), and the week's response rate is its invitations' cohort (1 answer to 3
    invitations), « provisoire » while a link is open."""
    site, monday = "site-one-promoter", WEEKS["2026-W47"]
    outer = reporting_db.transaction()
    await outer.start()
    try:
        await reporting_db.execute("UPDATE scoring.reporting_settings SET anonymity_floor = 1")
        for item, value in (("__responses__", "1"), ("recommandation", "10")):
            await reporting_db.execute(
                "INSERT INTO scoring.tallies (site_id, day, channel, motif, item, value, count) "
                "VALUES ($1, $2, 'telephone', 'declaration', $3, $4, 1)",
                site, monday, item, value,
            )  # fmt: skip
        await reporting_db.execute(
            "INSERT INTO scoring.invitation_tallies (site_id, day, channel, motif, count, "
            "answered, open_until) VALUES ($1, $2, 'telephone', 'declaration', 3, 1, "
            "now() + interval '1 day')",
            site, monday,
        )  # fmt: skip
        rows = await as_grafana(
            reporting_db,
            f"SELECT * FROM scoring.reporting_weekly_changes WHERE site_id = '{site}'",
        )
        by_indicator = {row["indicator"]: row for row in rows}
        nps = by_indicator["nps"]
        assert nps["value"] == pytest.approx(100.0)
        assert (round(nps["low"], 1), round(nps["high"], 1)) == (-48.5, 98.5)
        assert nps["adjusted"] is True and nps["shown_value"] == pytest.approx(25.0)
        assert nps["note"] == "centre de l'intervalle : trop peu de réponses"
        rate = by_indicator["response_rate"]
        assert rate["value"] == pytest.approx(100 / 3) and rate["sample_size"] == 3
        assert rate["provisional"] is True and rate["adjusted"] is False
        assert rate["note"].startswith("provisoire")
        assert by_indicator["satisfaction"]["note"] is None
    finally:
        await outer.rollback()


# --------------------------------------------------------------------------- issue #15 versions


async def seed_versioned_responses(
    connection: asyncpg.Connection, site: str, monday: date, version: str,
    answers: list[dict[str, str]],
) -> None:  # fmt: skip
    """Each response's tally cells as scoring adds them (domain.tally_rows), version included."""
    for response in answers:
        for item, value in domain.tally_rows(response, version=version):
            await connection.execute(
                "INSERT INTO scoring.tallies (site_id, day, channel, motif, item, value, count) "
                "VALUES ($1, $2, 'telephone', 'declaration', $3, $4, 1)",
                site, monday, item, value,
            )  # fmt: skip


@pytest.mark.integration
async def test_the_views_leave_out_an_indicator_no_questionnaire_version_of_the_week_asks(
    reporting_db,
):
    """Issue #15: a site-week answered only with the short SMS questionnaire (no NPS item) has
    no NPS row, as scoring.domain leaves it out, while satisfaction, CES and declared FCR are
    there; a site mixing both versions counts in the NPS's n only the answers to
    `recommandation` (the long version's), and matches scoring.domain on the same tallies."""
    monday = WEEKS["2026-W47"]
    short = {"satisfaction_globale": "9", "effort": "6", "plusieurs_contacts": "non"}
    long = {**short, "recommandation": "10"}
    outer = reporting_db.transaction()
    await outer.start()
    try:
        await seed_versioned_responses(
            reporting_db, "site-sms-only", monday, questionnaire.SMS_SHORT_VERSION, [short] * 6
        )
        await seed_versioned_responses(
            reporting_db, "site-mixed", monday, questionnaire.SMS_SHORT_VERSION, [short] * 6
        )
        await seed_versioned_responses(
            reporting_db, "site-mixed", monday, questionnaire.DEFAULT_VERSION,
            [long] * 4 + [{**long, "recommandation": "3"}] * 2 + [short],
        )  # fmt: skip
        forms = questionnaire.load_all()
        # Scoring's reads first: as_grafana's SET LOCAL ROLE lasts until the outer rollback.
        tallies = {
            site: await scoring_tally(reporting_db, site, monday, monday + timedelta(days=6))
            for site in ("site-sms-only", "site-mixed")
        }
        for site, tally in tallies.items():
            rows = await as_grafana(
                reporting_db,
                f"SELECT * FROM scoring.reporting_weekly_changes WHERE site_id = '{site}'",
            )
            by_indicator = {row["indicator"]: row for row in rows}
            expected = {
                figure.indicator: figure
                for figure in domain.figures(
                    tally,
                    invitations=0,
                    questionnaire=domain.questionnaire_of(
                        [tally], forms, fallback=forms[questionnaire.DEFAULT_VERSION]
                    ),
                )
            }
            for indicator in ("nps", "ces", "fcr_declared", "satisfaction", "satisfaction_mean"):
                assert (indicator in by_indicator) == (indicator in expected), (site, indicator)
                if indicator in expected:
                    row, figure = by_indicator[indicator], expected[indicator]
                    assert row["sample_size"] == figure.sample_size, (site, indicator)
                    assert row["value"] == pytest.approx(figure.value), (site, indicator)
        sms_only = await as_grafana(
            reporting_db,
            "SELECT indicator, sample_size, value FROM scoring.reporting_weekly_site "
            "WHERE site_id = 'site-sms-only'",
        )
        present = {row["indicator"]: row for row in sms_only}
        assert "nps" not in present
        for indicator in ("satisfaction", "ces", "fcr_declared"):
            assert present[indicator]["sample_size"] == 6 and present[indicator]["value"] == 100
        mixed = await as_grafana(
            reporting_db,
            "SELECT indicator, sample_size, value FROM scoring.reporting_weekly_site "
            "WHERE site_id = 'site-mixed'",
        )
        by_indicator = {row["indicator"]: row for row in mixed}
        assert by_indicator["nps"]["sample_size"] == 6  # not the 13 responses
        assert by_indicator["nps"]["value"] == pytest.approx((4 - 2) * 100 / 6)
        assert by_indicator["satisfaction"]["sample_size"] == 13
    finally:
        await outer.rollback()


@pytest.mark.integration
async def test_the_views_know_the_items_of_every_questionnaire_version(reporting_db):
    """The reporting views' questionnaire_items (migration 0210 and later) hold every known
    version's items: a version added to contracts.questionnaire needs its rows in a migration,
    else the views show its missing indicators as empty figures instead of leaving them out."""
    rows = await reporting_db.fetch("SELECT version, item FROM scoring.questionnaire_items")
    assert {(row["version"], row["item"]) for row in rows} == {
        (version, item.id)
        for version, form in questionnaire.load_all().items()
        for item in form.items
    }


# --------------------------------------------------------------------------- issue #17

VERBATIMS_PANEL = "Verbatims de la semaine"


def site_panel_sql(title: str) -> str:
    [panel] = [p for p in load_build().site_board()["panels"] if p["title"] == title]
    return panel["targets"][0]["rawSql"]


@pytest.mark.integration
async def test_a_quote_in_the_verbatim_filter_filters_instead_of_breaking_the_panel(reporting_db):
    """The text filter was pasted raw into '%...%': « l'accueil » ended the string (a syntax
    error, or SQL of the viewer's choosing). Quoted by Grafana's `sqlstring` format now."""
    sql = site_panel_sql(VERBATIMS_PANEL)
    rows = await as_grafana(reporting_db, substitute(sql, verbatim_filter="l'accueil"))
    assert rows and {row["Verbatim"] for row in rows} == {WELCOME}
    hostile = "x' OR '1'='1"
    assert await as_grafana(reporting_db, substitute(sql, verbatim_filter=hostile)) == []
    everything = await as_grafana(reporting_db, substitute(sql))
    assert len(everything) == RESPONSES_PER_SITE_WEEK


@pytest.mark.integration
async def test_the_verbatim_panel_filters_by_theme_and_tone_with_trigger_words(reporting_db):
    sql = site_panel_sql(VERBATIMS_PANEL)
    waiting = await as_grafana(
        reporting_db, substitute(sql, verbatim_theme="delais", verbatim_tone="irritant")
    )
    assert {row["Verbatim"] for row in waiting} == {WAITING}
    assert len(waiting) == 20
    row = waiting[0]
    assert row["Thèmes"] == "Facilité pour nous contacter, Délais de traitement"
    assert row["Ton"] == "irritant"
    assert row["Mots déclencheurs"] == (
        "Délais de traitement : attente ; Facilité pour nous contacter : téléphone, décroche"
        " ; ton : Trop, décroche"
    )
    untagged = await as_grafana(reporting_db, substitute(sql, verbatim_tone="non_classe"))
    assert [(r["Thèmes"], r["Ton"]) for r in untagged] == [("non classé", "non classé")]
    suggestions = await as_grafana(reporting_db, substitute(sql, verbatim_tone="suggestion"))
    assert suggestions and all(r["Verbatim"].startswith("Il faudrait") for r in suggestions)


def test_the_boards_theme_and_tone_lists_are_the_taggers():
    build = load_build()
    assert [code for _, code in build.VERBATIM_THEMES] == list(THEMES)
    assert [label for label, _ in build.VERBATIM_THEMES] == [
        irritants.THEME_LABELS[code] for code in THEMES
    ]
    assert [code for _, code in build.VERBATIM_TONES] == [*TONES, "non_classe"]
    variables = {v["name"]: v for v in build.site_board()["templating"]["list"]}
    assert variables["verbatim_theme"]["current"]["value"] == "tous"
    assert "Délais de traitement : delais" in variables["verbatim_theme"]["query"]


@pytest.mark.integration
async def test_the_boards_top_irritants_are_scoring_irritants(reporting_db):
    """« Principaux irritants » (SQL) says what scoring.irritants says on the same rows: the
    rise of waiting complaints from 5 to 20 of 40 answers, the welcome's 5 stable."""
    rows = await as_grafana(reporting_db, substitute(site_panel_sql("Principaux irritants")))
    async with reporting_db.transaction():
        await reporting_db.execute("SET LOCAL search_path TO scoring")
        monday = WEEKS["2026-W47"]
        weeks = await repository.irritant_weeks(
            reporting_db, site_id=SITE_ID, first_monday=monday - timedelta(weeks=4),
            last_monday=monday,
        )  # fmt: skip
        labels = {code: await reporting_db.fetchval("SELECT reporting_theme_label($1)", code)
                  for code in THEMES}  # fmt: skip
    expected = irritants.weekly_top_irritants(
        {day: irritants.SiteWeek(n, counts) for day, (n, counts) in weeks.items()}, monday,
        floor=5,
    )  # fmt: skip
    assert expected is not None
    assert labels == irritants.THEME_LABELS
    got = [(r["Thème"], r["Nombre"], float(r["Moyenne des 4 semaines précédentes"]),
            r["Tendance"]) for r in rows]  # fmt: skip
    assert got == [
        (i.label, i.count, float(figures.round_half_away(i.previous_mean, 1)), i.trend_text)
        for i in expected
    ]
    assert got[:2] == [("Facilité pour nous contacter", 20, 5.0, "en hausse"),
                       ("Délais de traitement", 20, 5.0, "en hausse")]  # fmt: skip
    assert ("Courtoisie", 5, 5.0, figures.STABLE_TEXT) in got
    view = await as_grafana(
        reporting_db, substitute("SELECT * FROM scoring.reporting_weekly_irritants "
                                 "WHERE site_id = '${site}' AND week = '${week}' ORDER BY rank"),
    )  # fmt: skip
    for row, irritant in zip(view, expected, strict=True):
        assert irritant.change is not None
        assert row["change_low"] == pytest.approx(irritant.change.low, abs=1e-9)
        assert row["change_high"] == pytest.approx(irritant.change.high, abs=1e-9)
        assert row["trend"] == irritant.trend


def test_a_figure_without_a_row_is_told_in_french_not_no_data():
    """An SMS-only site's NPS stat read « No data »: no row, since its questionnaire does not
    ask the recommendation question."""
    build = load_build()
    stats = [
        panel
        for make in build.DASHBOARDS.values()
        for panel in make()["panels"]
        if panel.get("type") == "stat" and panel["targets"][0]["datasource"] == build.POSTGRES
    ]
    assert stats
    for panel in stats:
        assert panel["fieldConfig"]["defaults"]["noValue"] == build.NO_FIGURE, panel["title"]


def test_times_are_drawn_on_the_readers_clock_not_paris():
    """Overseas managers read Paris times on the boards before (issue #15's own clock)."""
    build = load_build()
    assert {make()["timezone"] for make in build.DASHBOARDS.values()} == {"browser"}
