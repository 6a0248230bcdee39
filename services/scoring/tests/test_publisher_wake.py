"""The publisher asks the database which sites are due only when a notified site may be due
now; sites it published less than an interval ago only shorten its wait (issue #14)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scoring.publisher import notified_due

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_sites_published_a_moment_ago_fall_due_at_the_end_of_their_interval():
    published = {"a": NOW - 0.2 * SECOND, "b": NOW - 0.7 * SECOND}
    assert notified_due("a,b", published, SECOND, NOW) == NOW + 0.3 * SECOND
    assert notified_due("a", published, SECOND, NOW) == NOW + 0.8 * SECOND


def test_a_site_that_may_be_due_now_asks_the_database():
    published = {"a": NOW - 0.2 * SECOND, "old": NOW - SECOND}
    assert notified_due("a,old", published, SECOND, NOW) is None  # its interval has passed
    assert notified_due("a,new", published, SECOND, NOW) is None  # never published here
    assert notified_due("", published, SECOND, NOW) is None  # too many sites to name


def test_the_days_read_for_a_site_cover_its_periods_on_any_clock():
    """site_event reads the day vectors before it knows the site's clock (one round trip)."""
    from zoneinfo import ZoneInfo, available_timezones

    from scoring import domain
    from scoring.publisher import earliest_start

    zones = [ZoneInfo(name) for name in sorted(available_timezones())]
    for moment in (
        NOW,
        datetime(2027, 1, 1, 0, 30, tzinfo=UTC),
        datetime(2026, 3, 1, 11, tzinfo=UTC),
    ):
        for zone in zones:
            local_day = moment.astimezone(zone).date()
            starts = [period.start for period in domain.periods(local_day)]
            assert earliest_start(moment) <= min(starts), (zone, moment)
