"""A site without clock rules gets its region's default clock (contracts.sites): its SMS quiet
hours and public holidays, and the zone its events carry."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from survey_dispatch.domain import (
    Rules,
    effective_rules,
    is_allowed_time,
    next_allowed_time,
    rules_problem,
)

pytestmark = pytest.mark.unit

PARIS_SITE = ("urssaf", "urssaf-paris-centre")


def _rules(network: str, site_id: str, own: dict[str, object] | None = None) -> Rules:
    return effective_rules({}, own, network=network, site_id=site_id)


@pytest.mark.parametrize(
    ("network", "site_id", "zone", "subdivision"),
    [
        ("urssaf", "urssaf-guadeloupe", "America/Guadeloupe", "GP"),
        ("cgss-martinique", "agence-lamentin", "America/Martinique", "MQ"),
        ("caf", "973-cayenne", "America/Cayenne", "GF"),
        ("cgss-reunion", "saint-denis", "Indian/Reunion", "RE"),
        ("cssm", "mayotte-mamoudzou", "Indian/Mayotte", "YT"),
        ("urssaf", "urssaf-paris-centre", "Europe/Paris", None),
    ],
)
def test_a_site_without_clock_rules_gets_its_regions_clock(network, site_id, zone, subdivision):
    rules = _rules(network, site_id)
    assert (rules.timezone, rules.holiday_subdivision) == (zone, subdivision)


def test_a_clock_rule_beats_the_default_and_the_default_fills_what_is_left():
    rules = effective_rules(
        {"holiday_subdivision": "MQ"}, {"timezone": "Europe/Paris"},
        network="urssaf", site_id="urssaf-guadeloupe",
    )  # fmt: skip
    assert (rules.timezone, rules.holiday_subdivision) == ("Europe/Paris", "MQ")
    assert _rules("urssaf", "urssaf-guadeloupe", {"sampling_rate": 0.5}).timezone == (
        "America/Guadeloupe"
    )


def test_la_reunion_holiday_blocks_sms_there_and_not_in_paris():
    # 20 décembre 2027, a Monday: abolition of slavery in La Réunion, a working day in Paris.
    reunion = _rules("cgss-reunion", "cgss-reunion-saint-denis")
    paris = _rules(*PARIS_SITE)
    moment = datetime.combine(date(2027, 12, 20), time(10), tzinfo=ZoneInfo("Indian/Reunion"))
    assert not is_allowed_time(moment, reunion)
    assert next_allowed_time(moment, reunion) == datetime(2027, 12, 21, 4, 0, tzinfo=UTC)
    noon_in_paris = datetime(2027, 12, 20, 11, 0, tzinfo=UTC)
    assert is_allowed_time(noon_in_paris, paris)


def test_mayotte_holiday_blocks_sms_there_and_not_in_paris():
    # 27 avril 2026, a Monday: abolition of slavery in Mayotte, a working day in Paris.
    mayotte = _rules("urssaf", "mayotte-mamoudzou")
    paris = _rules(*PARIS_SITE)
    moment = datetime.combine(date(2026, 4, 27), time(10), tzinfo=ZoneInfo("Indian/Mayotte"))
    assert not is_allowed_time(moment, mayotte)
    assert next_allowed_time(moment, mayotte) == datetime(2026, 4, 28, 5, 0, tzinfo=UTC)
    assert is_allowed_time(datetime(2026, 4, 27, 10, 0, tzinfo=UTC), paris)


def test_guadeloupe_quiet_hours_follow_its_clock_by_default():
    # 10:00 in Paris (summer) is 04:00 in Guadeloupe: an SMS waits for 08:00 there, 12:00 UTC.
    moment = datetime(2026, 6, 16, 8, 0, tzinfo=UTC)
    assert is_allowed_time(moment, _rules(*PARIS_SITE))
    assert next_allowed_time(moment, _rules("urssaf", "urssaf-guadeloupe")) == datetime(
        2026, 6, 16, 12, 0, tzinfo=UTC
    )


def test_combined_rules_of_an_overseas_site_are_checked_with_its_default_clock():
    rows = {("urssaf", ""): {"window_start_hour": 7}, ("urssaf", "mayotte-mamoudzou"): {}}
    assert rules_problem(rows, changed=("urssaf", "mayotte-mamoudzou")) is None
    bad = {**rows, ("urssaf", "mayotte-mamoudzou"): {"holiday_subdivision": "XX"}}
    assert "XX" in (rules_problem(bad, changed=("urssaf", "mayotte-mamoudzou")) or "")
