"""A site's own clock: its time zone and its public-holiday calendar.

Every service buckets, dates and schedules in the site's clock. The clock is set per site or per
network through survey-dispatch's audited admin API and travels with the events
(`site_timezone`); when nothing sets it, or an event predates the field, every service falls
back to the same default, decided here from the site id, its name or its network:
the French overseas regions (DROM) by name or department code, metropolitan France otherwise.

Pure: no I/O, no settings. `zoneinfo` only reads the time-zone database.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

METROPOLITAN_TIMEZONE = "Europe/Paris"


@dataclass(frozen=True)
class SiteClock:
    timezone: str  # an IANA name
    holiday_subdivision: str | None  # None = metropolitan France; ISO 3166 code overseas


METROPOLITAN = SiteClock(METROPOLITAN_TIMEZONE, None)

# (names, department code, clock). Names are matched accent- and case-free, as a word or a part
# of a word of the site id, name or network ("urssaf-guadeloupe", "CGSS Martinique", "caf972").
_OVERSEAS: tuple[tuple[tuple[str, ...], str, SiteClock], ...] = (
    (("guadeloupe",), "971", SiteClock("America/Guadeloupe", "GP")),
    (("martinique",), "972", SiteClock("America/Martinique", "MQ")),
    (("guyane", "guiana", "cayenne"), "973", SiteClock("America/Cayenne", "GF")),
    (("reunion",), "974", SiteClock("Indian/Reunion", "RE")),
    (("mayotte",), "976", SiteClock("Indian/Mayotte", "YT")),
)
_WORD = re.compile(r"[a-z0-9]+")
# A department code (971) or a postal code (97110) as a number of its own: "971-abymes",
# "urssaf-97110", "caf971". Never inside a longer number ("19710", "9711" are not Guadeloupe).
_DEPARTMENT = re.compile(r"(?<!\d)(97[12346])(?:\d{2})?(?!\d)")


def site_clock(site_id: str, network: str = "", site_name: str | None = None) -> SiteClock:
    """The default clock of a site: the overseas region its id, name or network names, the site
    before the network (a network may span regions), else metropolitan France."""
    return _site_clock(site_id, network, site_name or "")


@lru_cache(maxsize=4096)
def _site_clock(site_id: str, network: str, site_name: str) -> SiteClock:
    for text in (site_id, site_name, network):
        clock = _overseas_clock(text)
        if clock is not None:
            return clock
    return METROPOLITAN


def _overseas_clock(text: str) -> SiteClock | None:
    words = _WORD.findall(_plain(text))
    for names, department, clock in _OVERSEAS:
        for word in words:
            codes = {match.group(1) for match in _DEPARTMENT.finditer(word)}
            if department in codes or any(name in word for name in names):
                return clock
    return None


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def site_timezone(
    carried: str | None, *, site_id: str, network: str = "", site_name: str | None = None,
    metropolitan: str = METROPOLITAN_TIMEZONE,
) -> str:  # fmt: skip
    """The zone an event carries, else the shared default (events from before the field):
    the overseas region's, else `metropolitan` (a service's configured reporting zone)."""
    if carried:
        return carried
    clock = site_clock(site_id, network, site_name)
    return metropolitan if clock == METROPOLITAN else clock.timezone


def check_timezone(name: str) -> str:
    """`name` when it is an IANA time zone this machine knows, else ValueError."""
    if not name or name != name.strip() or name.startswith("/") or ".." in name:
        raise ValueError(f"unknown time zone: {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone: {name!r}") from error
    return name
