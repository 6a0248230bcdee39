"""Issue #15, pure: scoring buckets each event by the day of its site's own clock."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from scoring import domain
from scoring.consumer import ScoringHandler
from scoring.settings import ScoringSettings

from contracts.envelope import CloudEvent, new_event_id
from contracts.events import ResponseSubmitted
from contracts.topics import RESPONSE_SUBMITTED

pytestmark = pytest.mark.unit

GUADELOUPE = ZoneInfo("America/Guadeloupe")
# Sunday 11 January 2026, 23:30 in Guadeloupe (UTC-4) is Monday 12 January, 04:30 in Paris.
SUNDAY_NIGHT = datetime(2026, 1, 11, 23, 30, tzinfo=GUADELOUPE)
SUNDAY, MONDAY = date(2026, 1, 11), date(2026, 1, 12)


def _response(site_id: str, site_timezone: str | None) -> ResponseSubmitted:
    return ResponseSubmitted(
        response_id="rsp-1", invitation_id="inv-1", contact_id="crm-1", site_id=site_id,
        network="urssaf", channel="telephone", motif="declaration",
        questionnaire_version="urssaf-chaud-2024-v1", answers={"recommandation": 9},
        answered_at=SUNDAY_NIGHT.astimezone(UTC), site_timezone=site_timezone,
    )  # fmt: skip


def _event(data: ResponseSubmitted) -> CloudEvent[Any]:
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type,
        time=data.answered_at, subject=data.site_id, data=data,
    )  # fmt: skip


@pytest.fixture
def handler() -> ScoringHandler:
    return ScoringHandler(ScoringSettings())


def test_sunday_2330_in_guadeloupe_is_in_that_iso_week_there_not_the_next_as_in_paris(handler):
    guadeloupe = _response("agence-abymes", "America/Guadeloupe")
    paris = _response("agence-paris", None)
    day_there = handler.day_of(guadeloupe.answered_at, guadeloupe)
    day_in_paris = handler.day_of(paris.answered_at, paris)
    assert (day_there, day_in_paris) == (SUNDAY, MONDAY)
    assert day_there.isocalendar()[:2] == (2026, 2)
    assert day_in_paris.isocalendar()[:2] == (2026, 3)
    week_there = domain.periods(day_there)[0]
    assert week_there.id == "iso_week" and week_there.start <= SUNDAY <= week_there.end
    assert domain.periods(day_in_paris)[0].start == MONDAY


def test_an_event_older_than_the_field_falls_back_to_the_sites_default_clock(handler):
    old = _response("urssaf-guadeloupe", None)  # before issue #15: no site_timezone
    assert handler.day_of(old.answered_at, old) == SUNDAY
    told = _response("urssaf-guadeloupe", "Europe/Paris")  # the site's rules win
    assert handler.day_of(told.answered_at, told) == MONDAY


def test_month_buckets_follow_the_sites_clock_too(handler):
    new_years_eve = datetime(2025, 12, 31, 22, 30, tzinfo=GUADELOUPE)  # 1 January in Paris
    data = _response("agence-abymes", "America/Guadeloupe").model_copy(
        update={"answered_at": new_years_eve.astimezone(UTC)}
    )
    day = handler.day_of(data.answered_at, data)
    assert day == date(2025, 12, 31)
    assert domain.periods(day)[2].start == date(2025, 12, 1)  # month
    assert handler.day_of(data.answered_at) == date(2026, 1, 1)  # the reporting zone


def test_the_sites_table_learns_a_told_zone_over_a_default(handler):
    events = [
        _event(_response("urssaf-guadeloupe", None)),
        _event(_response("urssaf-guadeloupe", "America/Martinique")),
        _event(_response("urssaf-guadeloupe", None)),
        _event(_response("agence-paris", None)),
    ]
    assert handler.site_zones(events) == {
        "urssaf-guadeloupe": ("America/Martinique", True),
        "agence-paris": ("Europe/Paris", False),
    }
    assert handler.site_zones(events[:1]) == {"urssaf-guadeloupe": ("America/Guadeloupe", False)}


def test_the_handlers_zone_cache_is_keyed_by_what_the_event_tells(handler):
    for _ in range(3):
        handler.day_of(SUNDAY_NIGHT, _response("agence-abymes", "America/Guadeloupe"))
    assert len(handler.zones) == 1
