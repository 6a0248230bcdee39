"""What the public may see: a figure leaves this service only when its sample reaches the floor.

`site_feed` is the single place where a site's snapshot becomes public data; every output (JSON,
CSV, server-sent events, the display page) is built from its result, so a withheld figure cannot
leak through one of them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, tzinfo
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from contracts import figures as told
from contracts import spreadsheet
from contracts.sites import site_timezone

WITHHELD_REASON = "résultats en cours de collecte"
FRENCH_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                 "septembre", "octobre", "novembre", "décembre")  # fmt: skip
NBSP = "\u00a0"  # French typography: a no-break space before % and between number and unit

# Services Publics+ engagements, verbatim (DOMAIN.md §4, canonical lines 39–53).
ENGAGEMENTS_HEADER = "NOUS NOUS ENGAGEONS POUR AMÉLIORER LES SERVICES PUBLICS"
ENGAGEMENTS: tuple[tuple[str, str], ...] = (
    ("+ PROCHES", "Dans le respect mutuel, vous êtes accueilli avec courtoisie et bienveillance, "
                  "et dans les conditions prévues par la loi vous avez le droit à l'erreur"),
    ("+ PROCHES", "Nous sommes joignables par téléphone ou sur place et nous facilitons vos "
                  "démarches en ligne"),
    ("+ PROCHES", "Vous bénéficiez d'un accompagnement adapté à votre situation personnelle"),
    ("+ EFFICACES", "Nous vous orientons vers la personne compétente pour traiter votre demande"),
    ("+ EFFICACES", "Vous recevez une réponse à vos demandes dans les délais annoncés et vous êtes "
                    "informés sur l'avancement de votre dossier"),
    ("+ EFFICACES", "Vous avez accès à nos résultats de qualité de service"),
    ("+ SIMPLES", "Vos avis sont pris en compte pour améliorer et simplifier nos démarches"),
    ("+ SIMPLES", "Nous développons en permanence nos compétences et nous améliorons en continu"),
    ("+ SIMPLES", "Nous sommes éco-responsables"),
)  # fmt: skip

# Indicator ids scoring produces; themes follow the questionnaire (`theme_<x>`, `theme_<x>_share`).
FixedIndicator = Literal["nps", "ces", "ces_mean", "fcr_declared", "fcr_observed",
                         "satisfaction", "satisfaction_mean", "response_rate"]  # fmt: skip
FIXED_INDICATORS: frozenset[str] = frozenset(get_args(FixedIndicator))
THEME_INDICATOR = re.compile(r"^theme_[a-z0-9_]{1,50}$")
# SP+ tells perceived quality ("satisfaction") from delivered quality ("performance").
PERFORMANCE_INDICATORS = frozenset({"fcr_observed", "response_rate"})
MAX_CHOSEN_INDICATORS = 12
PROVISIONAL_SUFFIX = " (provisoire : peut encore évoluer)"
"""Told beside a figure that may still move (scoring's `provisional`: a response rate whose
invitations' links are still open, an observed FCR with contacts still pending)."""


@dataclass(frozen=True)
class DisplaySettings:
    """How a site's screen behaves; chosen by its managers."""

    engagements: bool = True
    rotation_seconds: int = 12
    show_previous: bool = True

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> DisplaySettings:
        raw = raw or {}
        default = cls()
        return cls(
            engagements=bool(raw.get("engagements", default.engagements)),
            rotation_seconds=int(raw.get("rotation_seconds", default.rotation_seconds)),
            show_previous=bool(raw.get("show_previous", default.show_previous)),
        )

    def as_json(self) -> dict[str, Any]:
        return {"engagements": self.engagements, "rotation_seconds": self.rotation_seconds,
                "show_previous": self.show_previous}  # fmt: skip


@dataclass(frozen=True)
class SiteChoice:
    """The indicators a site publishes, in display order, and its screen settings."""

    indicators: tuple[str, ...]
    display: DisplaySettings = field(default_factory=DisplaySettings)


@dataclass(frozen=True)
class Snapshot:
    """The newest figures of a site, as scoring sent them (every period, every n)."""

    site_id: str
    site_name: str | None
    network: str
    computed_at: datetime
    periods: Sequence[Mapping[str, Any]]

    def period(self, period_id: str) -> Mapping[str, Any] | None:
        return next((p for p in self.periods if p.get("period") == period_id), None)


@dataclass(frozen=True)
class PublicFigure:
    indicator: str
    label: str
    published: bool
    period: str
    start: date
    end: date
    value: float | None = None
    unit: str | None = None
    sample_size: int | None = None
    interval: Mapping[str, Any] | None = None
    method: str | None = None
    provisional: bool = False
    withheld_reason: str | None = None
    change: told.Change | None = None  # from the previous period, both periods published

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.indicator, "label": self.label, "published": self.published,
            "type": indicator_type(self.indicator),
            "period": {"id": self.period, "start": self.start.isoformat(),
                       "end": self.end.isoformat()},
        }  # fmt: skip
        if self.published and self.value is not None and self.sample_size is not None:
            body |= {"value": self.value, "unit": self.unit, "sample_size": self.sample_size,
                     "interval": dict(self.interval) if self.interval else None,
                     "method": self.method, "provisional": self.provisional}  # fmt: skip
            body["text"] = {
                "value": format_value(self.value, self.unit),
                "sample": sample_sentence(self.sample_size, self.start, self.end, self.indicator),
                "interval": format_interval(self.interval, self.unit),
            }
            if self.provisional:  # issue #18: a cohort's links still open, contacts pending
                body["text"]["sample"] += PROVISIONAL_SUFFIX
            if self.change is not None:
                body["change"] = self.change.as_json()
                body["text"]["change"] = self.change.text
        else:
            body["withheld_reason"] = self.withheld_reason
            body["text"] = {"status": (self.withheld_reason or WITHHELD_REASON).capitalize()}
        return body


def indicator_type(indicator: str) -> str:
    return "performance" if indicator in PERFORMANCE_INDICATORS else "satisfaction"


def unknown_indicators(indicators: Iterable[str]) -> list[str]:
    """The ids that scoring never produces: a manager's typo must not silently show nothing."""
    return [i for i in indicators if i not in FIXED_INDICATORS and not THEME_INDICATOR.match(i)]


def public_figures(
    period: Mapping[str, Any], chosen: Sequence[str], floor: int
) -> list[PublicFigure]:
    """The chosen indicators of one period; below the floor only the label and reason remain."""
    by_id = {figure["indicator"]: figure for figure in period.get("figures", [])}
    start, end = date.fromisoformat(period["start"]), date.fromisoformat(period["end"])
    result = []
    for indicator in chosen:
        figure = by_id.get(indicator)
        if figure is None:
            continue
        enough = figure["value"] is not None and figure["sample_size"] >= floor
        if enough:
            interval = figure.get("interval")
            result.append(PublicFigure(
                indicator=indicator, label=figure["label"], published=True, period=period["period"],
                start=start, end=end, value=figure["value"], unit=figure["unit"],
                sample_size=figure["sample_size"], interval=interval,
                method=interval["method"] if interval else None,
                provisional=bool(figure.get("provisional", False)),
            ))  # fmt: skip
        else:
            result.append(PublicFigure(
                indicator=indicator, label=figure["label"], published=False,
                period=period["period"], start=start, end=end, withheld_reason=WITHHELD_REASON,
            ))  # fmt: skip
    return result


def with_changes(
    current: Sequence[PublicFigure],
    previous: Sequence[PublicFigure],
    current_period: Mapping[str, Any] | None,
    previous_period: Mapping[str, Any] | None,
) -> list[PublicFigure]:
    """Each current figure with its change from the previous period (contracts.figures.compare:
    « stable (écart dans la marge d'incertitude) » or « en hausse de 5 points »), when both
    periods are published; the counts it needs stay here, only the verdict is public."""
    if current_period is None or previous_period is None:
        return list(current)
    published_before = {figure.indicator for figure in previous if figure.published}
    raw_now = {f["indicator"]: f for f in current_period.get("figures", [])}
    raw_before = {f["indicator"]: f for f in previous_period.get("figures", [])}
    result = []
    for figure in current:
        change = None
        if figure.published and figure.indicator in published_before:
            change = told.compare(raw_now[figure.indicator], raw_before[figure.indicator])
        result.append(figure if change is None else replace(figure, change=change))
    return result


def site_zone(told: str | None, *, site_id: str, network: str, default: str) -> ZoneInfo:
    """A site's own clock: the zone scoring's event told (the site's rules), else the shared
    default (contracts.sites: the overseas regions by site id or network), else `default`."""
    return ZoneInfo(site_timezone(told, site_id=site_id, network=network, metropolitan=default))


def site_feed(
    snapshot: Snapshot, choice: SiteChoice, *, floor: int, periods: tuple[str, str], zone: tzinfo
) -> dict[str, Any]:
    """The public view of a site: its current and previous periods, the chosen indicators only.
    Times are the site's own (`zone`): « Mis à jour à » reads as the hall's wall clock."""
    updated = snapshot.computed_at.astimezone(zone)
    view: dict[str, Any] = {
        "site_id": snapshot.site_id,
        "site_name": snapshot.site_name,
        "network": snapshot.network,
        "timezone": str(zone),
        "updated_at": updated.isoformat(),
        "updated_at_text": {"date": french_date(updated.date()), "time": clock_time(updated)},
        "public_floor": floor,
        "display": choice.display.as_json(),
    }
    shown: dict[str, list[PublicFigure]] = {}
    for key, period_id in zip(("current", "previous"), periods, strict=True):
        period = snapshot.period(period_id)
        shown[key] = public_figures(period, choice.indicators, floor) if period else []
    shown["current"] = with_changes(
        shown["current"], shown["previous"], snapshot.period(periods[0]),
        snapshot.period(periods[1]),
    )  # fmt: skip
    for key, period_id in zip(("current", "previous"), periods, strict=True):
        period = snapshot.period(period_id)
        figures = shown[key]
        view[key] = {
            "period": period_id,
            "start": period["start"] if period else None,
            "end": period["end"] if period else None,
            "indicators": [figure.as_json() for figure in figures],
        }
    return view


# --------------------------------------------------------------------------- words and numbers


def french_number(value: float, decimals: int = 0) -> str:
    """Rounded half away from zero, as everywhere a person reads a figure (contracts.figures)."""
    return told.french_number(value, decimals)


def format_value(value: float, unit: str | None) -> str:
    """« 87 % », « +42 », « 8,1 / 10 »: how a figure reads on a screen."""
    if unit == "percent":
        return f"{french_number(value)}{NBSP}%"
    if unit == "score":
        return told.french_number(value, signed=True)
    if unit and (scale := re.fullmatch(r"mean_(\d+)_(\d+)", unit)):
        return f"{french_number(value, 1)}{NBSP}/{NBSP}{scale.group(2)}"
    return french_number(value, 1)


def format_interval(interval: Mapping[str, Any] | None, unit: str | None) -> str | None:
    if not interval:
        return None
    bare_unit = None if unit and unit.startswith("mean_") else unit  # « entre 7,9 et 8,3 »
    low, high = (format_value(float(interval[k]), bare_unit) for k in ("low", "high"))
    return f"entre {low} et {high}"


def french_date(day: date, *, with_year: bool = True) -> str:
    first = "1er" if day.day == 1 else str(day.day)
    text = f"{first} {FRENCH_MONTHS[day.month - 1]}"
    return f"{text} {day.year}" if with_year else text


# What an indicator's sample size counts, singular and plural, when it is not answers.
SAMPLE_UNITS = {
    "response_rate": ("invitation envoyée", "invitations envoyées"),
    "fcr_observed": ("contact", "contacts"),
}


def sample_sentence(sample_size: int, start: date, end: date, indicator: str = "") -> str:
    """« Sur 412 réponses, du 1er septembre au 30 novembre 2026 » (one year named when shared);
    « invitations envoyées » for the response rate, « contacts » for observed FCR."""
    one, many = SAMPLE_UNITS.get(indicator, ("réponse", "réponses"))
    since = french_date(start, with_year=start.year != end.year)
    counted = one if sample_size == 1 else many
    return f"Sur {sample_size} {counted}, du {since} au {french_date(end)}"


def clock_time(moment: datetime) -> str:
    """« 14 h 05 », as French typography writes the time."""
    return f"{moment.hour}{NBSP}h{NBSP}{moment.minute:02d}"


# --------------------------------------------------------------------------- open data

# Close to the Services Publics+ open-data `export-indicateurs` dataset; see the README.
OPEN_DATA_COLUMNS = (
    "reseau", "id_structure", "nom_structure", "id_indicateur", "indicateur", "type_indicateur",
    "periode", "date_debut", "date_fin", "statut", "valeur", "unite", "nombre_reponses",
    "ic95_borne_basse", "ic95_borne_haute", "methode_intervalle", "provisoire", "date_mise_a_jour",
)  # fmt: skip
OPEN_DATA_UNITS = {"percent": "%", "score": "score NPS (-100 à 100)"}
OPEN_DATA_NUMBERS = frozenset(
    {"valeur", "nombre_reponses", "ic95_borne_basse", "ic95_borne_haute"}
)  # written by `_number` or `str(int)`: never text, so never a formula
# One neutralising rule for every CSV served (publication's open data, scoring's export).
spreadsheet_text = spreadsheet.spreadsheet_text
FORMULA_STARTS = spreadsheet.FORMULA_STARTS


def open_data_rows(feeds: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, str]]:
    """One row per site, period and chosen indicator, from public feeds only."""
    for feed in feeds:
        for key in ("current", "previous"):
            for figure in feed[key]["indicators"]:
                yield _open_data_row(feed, figure)


def _open_data_row(feed: Mapping[str, Any], figure: Mapping[str, Any]) -> dict[str, str]:
    cells = _open_data_cells(feed, figure)
    return {
        column: cell if column in OPEN_DATA_NUMBERS else spreadsheet_text(cell)
        for column, cell in cells.items()
    }


def _open_data_cells(feed: Mapping[str, Any], figure: Mapping[str, Any]) -> dict[str, str]:
    published = bool(figure["published"])
    interval = figure.get("interval") or {}
    unit = figure.get("unit") or ""
    scale = re.fullmatch(r"mean_(\d+)_(\d+)", unit)
    return {
        "reseau": feed["network"],
        "id_structure": feed["site_id"],
        "nom_structure": feed["site_name"] or "",
        "id_indicateur": figure["id"],
        "indicateur": figure["label"],
        "type_indicateur": figure["type"],
        "periode": figure["period"]["id"],
        "date_debut": figure["period"]["start"],
        "date_fin": figure["period"]["end"],
        "statut": "publie" if published else "en_cours_de_collecte",
        "valeur": _number(figure.get("value")) if published else "",
        "unite": (f"moyenne sur {scale.group(2)}" if scale else OPEN_DATA_UNITS.get(unit, unit))
        if published else "",
        "nombre_reponses": str(figure["sample_size"]) if published else "",
        "ic95_borne_basse": _number(interval.get("low")) if published else "",
        "ic95_borne_haute": _number(interval.get("high")) if published else "",
        "methode_intervalle": (figure.get("method") or "") if published else "",
        "provisoire": ("oui" if figure.get("provisional") else "non") if published else "",
        "date_mise_a_jour": feed["updated_at"],
    }  # fmt: skip


def _number(value: float | None) -> str:
    """Dot decimal, at most two decimals, no trailing zeros: what spreadsheets and tools read."""
    if value is None:
        return ""
    text = f"{told.round_half_away(value, 2):f}"  # the one rounding, halves away from zero
    return text.rstrip("0").rstrip(".") if "." in text else text


# --------------------------------------------------------------------------- HTTP caching


def entity_tag(body: bytes) -> str:
    """The opaque part of a strong ETag (without quotes) for a representation's bytes."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 weak comparison, as If-None-Match requires: `W/` prefixes and the `-gzip`
    variant suffix are ignored, `*` matches anything."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        opaque = candidate.removeprefix("W/").strip('"').removesuffix("-gzip")
        if opaque == tag:
            return True
    return False


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether the client takes gzip; `gzip;q=0` is a refusal, not an acceptance."""
    lowered = (accept_encoding or "").lower()  # content codings are case-insensitive
    if "gzip" not in lowered:
        return False
    for item in lowered.split(","):
        coding, _, parameters = item.partition(";")
        if coding.strip() != "gzip":
            continue
        name, _, quality = parameters.strip().partition("=")
        if name.strip() != "q":
            return True
        try:
            return float(quality) > 0
        except ValueError:
            return False
    return False
