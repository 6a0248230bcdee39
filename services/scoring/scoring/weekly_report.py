"""The site managers' weekly report: an email with the week's figures, the change from last
week, the three themes to improve, the pending call-backs and a link to the Grafana board.

URSSAF and Air France both present results to front-office teams every week; this email is the
prompt for that meeting. Figures come from scoring's own tallies through `scoring.domain`, so
the email, the screens and the boards agree.

Verbatims: scoring keeps the week's free-text suggestions with their scores in its own
`verbatims` table (internal, never published); the email lists them, least satisfied first.

The anonymity floor (settings.anonymity_floor, contracts.floors) decides as everywhere else: a
site-week with fewer responses shows no figure and no verbatim, a figure answered by fewer is
blanked, and no contact id is ever printed beside free text (call-backs carry none).

One site's failure (a bad name, a refused address) is logged without personal data and counted;
the other sites are mailed all the same. Header values are checked, so none can add a header.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import aiosmtplib
import asyncpg
from jinja2 import Environment, FileSystemLoader, select_autoescape

from contracts import figures as told
from contracts import floors, questionnaire
from contracts.events import CALLBACK_OUTCOME_LABELS, IndicatorFigure
from contracts.sites import site_timezone
from plumbing import db
from plumbing.db import Connection
from scoring import domain, extras, irritants, managers, repository
from scoring.settings import ScoringSettings

TEMPLATES = Path(__file__).parent / "templates"
ANONYMITY_FLOOR = floors.ANONYMITY_FLOOR  # the default; the settings' floor is the one used
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
log = logging.getLogger(__name__)
THEMES_TO_IMPROVE = 3
TOP_IRRITANTS = 3  # « Ce qui irrite le plus cette semaine » (issue #17)
DEFAULT_BOARD_URL = "http://grafana.example/d/enquetes-site-weekly/"
# The email's headline figures, in this order (scoring.domain indicator ids).
HEADLINE = ("satisfaction", "nps", "ces", "fcr_declared", "fcr_observed", "response_rate")
REASON_LABELS = {
    "low_recommendation": "recommandation basse",
    "low_satisfaction": "satisfaction basse",
    "repeat_contact_with_suggestion": "a dû recontacter, avec une suggestion",
}


@dataclass(frozen=True)
class FigureLine:
    indicator: str
    label: str
    value: float | None
    unit: str
    sample_size: int
    low: float | None
    high: float | None
    previous: float | None
    withheld: bool = False  # below the anonymity floor: value, interval and change not shown
    comparison: told.Change | None = None  # with the previous week, both shown (contracts.figures)
    adjusted: bool = False  # `value` is its interval's centre: the figure itself lay outside it
    provisional: bool = False  # may still change (a cohort's links still open, FCR pending)

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


@dataclass(frozen=True)
class Theme:
    label: str
    mean: float
    sample_size: int


@dataclass(frozen=True)
class CallBack:
    """A consenting detractor to call back: the contact id and why, never their free text."""

    raised_at: datetime
    contact_id: str
    reasons: list[str]
    age_days: int = 0  # whole days it has waited, as of the report


@dataclass(frozen=True)
class Verbatim:
    day: date
    channel: str
    text: str
    satisfaction: int | None
    recommandation: int | None


@dataclass(frozen=True)
class TeamLine:
    """A team's week (ContactSeen.team, never an agent), shown only at or above the floor."""

    team: str
    responses: int
    satisfaction: float | None  # share answering 8 to 10, percent; None when too few answered
    nps: float | None


@dataclass(frozen=True)
class SurveyChannelLine:
    """A survey channel's invitations of the week (e-mail, SMS): its response rate and the
    share of its answers that came after the reminder; both None under the floor."""

    survey_channel: str
    invitations: int
    response_rate: float | None
    after_reminder: float | None
    withheld: bool


@dataclass(frozen=True)
class WeeklyReport:
    site_id: str
    site_name: str
    network: str
    week: str
    start: date
    end: date
    responses: int
    figures: list[FigureLine]
    themes_to_improve: list[Theme]
    call_backs: list[CallBack]
    board_url: str
    verbatims: list[Verbatim]
    floor: int = ANONYMITY_FLOOR
    callbacks: domain.CallbackWeek | None = None  # the week's alerts: handled, how fast, outcomes
    """`call_backs` lists the alerts still OPEN (any week), `callbacks` counts the week's."""
    teams: list[TeamLine] = field(default_factory=list)  # at or above the floor only
    teams_withheld: int = 0  # teams with answers this week, but fewer than the floor
    survey_channels: list[SurveyChannelLine] = field(default_factory=list)
    # Issue #17: the week's top irritant themes with their trend; None below the floor.
    top_irritants: list[irritants.Irritant] | None = None

    @property
    def callback_outcomes(self) -> list[tuple[str, int]]:
        """The week's call-back outcomes in French, in the contract's order, with their count."""
        counted = self.callbacks.outcomes if self.callbacks else {}
        return [(label, counted.get(code, 0)) for code, label in CALLBACK_OUTCOME_LABELS.items()]

    @property
    def below_floor(self) -> bool:
        """Too few responses this week to show any figure or verbatim of the site."""
        return not floors.may_show(self.responses, self.floor)


@dataclass
class SendResult:
    """What a weekly run did: the reports mailed, and the sites that failed (ids only)."""

    mailed: list[WeeklyReport]
    failed: list[str]


# --------------------------------------------------------------------------- weeks


def week_start(week: str) -> date:
    """Monday of an ISO week written '2026-W47'."""
    return date.fromisoformat(f"{week}-1")


def last_complete_week(today: date) -> str:
    """The week a Monday-morning report is about: the previous Monday-to-Sunday week."""
    year, number, _ = (today - timedelta(days=today.weekday() + 7)).isocalendar()
    return f"{year}-W{number:02d}"


# --------------------------------------------------------------------------- figures


def headline_figures(
    current: Sequence[IndicatorFigure], previous: Sequence[IndicatorFigure],
    floor: int = ANONYMITY_FLOOR,
) -> list[FigureLine]:  # fmt: skip
    """The headline figures, each through the anonymity floor (contracts.floors.floored); pass
    the figures of a site-week below the floor as withheld by the caller (empty values)."""
    before = {figure.indicator: floors.floored(figure, floor) for figure in previous}
    by_id = {figure.indicator: figure for figure in current}
    return [_line(by_id[indicator], before.get(indicator), floor) for indicator in HEADLINE
            if indicator in by_id]  # fmt: skip


def _line(figure: IndicatorFigure, previous: IndicatorFigure | None, floor: int) -> FigureLine:
    shown = floors.floored(figure, floor)
    interval = shown.interval
    # Beside its interval, a figure is never outside it (issue #18): the centre, flagged.
    value, adjusted = domain.manager_value(shown)
    comparison = None
    if previous is not None and shown.value is not None and previous.value is not None:
        comparison = told.compare(shown.model_dump(), previous.model_dump())
    return FigureLine(
        indicator=figure.indicator, label=figure.label, value=value, unit=figure.unit,
        sample_size=figure.sample_size, low=interval.low if interval else None,
        high=interval.high if interval else None,
        previous=previous.value if previous is not None else None,
        withheld=not floors.may_show(figure.sample_size, floor) and figure.sample_size > 0,
        comparison=comparison, adjusted=adjusted, provisional=shown.provisional,
    )  # fmt: skip


def withheld_week(figures: Sequence[IndicatorFigure]) -> list[IndicatorFigure]:
    """A site-week below the floor: every figure withheld whatever its own sample size."""
    return [
        figure.model_copy(update={"value": None, "interval": None, "counts": {}})
        for figure in figures
    ]


def themes_to_improve(
    figures: Sequence[IndicatorFigure],
    form: questionnaire.Questionnaire,
    floor: int = ANONYMITY_FLOOR,
) -> list[Theme]:
    """The lowest theme means, among themes with enough answers to be shown to managers."""
    by_id = {figure.indicator: figure for figure in figures}
    themes = [
        Theme(label=item.question, mean=figure.value, sample_size=figure.sample_size)
        for item in domain.theme_items(form)
        if (figure := by_id.get(item.id)) is not None
        and figure.value is not None
        and floors.may_show(figure.sample_size, floor)
    ]
    return sorted(themes, key=lambda theme: theme.mean)[:THEMES_TO_IMPROVE]


def board_link(base_url: str, *, network: str, site_id: str, week: str) -> str:
    query = urlencode({"var-network": network, "var-site": site_id, "var-week": week})
    return f"{base_url}?{query}"


# --------------------------------------------------------------------------- reading


async def build_report(
    conn: Connection, settings: ScoringSettings, *, site_id: str, week: str,
    board_url: str = DEFAULT_BOARD_URL, now: datetime | None = None,
) -> WeeklyReport:  # fmt: skip
    zone = await site_zone(conn, site_id, default=settings.reporting_timezone)
    start = week_start(week)
    current = domain.Period("iso_week", start, start + timedelta(days=6))
    previous = domain.Period("previous_iso_week", start - timedelta(days=7), start - timedelta(1))
    as_of = now or datetime.now(zone)
    form = questionnaire.load()
    floor = settings.anonymity_floor
    this_week = await _period_figures(conn, settings, site_id, current, form, as_of)
    last_week = await _period_figures(conn, settings, site_id, previous, form, as_of)
    site = await conn.fetchrow("SELECT network, site_name FROM sites WHERE site_id = $1", site_id)
    network = site["network"] if site else ""
    tally = await repository.tally_between(conn, site_id=site_id, start=current.start,
                                           end=current.end)  # fmt: skip
    responses = domain.response_count(tally)
    previous_responses = domain.response_count(await repository.tally_between(
        conn, site_id=site_id, start=previous.start, end=previous.end))  # fmt: skip
    shown = floors.may_show(responses, floor)
    if not shown:
        this_week = withheld_week(this_week)
    if not floors.may_show(previous_responses, floor):
        last_week = withheld_week(last_week)
    verbatims = await repository.verbatims_between(
        conn, site_id=site_id, start=current.start, end=current.end
    ) if shown else []  # fmt: skip
    return WeeklyReport(
        site_id=site_id, site_name=printable((site and site["site_name"]) or site_id),
        network=network, week=week, start=current.start, end=current.end, responses=responses,
        figures=headline_figures(this_week, last_week, floor),
        themes_to_improve=themes_to_improve(this_week, form, floor),
        call_backs=await pending_call_backs(conn, site_id=site_id, as_of=as_of),
        callbacks=await week_callbacks(conn, site_id=site_id, start=current.start,
                                       end=current.end, zone=zone, as_of=as_of),
        board_url=board_link(board_url, network=network, site_id=site_id, week=week),
        verbatims=[
            Verbatim(row["day"], row["channel"], row["text"], row["satisfaction"],
                     row["recommandation"])
            for row in verbatims
        ],
        floor=floor,
        top_irritants=await extras.week_irritants(
            conn, settings, site_id=site_id, monday=current.start, limit=TOP_IRRITANTS
        ) if shown else None,
        **await team_and_channel_lines(conn, settings, site_id=site_id, period=current),
    )  # fmt: skip


async def team_and_channel_lines(
    conn: Connection, settings: ScoringSettings, *, site_id: str, period: domain.Period
) -> dict[str, Any]:
    """« Par équipe » and « Par canal d'enquête » (issue #15): the API's figures
    (scoring.extras), through the one floor function. A team under the floor is not named."""
    cells = await extras.team_cells(conn, settings, site_id=site_id, period=period)
    teams = []
    for cell in sorted(cells, key=lambda cell: (-cell.responses, cell.value)):
        if cell.figures is None or not floors.may_show(cell.responses, settings.anonymity_floor):
            continue
        by_id = {figure.indicator: figure for figure in cell.figures}
        teams.append(TeamLine(
            team=printable(cell.value), responses=cell.responses,
            satisfaction=_value(by_id.get("satisfaction")), nps=_value(by_id.get("nps")),
        ))  # fmt: skip
    rows = await extras.survey_channel_rows(conn, settings, site_id=site_id, period=period)
    channels = []
    for row in rows:
        by_id = {figure.indicator: figure for figure in row.figures or []}
        channels.append(SurveyChannelLine(
            survey_channel=printable(row.survey_channel or "inconnu"),
            invitations=row.invitations,
            response_rate=_value(by_id.get("response_rate")),
            after_reminder=_value(by_id.get("answers_after_reminder")),
            withheld=row.figures is None,
        ))  # fmt: skip
    return {"teams": teams, "teams_withheld": len(cells) - len(teams),
            "survey_channels": channels}  # fmt: skip


def _value(figure: IndicatorFigure | None) -> float | None:
    return None if figure is None else figure.value


async def site_zone(conn: Connection, site_id: str, *, default: str = "Europe/Paris") -> ZoneInfo:
    """The site's own clock (issue #15), as its events told scoring, else the shared default
    (contracts.sites): the bounds of its week and the dates its e-mail shows."""
    stored = await repository.site_timezone(conn, site_id=site_id)
    network = await repository.site_network(conn, site_id=site_id) or ""
    return ZoneInfo(site_timezone(stored, site_id=site_id, network=network, metropolitan=default))


def printable(text: str) -> str:
    """A name as it may be shown and put in a header: control characters become a space."""
    return CONTROL_CHARACTERS.sub(" ", text).strip() or "?"


async def _period_figures(
    conn: Connection, settings: ScoringSettings, site_id: str, period: domain.Period,
    form: questionnaire.Questionnaire, as_of: datetime,
) -> list[IndicatorFigure]:  # fmt: skip
    zone = await site_zone(conn, site_id, default=settings.reporting_timezone)
    tally = await repository.tally_between(conn, site_id=site_id, start=period.start,
                                           end=period.end)  # fmt: skip
    # The response rate of the invitations sent in the period, whenever they were answered.
    cohort = domain.cohort_of(*await repository.cohort_between(
        conn, site_id=site_id, start=period.start, end=period.end))  # fmt: skip
    fcr = await repository.fcr_counts(
        conn, site_id=site_id, start=datetime.combine(period.start, time(), zone),
        end=datetime.combine(period.end + timedelta(days=1), time(), zone),
        window_days=settings.fcr_window_days, as_of=as_of,
    )  # fmt: skip
    form = domain.questionnaire_of([tally], questionnaire.load_all(), fallback=form)  # issue #15
    figures = domain.period_figures(
        period, tally, invitations=cohort, questionnaire=form, fcr=fcr, now=as_of
    )
    return list(figures.figures)


async def pending_call_backs(
    conn: Connection, *, site_id: str, as_of: datetime | None = None
) -> list[CallBack]:
    """The site's alerts still OPEN (no call-back reported on crm.callback.completed.v1), of
    any week, oldest first, with their age. An erased user's alert has no contact id any more:
    nobody to call back."""
    now = as_of or datetime.now(UTC)
    rows = await repository.open_alerts(conn, site_id=site_id)
    zone = await site_zone(conn, site_id)  # raised on the site's clock
    return [
        CallBack(
            raised_at=row["raised_at"].astimezone(zone),
            contact_id=row["contact_id"],
            reasons=[REASON_LABELS.get(reason, reason) for reason in row["reasons"]],
            age_days=domain.open_age_days(row["raised_at"], now),
        )
        for row in rows
        if row["contact_id"] is not None
    ]


async def week_callbacks(
    conn: Connection, *, site_id: str, start: date, end: date, zone: ZoneInfo, as_of: datetime
) -> domain.CallbackWeek:
    """The alerts raised in the week: handled, within 48 h and 7 days, by outcome, open."""
    rows = await repository.alerts_raised_between(
        conn, site_id=site_id, start=datetime.combine(start, time(), zone),
        end=datetime.combine(end + timedelta(days=1), time(), zone),
    )  # fmt: skip
    return domain.callback_week(
        [domain.AlertState(row["raised_at"], row["handled_at"], row["outcome"]) for row in rows],
        as_of=as_of,
    )


# --------------------------------------------------------------------------- rendering


def _number(value: float | None, decimals: int = 1) -> str:
    """French formatting: decimal comma, the minus sign, rounded half away from zero (the one
    rounding of every output, contracts.figures)."""
    if value is None:
        return "—"
    return told.french_number(value, decimals)


def format_value(line: FigureLine) -> str:
    if line.withheld:
        return "non communiqué (trop peu de réponses)"
    if line.value is None:
        # Observed FCR waits for each contact's repeat window to pass before counting it.
        return "en cours de mesure" if line.indicator == "fcr_observed" else "pas de réponse"
    note = " (centre de l'intervalle : trop peu de réponses)" if line.adjusted else ""
    if line.provisional and line.indicator == "response_rate":
        note += " (provisoire : des liens de la semaine peuvent encore être utilisés)"
    if line.unit == "percent":
        return f"{_number(line.value)}\u202f%{note}"
    if line.unit == "score":
        return told.french_number(line.value, 0, signed=True) + note  # « +20 », as on screens
    return _number(line.value) + note


def format_change(line: FigureLine) -> str:
    """Words, not only a sign or a colour: screen readers and colour-blind readers get it. A
    change the 95 % interval of the difference cannot tell from noise reads « stable (écart
    dans la marge d'incertitude) » (contracts.figures.compare), whatever its size."""
    if line.change is None or line.comparison is None:
        return "pas de comparaison"
    return line.comparison.text


def format_interval(line: FigureLine) -> str:
    if line.low is None or line.high is None:
        return "—"
    return f"{_number(line.low)} à {_number(line.high)}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(value=format_value, change=format_change, interval=format_interval,
                       number=_number)  # fmt: skip
    return env


def render(report: WeeklyReport) -> tuple[str, str, str]:
    """(subject, HTML, plain text) of the email."""
    env = _environment()
    subject = f"Enquêtes à chaud — {report.site_name} — semaine {report.week}"
    context: dict[str, Any] = {"report": report, "subject": subject}
    html = env.get_template("weekly_report.html").render(context)
    text = env.get_template("weekly_report.txt").render(context)
    return subject, html, text


def message(report: WeeklyReport, *, to: Sequence[str], mail_from: str) -> EmailMessage:
    """The email; ValueError when an address is not one (a header could be smuggled in)."""
    subject, html, text = render(report)
    email = EmailMessage()
    email["From"] = formataddr(("Enquêtes à chaud", _address(mail_from)))
    email["To"] = ", ".join(_address(address) for address in to)
    email["Subject"] = printable(subject)
    email["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or None)
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(text)
    email.add_alternative(html, subtype="html")
    return email


def _address(value: str) -> str:
    """One plain address (local@domain), nothing else: no name, no second address, no line."""
    if CONTROL_CHARACTERS.search(value) or "," in value:
        raise ValueError("not a single e-mail address")
    address = Address(addr_spec=value.strip())
    if not address.username or not address.domain:
        raise ValueError("not a single e-mail address")
    return address.addr_spec


# --------------------------------------------------------------------------- sending


async def send_weekly_reports(
    settings: ScoringSettings, pool: asyncpg.Pool, *, week: str, smtp_url: str,
    recipients: Mapping[str, Sequence[str]], board_url: str | None = None,
    mail_from: str | None = None,
) -> SendResult:  # fmt: skip
    """One email per site in `recipients` (site id -> managers' addresses), one SMTP session.

    `board_url` and `mail_from` default to settings `weekly_report_board_url` and
    `mail_from_address` when the settings have them (the same SMTP path as dispatch). A site
    whose report cannot be built or sent is logged (site id and error type only) and counted in
    `failed`; the others are mailed.
    """
    board = board_url or settings.weekly_report_board_url
    sender = mail_from or settings.mail_from_address
    result = SendResult(mailed=[], failed=[])
    ready: list[tuple[WeeklyReport, EmailMessage]] = []
    async with pool.acquire() as pooled:
        conn = cast(Connection, pooled)  # a pooled connection, as the publisher uses
        for site_id, to in recipients.items():
            try:
                report = await build_report(
                    conn, settings, site_id=site_id, week=week, board_url=board
                )
                if to:
                    ready.append((report, message(report, to=list(to), mail_from=sender)))
            except Exception as error:  # one site's failure must not stop the others
                _failed(result, site_id, "build", error)
    async with _smtp(smtp_url) as client:
        for report, email in ready:
            try:
                await client.send_message(email)
            except aiosmtplib.SMTPException as error:
                _failed(result, report.site_id, "send", error)
            else:
                result.mailed.append(report)
    return result


def _failed(result: SendResult, site_id: str, stage: str, error: Exception) -> None:
    # The error's type only: its message could quote an address or a name.
    log.error(
        "weekly report failed for a site",
        extra={"site_id": printable(site_id), "stage": stage, "error_type": type(error).__name__},
    )
    result.failed.append(site_id)


def _smtp(smtp_url: str) -> aiosmtplib.SMTP:
    """SMTP_URL as dispatch reads it: smtp://host:port, or smtps:// for implicit TLS."""
    url = urlsplit(smtp_url)
    use_tls = url.scheme == "smtps"
    # Credentials in a URL are percent-encoded ("p%40ss" for "p@ss").
    username, password = (unquote(part) if part else None for part in (url.username, url.password))
    return aiosmtplib.SMTP(
        hostname=url.hostname or "127.0.0.1", port=url.port or (465 if use_tls else 25),
        use_tls=use_tls, username=username, password=password, timeout=30,
    )  # fmt: skip


def command(settings: ScoringSettings) -> None:
    """CLI entry point (`python -m scoring weekly-report`), run by a Monday-morning cron job.

    Each site is mailed to the managers the mapping gives it (scoring.managers: their own sites,
    or their network's); `weekly_report_recipients` (site id -> addresses) only for a site no
    manager is mapped to. Reads, when the settings have them: `weekly_report_week` (default: the
    last complete ISO week), `smtp_url`, `weekly_report_board_url` and `mail_from_address`.
    """
    zone = ZoneInfo(settings.reporting_timezone)
    week = settings.weekly_report_week or last_complete_week(datetime.now(zone).date())
    fallback: Mapping[str, Sequence[str]] = settings.weekly_report_recipients
    smtp_url = settings.smtp_url
    result = asyncio.run(_send_with_pool(settings, week, smtp_url, fallback))
    print(f"weekly report {week}: {len(result.mailed)} site(s) mailed, {len(result.failed)} failed")
    if result.failed:
        raise SystemExit(1)  # the cron job shows red; the other sites were mailed


async def _send_with_pool(
    settings: ScoringSettings, week: str, smtp_url: str, fallback: Mapping[str, Sequence[str]]
) -> SendResult:
    pool = await db.create_pool(settings.database_url, schema="scoring", max_size=2)
    try:
        recipients = await mapped_recipients(pool, fallback=fallback)
        return await send_weekly_reports(
            settings, pool, week=week, smtp_url=smtp_url, recipients=recipients
        )
    finally:
        await pool.close()


async def mapped_recipients(
    pool: asyncpg.Pool, *, fallback: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Site id -> addresses: the managers' mapping (issue #15), the fallback setting for a site
    nobody is mapped to."""
    async with pool.acquire() as conn:
        mapped = await repository.manager_report_recipients(conn)
    return managers.report_recipients(mapped, fallback)
