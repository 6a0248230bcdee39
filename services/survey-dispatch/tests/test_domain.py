"""Unit tests of survey-dispatch's pure rules: whom, through which address, when, in what words."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from survey_dispatch.domain import (
    SMS_SEGMENT_SEPTETS,
    ContactPoint,
    Decision,
    Rules,
    contact_point,
    decide,
    eligibility,
    expiry_time,
    first_send_time,
    gsm7_length,
    in_fatigue_window,
    is_allowed_time,
    is_sampled,
    new_token,
    next_allowed_time,
    normalize_email,
    normalize_mobile,
    pseudonymize,
    reminder_time,
    sms_text,
    to_gsm7,
    token_digest,
)

from contracts.events import ContactClosed, SuppressionReason, SurveyChannel

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
LINK = "https://enquetes.example.fr/s/AbCdEfGhIjKlMnOp"


def contact(**overrides: Any) -> ContactClosed:
    fields: dict[str, Any] = {
        "contact_id": "crm-0001",
        "closed_at": NOW,
        "site_id": "site-75",
        "site_name": "Accueil Paris Centre",
        "network": "urssaf",
        "channel": "telephone",
        "motif": "cotisations",
        "user_ref": "user-42",
        "email": "jean.dupont@example.fr",
        "mobile_phone": "06 12 34 56 78",
        "preferred_channel": "email",
    }
    return ContactClosed(**{**fields, **overrides})


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


# --------------------------------------------------------------------------- time window

# (time zone, holiday subdivision) of each territory; None is metropolitan France.
TERRITORIES = [
    ("Europe/Paris", None),
    ("America/Guadeloupe", "GP"),
    ("America/Martinique", "MQ"),
    ("America/Cayenne", "GF"),
    ("Indian/Reunion", "RE"),
    ("Indian/Mayotte", "YT"),
]
# The holidays library's own names, spelled out here so the oracle does not reuse domain code.
HOLIDAY_LIBRARY_CODES = {
    None: None, "GP": "971", "MQ": "972", "GF": "973", "RE": "974", "YT": "976",
}  # fmt: skip


@cache
def holiday_calendar(subdivision: str | None) -> holidays.HolidayBase:
    return holidays.country_holidays("FR", subdiv=HOLIDAY_LIBRARY_CODES[subdivision])


def allowed(moment: datetime, zone_name: str, subdivision: str | None) -> bool:
    """The oracle, written from the requirement: Mon-Sat, 08:00 <= local < 20:00, no holiday."""
    local = moment.astimezone(ZoneInfo(zone_name))
    return (
        local.isoweekday() <= 6
        and time(8) <= local.time() < time(20)
        and local.date() not in holiday_calendar(subdivision)
    )


def assert_next_allowed_is_right(moment: datetime, zone_name: str, subdivision: str | None) -> None:
    rules = Rules(timezone=zone_name, holiday_subdivision=subdivision)
    result = next_allowed_time(moment, rules)
    assert result.utcoffset() == timedelta(0)
    assert result >= moment
    assert allowed(result, zone_name, subdivision)
    if allowed(moment, zone_name, subdivision):
        assert result == moment
        return
    assert result.astimezone(ZoneInfo(zone_name)).time() == time(8)
    # Allowed periods start on whole local hours, and every territory's UTC offset is a whole
    # number of hours, so probing each UTC quarter-hour between would find any allowed minute.
    probe = moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)
    while (probe := probe + timedelta(minutes=15)) < result:
        assert not allowed(probe, zone_name, subdivision), probe


ZONES = [UTC, *(ZoneInfo(zone_name) for zone_name, _ in TERRITORIES)]
moments = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2035, 12, 31),
    timezones=st.sampled_from(ZONES),
    allow_imaginary=False,
)
territories = st.sampled_from(TERRITORIES)


@settings(max_examples=600, deadline=None)
@given(moment=moments, territory=territories)
@example(moment=paris(2026, 3, 28, 19, 30), territory=TERRITORIES[0])  # Saturday before DST
@example(moment=paris(2026, 10, 24, 20, 0), territory=TERRITORIES[0])  # Saturday before DST end
def test_next_allowed_time_is_the_first_allowed_moment(
    moment: datetime, territory: tuple[str, str | None]
) -> None:
    assert_next_allowed_is_right(moment, *territory)


EDGE_TIMES = [
    time(0), time(7, 59, 59, 999999), time(8), time(12), time(19, 59), time(19, 59, 59, 999999),
    time(20), time(23, 59, 59, 999999),
]  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(
    day=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    wall_time=st.sampled_from(EDGE_TIMES),
    territory=territories,
)
def test_window_edges_on_any_day(
    day: date, wall_time: time, territory: tuple[str, str | None]
) -> None:
    zone_name, subdivision = territory
    assert_next_allowed_is_right(
        datetime.combine(day, wall_time, tzinfo=ZoneInfo(zone_name)), zone_name, subdivision
    )


@settings(max_examples=200, deadline=None)
@given(moment=moments, territory=territories)
def test_next_allowed_time_is_idempotent(
    moment: datetime, territory: tuple[str, str | None]
) -> None:
    rules = Rules(timezone=territory[0], holiday_subdivision=territory[1])
    once = next_allowed_time(moment, rules)
    assert next_allowed_time(once, rules) == once
    assert is_allowed_time(once, rules)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(paris(2026, 11, 19, 19, 59), paris(2026, 11, 19, 19, 59), id="19:59 allowed"),
        pytest.param(paris(2026, 11, 19, 20, 0), paris(2026, 11, 20, 8, 0), id="20:00 next day"),
        pytest.param(paris(2026, 11, 19, 7, 59), paris(2026, 11, 19, 8, 0), id="07:59 same day"),
        pytest.param(paris(2026, 11, 19, 8, 0), paris(2026, 11, 19, 8, 0), id="08:00 allowed"),
        pytest.param(paris(2026, 11, 21, 19, 59), paris(2026, 11, 21, 19, 59), id="saturday"),
        pytest.param(paris(2026, 11, 21, 20, 0), paris(2026, 11, 23, 8, 0), id="saturday 20:00"),
        pytest.param(paris(2026, 11, 22, 12, 0), paris(2026, 11, 23, 8, 0), id="sunday"),
        pytest.param(paris(2026, 7, 14, 10, 0), paris(2026, 7, 15, 8, 0), id="14 July"),
        pytest.param(paris(2026, 7, 13, 20, 0), paris(2026, 7, 15, 8, 0), id="eve of 14 July"),
        pytest.param(paris(2026, 5, 1, 9, 0), paris(2026, 5, 2, 8, 0), id="1 May"),
        pytest.param(paris(2026, 4, 4, 20, 0), paris(2026, 4, 7, 8, 0), id="Easter weekend"),
        pytest.param(paris(2026, 3, 28, 19, 30), paris(2026, 3, 28, 19, 30), id="before DST"),
        pytest.param(paris(2026, 3, 28, 20, 30), paris(2026, 3, 30, 8, 0), id="over DST start"),
        pytest.param(paris(2026, 10, 24, 20, 0), paris(2026, 10, 26, 8, 0), id="over DST end"),
    ],
)
def test_metropolitan_window(moment: datetime, expected: datetime) -> None:
    assert next_allowed_time(moment, Rules()) == expected


def test_dst_changes_keep_08_00_on_the_wall_clock() -> None:
    # 08:00 is 07:00 UTC in winter time and 06:00 UTC in summer time.
    assert next_allowed_time(paris(2026, 3, 28, 21, 0), Rules()) == datetime(
        2026, 3, 30, 6, 0, tzinfo=UTC
    )
    assert next_allowed_time(paris(2026, 10, 24, 21, 0), Rules()) == datetime(
        2026, 10, 26, 7, 0, tzinfo=UTC
    )


def test_result_is_utc() -> None:
    result = next_allowed_time(paris(2026, 11, 19, 10, 0), Rules())
    assert result.tzinfo is UTC
    assert result == datetime(2026, 11, 19, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone_name", "subdivision", "holiday"),
    [
        ("Indian/Reunion", "RE", date(2027, 12, 20)),  # abolition of slavery, a Monday in 2027
        ("America/Guadeloupe", "GP", date(2026, 5, 27)),
        ("America/Martinique", "MQ", date(2026, 5, 22)),
        ("America/Cayenne", "GF", date(2026, 6, 10)),
        ("Indian/Mayotte", "YT", date(2026, 4, 27)),
    ],
)
def test_overseas_holidays(zone_name: str, subdivision: str, holiday: date) -> None:
    zone = ZoneInfo(zone_name)
    moment = datetime.combine(holiday, time(10), tzinfo=zone)
    local_rules = Rules(timezone=zone_name, holiday_subdivision=subdivision)
    assert next_allowed_time(moment, local_rules) == datetime.combine(
        holiday + timedelta(days=1), time(8), tzinfo=zone
    )
    # The same day is a working day elsewhere: the holiday belongs to the territory.
    assert is_allowed_time(moment, Rules(timezone=zone_name))


def test_overseas_time_zone_moves_the_window() -> None:
    # 10:00 in Paris is 04:00 in Guadeloupe (summer): wait for 08:00 there, 12:00 UTC.
    rules = Rules(timezone="America/Guadeloupe", holiday_subdivision="GP")
    assert next_allowed_time(paris(2026, 6, 16, 10, 0), rules) == datetime(
        2026, 6, 16, 12, 0, tzinfo=UTC
    )


def test_custom_window_hours() -> None:
    rules = Rules(window_start_hour=9, window_end_hour=18)
    assert next_allowed_time(paris(2026, 11, 19, 8, 30), rules) == paris(2026, 11, 19, 9, 0)
    assert next_allowed_time(paris(2026, 11, 19, 18, 0), rules) == paris(2026, 11, 20, 9, 0)


def test_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_allowed_time(datetime(2026, 11, 19, 10, 0), Rules())


# --------------------------------------------------------------------------- send times


def test_first_send_time_waits_the_delay() -> None:
    closed = paris(2026, 11, 19, 10, 0)
    assert first_send_time(closed, SurveyChannel.SMS, Rules()) == paris(2026, 11, 19, 10, 10)
    assert first_send_time(closed, SurveyChannel.SMS, Rules(delay_minutes=0)) == closed


def test_first_send_time_moves_out_of_hours_sends() -> None:
    closed = paris(2026, 11, 19, 19, 55)  # + 10 minutes = 20:05
    next_morning = paris(2026, 11, 20, 8, 0)
    assert first_send_time(closed, SurveyChannel.SMS, Rules()) == next_morning
    assert first_send_time(closed, SurveyChannel.EMAIL, Rules()) == next_morning
    email_any_time = Rules(email_uses_sms_window=False)
    assert first_send_time(closed, SurveyChannel.EMAIL, email_any_time) == paris(
        2026, 11, 19, 20, 5
    )
    assert first_send_time(closed, SurveyChannel.SMS, email_any_time) == next_morning


@settings(max_examples=200, deadline=None)
@given(closed=moments, delay=st.integers(0, 24 * 60), territory=territories)
def test_first_sms_is_after_the_delay_and_allowed(
    closed: datetime, delay: int, territory: tuple[str, str | None]
) -> None:
    rules = Rules(delay_minutes=delay, timezone=territory[0], holiday_subdivision=territory[1])
    send_at = first_send_time(closed, SurveyChannel.SMS, rules)
    assert send_at >= closed + timedelta(minutes=delay)
    assert allowed(send_at, *territory)


def test_reminder_is_email_only_by_default() -> None:
    sent = paris(2026, 11, 16, 10, 0)  # Monday
    assert reminder_time(sent, SurveyChannel.EMAIL, Rules()) == paris(2026, 11, 18, 10, 0)
    assert reminder_time(sent, SurveyChannel.SMS, Rules()) is None
    both = Rules(reminder_channels=frozenset({"email", "sms"}))
    assert reminder_time(sent, SurveyChannel.SMS, both) == paris(2026, 11, 18, 10, 0)


def test_reminder_respects_the_window() -> None:
    sent = paris(2026, 11, 20, 19, 0)  # Friday; + 48 h = Sunday 19:00
    assert reminder_time(sent, SurveyChannel.EMAIL, Rules()) == paris(2026, 11, 23, 8, 0)
    any_time = Rules(email_uses_sms_window=False)
    assert reminder_time(sent, SurveyChannel.EMAIL, any_time) == paris(2026, 11, 22, 19, 0)


def test_no_reminder_at_or_after_expiry() -> None:
    sent = paris(2026, 11, 16, 10, 0)
    assert reminder_time(sent, SurveyChannel.EMAIL, Rules(reminder_hours=7 * 24)) is None
    assert reminder_time(sent, SurveyChannel.EMAIL, Rules(reminder_hours=200)) is None
    # Pushed past expiry by the window: Friday 19:00 + 25 h = Saturday 20:00, moved to Monday
    # 08:00, after the link expired on Sunday 19:00.
    friday = paris(2026, 11, 20, 19, 0)
    late = Rules(reminder_hours=25, expiry_days=2)
    assert reminder_time(friday, SurveyChannel.EMAIL, late) is None


def test_expiry_time() -> None:
    sent = paris(2026, 11, 16, 10, 0)
    assert expiry_time(sent, Rules()) == sent + timedelta(days=7)
    assert expiry_time(sent, Rules()).tzinfo is UTC
    assert expiry_time(sent, Rules(expiry_days=3)) == sent + timedelta(days=3)


# --------------------------------------------------------------------------- rules


def test_rules_defaults() -> None:
    rules = Rules.from_mapping({}, None)
    assert rules == Rules()
    assert rules.fatigue_days == 30
    assert rules.delay_minutes == 10
    assert rules.reminder_hours == 48
    assert rules.reminder_channels == frozenset({"email"})
    assert rules.expiry_days == 7
    assert rules.timezone == "Europe/Paris"


def test_site_rules_override_network_rules() -> None:
    network = {"sampling_rate": 0.5, "fatigue_days": 60, "excluded_motifs": ["contentieux"]}
    site = {
        "sampling_rate": 0.2,
        "timezone": "Indian/Reunion",
        "holiday_subdivision": "RE",
        "surveyed_channels": ["telephone", "accueil_physique"],
    }
    rules = Rules.from_mapping(network, site)
    assert rules.sampling_rate == 0.2
    assert rules.fatigue_days == 60
    assert rules.excluded_motifs == frozenset({"contentieux"})
    assert rules.surveyed_channels == frozenset({"telephone", "accueil_physique"})
    assert rules.timezone == "Indian/Reunion"
    assert Rules.from_mapping(network, None).sampling_rate == 0.5


def test_a_site_can_reset_a_network_restriction() -> None:
    rules = Rules.from_mapping({"surveyed_channels": ["telephone"]}, {"surveyed_channels": None})
    assert rules.surveyed_channels is None


def test_french_guiana_is_known_by_its_iso_code() -> None:
    assert Rules(timezone="America/Cayenne", holiday_subdivision="GF").holiday_subdivision == "GF"


@pytest.mark.parametrize(
    "bad",
    [
        {"samplig_rate": 0.5},
        {"sampling_rate": 1.5},
        {"sampling_rate": -0.1},
        {"sampling_rate": float("nan")},
        {"sampling_rate": "0.5"},
        {"sampling_rate": True},
        {"fatigue_days": -1},
        {"fatigue_days": 7.5},
        {"delay_minutes": -5},
        {"reminder_hours": 0},
        {"expiry_days": 0},
        {"email_uses_sms_window": "yes"},
        {"excluded_channels": "sms"},
        {"excluded_channels": ["telephone", 3]},
        {"surveyed_channels": ["phone"]},
        {"reminder_channels": ["fax"]},
        {"timezone": "Europe/Atlantis"},
        {"timezone": "../../etc/passwd"},
        {"holiday_subdivision": "XX"},
        {"window_start_hour": 20, "window_end_hour": 8},
        {"window_end_hour": 25},
        {"window_start_hour": -1},
    ],
)
def test_invalid_rules_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Rules.from_mapping({}, bad)
    with pytest.raises(ValueError):
        Rules.from_mapping(bad, None)


def test_unknown_keys_are_named() -> None:
    with pytest.raises(ValueError, match="samplig_rate"):
        Rules.from_mapping({"samplig_rate": 0.5}, None)


# --------------------------------------------------------------------------- sampling


def test_sampling_is_deterministic() -> None:
    decisions = [is_sampled(f"crm-{n}", 0.3) for n in range(200)]
    assert decisions == [is_sampled(f"crm-{n}", 0.3) for n in range(200)]
    assert is_sampled("crm-1", 0.3, "site-a") == is_sampled("crm-1", 0.3, "site-a")


def test_sampling_rate_is_honoured_over_10000_contacts() -> None:
    for rate in (0.1, 0.3, 0.5, 0.9):
        share = sum(is_sampled(f"crm-{n:06d}", rate) for n in range(10_000)) / 10_000
        assert abs(share - rate) < 0.02, (rate, share)  # about 4 standard deviations


def test_sampling_extremes() -> None:
    assert all(is_sampled(f"crm-{n}", 1.0) for n in range(1000))
    assert not any(is_sampled(f"crm-{n}", 0.0) for n in range(1000))


def test_salt_changes_who_is_sampled() -> None:
    plain = [is_sampled(f"crm-{n}", 0.5) for n in range(1000)]
    salted = [is_sampled(f"crm-{n}", 0.5, "site-a") for n in range(1000)]
    assert plain != salted


@given(contact_id=st.text(min_size=1), low=st.floats(0, 1), high=st.floats(0, 1))
def test_sampling_is_monotonic_in_the_rate(contact_id: str, low: float, high: float) -> None:
    low, high = sorted((low, high))
    if is_sampled(contact_id, low):
        assert is_sampled(contact_id, high)


# --------------------------------------------------------------------------- eligibility


def test_eligibility_order_channel_then_motif_then_sampling() -> None:
    everything_wrong = Rules(
        excluded_channels=frozenset({"telephone"}),
        excluded_motifs=frozenset({"cotisations"}),
        sampling_rate=0.0,
    )
    assert eligibility(contact(), everything_wrong) is SuppressionReason.CHANNEL_EXCLUDED
    motif_and_sampling = Rules(excluded_motifs=frozenset({"cotisations"}), sampling_rate=0.0)
    assert eligibility(contact(), motif_and_sampling) is SuppressionReason.MOTIF_EXCLUDED
    assert eligibility(contact(), Rules(sampling_rate=0.0)) is SuppressionReason.NOT_SAMPLED
    assert eligibility(contact(), Rules()) is None


def test_surveyed_lists_restrict() -> None:
    only_desk = Rules(surveyed_channels=frozenset({"accueil_physique"}))
    assert eligibility(contact(), only_desk) is SuppressionReason.CHANNEL_EXCLUDED
    assert eligibility(contact(channel="accueil_physique"), only_desk) is None
    only_debt = Rules(surveyed_motifs=frozenset({"recouvrement"}))
    assert eligibility(contact(), only_debt) is SuppressionReason.MOTIF_EXCLUDED
    assert eligibility(contact(motif="recouvrement"), only_debt) is None


def test_exclusion_wins_over_inclusion() -> None:
    rules = Rules(
        surveyed_channels=frozenset({"telephone"}), excluded_channels=frozenset({"telephone"})
    )
    assert eligibility(contact(), rules) is SuppressionReason.CHANNEL_EXCLUDED


def test_sampling_uses_the_site_salt() -> None:
    ids = [f"crm-{n}" for n in range(200)]
    salted = Rules(sampling_rate=0.5, sampling_salt="site-75")
    expected = [is_sampled(i, 0.5, "site-75") for i in ids]
    assert [eligibility(contact(contact_id=i), salted) is None for i in ids] == expected


# --------------------------------------------------------------------------- contact points


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("07 56 12 34 56", "+33756123456"),
        ("06.12.34.56.78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("+590 690 00 12 34", "+590690001234"),  # Guadeloupe
        ("0690 00 12 34", "+590690001234"),  # Guadeloupe, national format
        ("0696 20 12 34", "+596696201234"),  # Martinique
        ("0694 20 12 34", "+594694201234"),  # Guyane
        ("0692 12 34 56", "+262692123456"),  # Réunion
        ("+262 639 01 23 45", "+262639012345"),  # Mayotte
        ("+687 75 12 34", "+687751234"),  # Nouvelle-Calédonie
    ],
)
def test_french_mobiles_are_accepted(raw: str, e164: str) -> None:
    assert normalize_mobile(raw) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "01 23 45 67 89",  # a landline
        "0262 12 34 56",  # a Réunion landline
        "+32 450 00 12 34",  # a Belgian mobile
        "+33 6 12 34 56",  # too short
        "06 12 AB CD EF",
        "not a number",
        "",
        "+",
    ],
)
def test_other_numbers_are_refused(raw: str) -> None:
    assert normalize_mobile(raw) is None


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("jean.dupont@example.fr", "jean.dupont@example.fr"),
        ("Jean.Dupont@Example.FR", "Jean.Dupont@example.fr"),  # the local part keeps its case
        ("a+survey@mail.service-public.fr", "a+survey@mail.service-public.fr"),
        ("marie@élysée.fr", "marie@xn--lyse-9oad.fr"),
    ],
)
def test_valid_emails(raw: str, normalised: str) -> None:
    assert normalize_email(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "jean@localhost",
        "jean@intranet",  # no dot
        "jean@example.invalid",
        "jean@site.test",
        "jean@host.localhost",
        "jean@domain.example",
        "jean dupont@example.fr",
        "jean@exa mple.fr",
        "jean@@example.fr",
        "jean@a@example.fr",
        "@example.fr",
        "jean@",
        "jean",
        "jean@.fr",
        "jean@example..fr",
        "jean@example.fr.",
        "jean@-example.fr",
        "jean@1.2.3.4",
        "jean@example.f",
        ".jean@example.fr",
        "jean.@example.fr",
        "jé@example.fr",
        "a" * 65 + "@example.fr",
        "",
    ],
)
def test_invalid_emails(raw: str) -> None:
    assert normalize_email(raw) is None


def test_contact_point_uses_the_preferred_channel() -> None:
    assert contact_point(contact()) == ContactPoint(SurveyChannel.EMAIL, "jean.dupont@example.fr")
    assert contact_point(contact(preferred_channel="sms")) == ContactPoint(
        SurveyChannel.SMS, "+33612345678"
    )


def test_contact_point_falls_back_when_the_preferred_one_is_missing() -> None:
    assert contact_point(contact(email=None)) == ContactPoint(SurveyChannel.SMS, "+33612345678")
    assert contact_point(contact(preferred_channel="sms", mobile_phone=None)) == ContactPoint(
        SurveyChannel.EMAIL, "jean.dupont@example.fr"
    )
    assert contact_point(contact(email="")) == ContactPoint(SurveyChannel.SMS, "+33612345678")


def test_contact_point_reports_an_unusable_preferred_address() -> None:
    assert contact_point(contact(email="jean@localhost")) is SuppressionReason.INVALID_EMAIL
    bad_phone = contact(preferred_channel="sms", mobile_phone="01 23 45 67 89")
    assert contact_point(bad_phone) is SuppressionReason.INVALID_PHONE
    # The preferred one is missing and the other one is unusable: say which one.
    assert (
        contact_point(contact(email=None, mobile_phone="01 23 45 67 89"))
        is SuppressionReason.INVALID_PHONE
    )


def test_no_contact_point() -> None:
    assert contact_point(contact(email=None, mobile_phone=None)) is (
        SuppressionReason.NO_CONTACT_POINT
    )


# --------------------------------------------------------------------------- decide


def decision(
    the_contact: ContactClosed | None = None,
    rules: Rules | None = None,
    *,
    already_handled: bool = False,
    opted_out: bool = False,
    last_invited_at: datetime | None = None,
    now: datetime = NOW,
) -> Decision:
    return decide(
        the_contact or contact(),
        rules or Rules(),
        already_handled=already_handled,
        opted_out=opted_out,
        last_invited_at=last_invited_at,
        now=now,
    )


def test_a_usable_contact_is_invited() -> None:
    result = decision()
    assert result == Decision(
        send=True,
        detail="Invitation par courriel",
        point=ContactPoint(SurveyChannel.EMAIL, "jean.dupont@example.fr"),
    )


def test_fallback_is_explained() -> None:
    result = decision(contact(email=None))
    assert result.send
    assert result.detail == "Invitation par SMS (pas de courriel fourni)"


def test_duplicate_beats_everything() -> None:
    worst = contact(opted_out=True, email=None, mobile_phone=None)
    result = decision(
        worst,
        Rules(excluded_channels=frozenset({"telephone"}), sampling_rate=0.0),
        already_handled=True,
        opted_out=True,
        last_invited_at=NOW,
    )
    assert result.reason is SuppressionReason.DUPLICATE_CONTACT
    assert not result.send
    assert result.point is None


def test_eligibility_beats_opt_out() -> None:
    result = decision(rules=Rules(excluded_motifs=frozenset({"cotisations"})), opted_out=True)
    assert result.reason is SuppressionReason.MOTIF_EXCLUDED
    assert result.detail == "Motif « cotisations » non enquêté pour ce site"


def test_not_sampled_detail() -> None:
    result = decision(rules=Rules(sampling_rate=0.0))
    assert result.reason is SuppressionReason.NOT_SAMPLED
    assert result.detail == "Contact non retenu par l'échantillonnage (taux de 0 %)"


def test_opt_out_beats_fatigue() -> None:
    result = decision(opted_out=True, last_invited_at=NOW - timedelta(days=1))
    assert result.reason is SuppressionReason.OPTED_OUT
    crm_flag = decision(contact(opted_out=True), last_invited_at=NOW - timedelta(days=1))
    assert crm_flag.reason is SuppressionReason.OPTED_OUT
    assert crm_flag.detail != result.detail  # says where the refusal came from


def test_fatigue_beats_the_contact_point() -> None:
    result = decision(contact(email=None, mobile_phone=None), last_invited_at=NOW)
    assert result.reason is SuppressionReason.FATIGUE


def test_fatigue_boundary_is_exactly_n_days() -> None:
    rules = Rules(fatigue_days=30)
    just_inside = decision(rules=rules, last_invited_at=NOW - timedelta(days=30, seconds=-1))
    assert just_inside.reason is SuppressionReason.FATIGUE
    assert decision(rules=rules, last_invited_at=NOW - timedelta(days=30)).send
    assert in_fatigue_window(NOW - timedelta(days=29, hours=23), NOW, rules)
    assert not in_fatigue_window(NOW - timedelta(days=30), NOW, rules)


def test_fatigue_detail_names_the_local_date() -> None:
    # 23:30 UTC on 1 November is already 2 November in Paris.
    last = datetime(2026, 11, 1, 23, 30, tzinfo=UTC)
    result = decision(last_invited_at=last)
    assert result.detail == "Déjà sollicité le 02/11/2026 (délai de 30 jours)"
    one_day = decision(rules=Rules(fatigue_days=1), last_invited_at=NOW - timedelta(hours=1))
    assert one_day.detail.endswith("(délai de 1 jour)")


def test_fatigue_zero_days_means_no_throttle() -> None:
    assert decision(rules=Rules(fatigue_days=0), last_invited_at=NOW).send


def test_an_invitation_in_the_future_counts_as_recent() -> None:
    assert decision(last_invited_at=NOW + timedelta(hours=1)).reason is SuppressionReason.FATIGUE


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"email": "jean.dupont@localhost"}, SuppressionReason.INVALID_EMAIL),
        ({"preferred_channel": "sms", "mobile_phone": "01 23 45 67 89"}, "invalid_phone"),
        ({"email": None, "mobile_phone": None}, SuppressionReason.NO_CONTACT_POINT),
    ],
)
def test_contact_point_reasons_never_leak_the_address(
    overrides: dict[str, Any], reason: str
) -> None:
    result = decision(contact(**overrides))
    assert result.reason == reason
    assert result.detail
    assert "jean" not in result.detail
    assert "01 23" not in result.detail


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        decision(now=datetime(2026, 11, 20, 10, 0))


# --------------------------------------------------------------------------- identifiers


def test_pseudonymize_is_stable_and_key_dependent() -> None:
    first = pseudonymize("user-42", b"key-one")
    assert first == pseudonymize("user-42", b"key-one")
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert first != pseudonymize("user-42", b"key-two")
    assert first != pseudonymize("user-43", b"key-one")
    assert first != hashlib.sha256(b"user-42").hexdigest()


def test_pseudonymize_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError):
        pseudonymize("user-42", b"")


def test_tokens_are_short_url_safe_and_random() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}", token)
        assert len(base64.urlsafe_b64decode(token)) * 8 >= 72


def test_token_digest_is_sha256_hex() -> None:
    assert token_digest("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# --------------------------------------------------------------------------- SMS


def test_gsm7_length() -> None:
    assert gsm7_length("Répondez STOP") == 13
    assert gsm7_length("àèéùÉ") == 5
    assert gsm7_length("5 €") == 4  # the euro sign is an extension: two septets
    assert gsm7_length("[a]{b}~^|\\") == 8 * 2 + 2
    for char in ("ê", "â", "î", "ô", "û", "œ", "ç", "’", "«", "»", "😀"):
        with pytest.raises(ValueError):
            gsm7_length(char)


def test_to_gsm7_keeps_what_it_can() -> None:
    assert to_gsm7("Crèche Sainte-Geneviève") == "Crèche Sainte-Geneviève"
    # Ç is GSM-7 (0x09), ç is not.
    assert to_gsm7("Île-de-France — Œuvre « Ça’va »\n") == 'Ile-de-France - OEuvre " Ça\'va "'
    assert to_gsm7("Françoise") == "Francoise"
    assert to_gsm7("Forêt 🌲") == "Foret"


def test_sms_text_for_an_ordinary_site() -> None:
    text = sms_text(site_name="Urssaf Guadeloupe", link=LINK)
    assert text == (
        f"Urssaf Guadeloupe : votre avis en 1 minute : {LINK} "
        "Répondez STOP pour ne plus recevoir ces SMS."
    )
    assert gsm7_length(text) <= SMS_SEGMENT_SEPTETS


def test_sms_text_shortens_a_long_site_name_never_the_link() -> None:
    name = "Caisse d'allocations familiales de la Guadeloupe, accueil de Basse-Terre, bâtiment B"
    text = sms_text(site_name=name, link=LINK)
    assert gsm7_length(text) <= SMS_SEGMENT_SEPTETS
    assert f" {LINK} " in text
    site = text.split(" : ")[0]
    assert site.endswith(".")
    assert len(site) > 20
    assert name.startswith(site[:-1])


def test_sms_text_drops_the_site_when_the_link_leaves_no_room() -> None:
    for length in (55, 60):  # room for "U." at most, then for nothing
        link = "https://enquetes.example.fr/s/" + "x" * length
        text = sms_text(site_name="Urssaf", link=link)
        assert text.startswith("Votre avis en 1 minute : ")
        assert link in text
        assert gsm7_length(text) <= SMS_SEGMENT_SEPTETS


def test_sms_text_refuses_what_cannot_fit() -> None:
    with pytest.raises(ValueError):
        sms_text(site_name="Urssaf", link="https://enquetes.example.fr/s/" + "x" * 200)
    with pytest.raises(ValueError):
        sms_text(site_name="Urssaf", link="https://enquêtes.example.fr/s/abc")


@settings(max_examples=300)
@given(
    site_name=st.text(max_size=300),
    token=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                  min_size=16, max_size=22),
    base=st.sampled_from(["http://127.0.0.1:8002", "https://enquetes.urssaf.fr", "https://x.fr"]),
)  # fmt: skip
def test_sms_text_always_fits_one_segment(site_name: str, token: str, base: str) -> None:
    link = f"{base}/s/{token}"
    text = sms_text(site_name=site_name, link=link)
    assert gsm7_length(text) <= SMS_SEGMENT_SEPTETS
    assert f"{link} " in text
    assert "STOP" in text


# --------------------------------------------------------------------------- questionnaires


def test_a_network_chooses_its_questionnaire_and_a_motif_may_override_it() -> None:
    from survey_dispatch.domain import questionnaire_version

    network = {
        "questionnaire_version": "sms-court-2026-v1",
        "motif_questionnaires": {"retraite": "urssaf-chaud-2024-v1"},
    }
    rules = Rules.from_mapping(network, None)
    default = "urssaf-chaud-2024-v1"
    assert questionnaire_version(rules, "declaration", default=default) == "sms-court-2026-v1"
    assert questionnaire_version(rules, "retraite", default=default) == "urssaf-chaud-2024-v1"
    assert questionnaire_version(Rules(), "declaration", default=default) == default
    site = Rules.from_mapping(network, {"questionnaire_version": None})
    assert questionnaire_version(site, "declaration", default=default) == default


@pytest.mark.parametrize(
    "bad",
    [
        {"questionnaire_version": "inconnu-v9"},
        {"questionnaire_version": 3},
        {"motif_questionnaires": {"retraite": "inconnu-v9"}},
        {"motif_questionnaires": ["retraite"]},
        {"motif_questionnaires": {"retraite": 1}},
    ],
)
def test_an_unknown_questionnaire_version_is_refused_naming_the_known_ones(
    bad: dict[str, Any],
) -> None:
    with pytest.raises(ValueError) as refused:
        Rules.from_mapping({}, bad)
    message = str(refused.value)
    assert "questionnaire" in message or "motif_questionnaires" in message
    if "inconnu-v9" in str(bad):
        assert "sms-court-2026-v1" in message and "urssaf-chaud-2024-v1" in message


def test_an_unknown_default_questionnaire_version_is_refused_at_start() -> None:
    from pydantic import ValidationError
    from survey_dispatch.settings import DispatchSettings

    assert DispatchSettings().questionnaire_version == "urssaf-chaud-2024-v1"
    assert DispatchSettings(questionnaire_version="sms-court-2026-v1")
    with pytest.raises(ValidationError, match="unknown questionnaire version 'urssaf-v0'"):
        DispatchSettings(questionnaire_version="urssaf-v0")


def test_the_link_validity_follows_the_expiry_rule_and_never_promises_more() -> None:
    from survey_dispatch.domain import link_validity

    assert link_validity(timedelta(days=Rules(expiry_days=3).expiry_days)) == "valable 3 jours"
    assert link_validity(timedelta(days=1)) == "valable 1 jour"
    reminder = timedelta(days=2, hours=23, minutes=59)
    assert link_validity(reminder, reminder=True) == "valable encore 2 jours"
    assert link_validity(timedelta(hours=5, minutes=30), reminder=True) == "valable encore 5 heures"
    assert link_validity(timedelta(minutes=59), reminder=True) == "valable encore moins d'une heure"


def test_a_network_may_send_on_sundays_and_holidays() -> None:
    christmas, sunday = paris(2026, 12, 25, 10, 0), paris(2026, 11, 22, 10, 0)
    assert not is_allowed_time(christmas, Rules())
    assert not is_allowed_time(sunday, Rules())
    every_day = Rules.from_mapping({"rest_on_sundays_and_holidays": False}, None)
    assert is_allowed_time(christmas, every_day)
    assert next_allowed_time(sunday, every_day) == sunday
    with pytest.raises(ValueError, match="rest_on_sundays_and_holidays"):
        Rules.from_mapping({"rest_on_sundays_and_holidays": "non"}, None)
