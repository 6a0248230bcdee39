"""What the public may see, and how it reads."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from publication import domain

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
NBSP = "\u00a0"


def figure(indicator, value, n, unit="percent", label=None, **extra):
    return {
        "indicator": indicator,
        "label": label or indicator,
        "value": value,
        "unit": unit,
        "sample_size": n,
        "interval": {"low": 1.0, "high": 2.0, "level": 0.95, "method": "wilson"},
        "counts": {"x": n},
        **extra,
    }


def snapshot(current, previous=()):
    return domain.Snapshot(
        site_id="s1",
        site_name="Accueil",
        network="urssaf",
        computed_at=datetime(2026, 11, 20, 13, 5, tzinfo=UTC),
        periods=[
            {
                "period": "rolling_90d",
                "start": "2026-09-01",
                "end": "2026-11-29",
                "figures": list(current),
            },
            {
                "period": "previous_rolling_90d",
                "start": "2026-06-03",
                "end": "2026-08-31",
                "figures": list(previous),
            },
        ],
    )


def feed(current, previous=(), chosen=("satisfaction", "nps"), floor=30):
    return domain.site_feed(
        snapshot(current, previous),
        domain.SiteChoice(tuple(chosen)),
        floor=floor,
        periods=("rolling_90d", "previous_rolling_90d"),
        zone=PARIS,
    )


def test_a_figure_below_the_floor_keeps_only_its_label_and_the_reason():
    view = feed([figure("satisfaction", 81.2, 29), figure("nps", 40.0, 30, unit="score")])
    withheld, published = view["current"]["indicators"]
    assert withheld == {
        "id": "satisfaction",
        "label": "satisfaction",
        "published": False,
        "type": "satisfaction",
        "period": {"id": "rolling_90d", "start": "2026-09-01", "end": "2026-11-29"},
        "withheld_reason": "résultats en cours de collecte",
        "text": {"status": "Résultats en cours de collecte"},
    }
    assert published["published"] is True
    assert published["sample_size"] == 30
    assert "counts" not in published  # raw counts are for scoring, not the public


def test_a_figure_nobody_answered_is_withheld_not_zero():
    view = feed([figure("satisfaction", None, 0)])
    assert view["current"]["indicators"][0]["published"] is False


def test_only_chosen_indicators_in_the_chosen_order_and_the_previous_period():
    current = [
        figure("nps", 10.0, 50, unit="score"),
        figure("satisfaction", 80.0, 50),
        figure("ces", 70.0, 50),
    ]
    view = feed(current, previous=[figure("nps", 5.0, 40, unit="score")], chosen=("nps", "ces"))
    assert [f["id"] for f in view["current"]["indicators"]] == ["nps", "ces"]
    assert [f["id"] for f in view["previous"]["indicators"]] == ["nps"]
    assert view["previous"]["start"] == "2026-06-03"
    assert view["updated_at_text"] == {"date": "20 novembre 2026", "time": f"14{NBSP}h{NBSP}05"}
    assert view["display"] == {"engagements": True, "rotation_seconds": 12, "show_previous": True}


def test_a_missing_period_gives_an_empty_list_not_an_error():
    view = domain.site_feed(
        snapshot([figure("nps", 10.0, 50, unit="score")]),
        domain.SiteChoice(("nps",)),
        floor=30,
        periods=("month", "previous_month"),
        zone=PARIS,
    )
    assert view["current"] == {"period": "month", "start": None, "end": None, "indicators": []}


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (87.4, "percent", f"87{NBSP}%"),
        (42.0, "score", "+42"),
        (-12.4, "score", "−12"),
        (0.2, "score", "0"),
        (8.14, "mean_1_10", f"8,1{NBSP}/{NBSP}10"),
        (5.55, "mean_1_7", f"5,6{NBSP}/{NBSP}7"),  # half away from zero (issue #18)
    ],
)
def test_values_read_the_french_way(value, unit, text):
    assert domain.format_value(value, unit) == text


def test_intervals_read_in_words():
    assert domain.format_interval({"low": 84.2, "high": 90.1}, "percent") == (
        f"entre 84{NBSP}% et 90{NBSP}%"
    )
    assert domain.format_interval({"low": 7.91, "high": 8.3}, "mean_1_10") == "entre 7,9 et 8,3"
    assert domain.format_interval(None, "percent") is None


def test_sample_sentence_in_plain_french():
    assert domain.sample_sentence(412, date(2026, 9, 1), date(2026, 11, 30)) == (
        "Sur 412 réponses, du 1er septembre au 30 novembre 2026"
    )
    assert domain.sample_sentence(1, date(2025, 12, 2), date(2026, 2, 28)) == (
        "Sur 1 réponse, du 2 décembre 2025 au 28 février 2026"
    )


def test_the_sample_sentence_names_what_was_counted():
    """The response rate's n is invitations, observed FCR's is contacts: not « réponses »."""
    start, end = date(2026, 11, 23), date(2026, 11, 29)
    assert domain.sample_sentence(40, start, end, "response_rate").startswith(
        "Sur 40 invitations envoyées,"
    )
    assert domain.sample_sentence(1, start, end, "fcr_observed").startswith("Sur 1 contact,")
    assert domain.sample_sentence(2, start, end, "nps").startswith("Sur 2 réponses,")


def test_clock_time_as_french_typography_writes_it():
    assert domain.clock_time(datetime(2026, 1, 1, 9, 5)) == f"9{NBSP}h{NBSP}05"


def test_the_nine_engagements_verbatim():
    assert len(domain.ENGAGEMENTS) == 9
    assert [group for group, _ in domain.ENGAGEMENTS].count("+ EFFICACES") == 3
    assert domain.ENGAGEMENTS[5][1] == "Vous avez accès à nos résultats de qualité de service"
    assert domain.ENGAGEMENTS[3][1].startswith(
        "Nous vous orientons"
    )  # not the typo's « Nous nous »


def test_open_data_rows_carry_no_withheld_value():
    view = feed([figure("satisfaction", 81.25, 29), figure("nps", 40.0, 300, unit="score")])
    rows = list(domain.open_data_rows([view]))
    assert set(rows[0]) == set(domain.OPEN_DATA_COLUMNS)
    withheld, published = rows
    assert withheld["statut"] == "en_cours_de_collecte"
    assert withheld["valeur"] == withheld["nombre_reponses"] == withheld["ic95_borne_basse"] == ""
    assert published["valeur"] == "40"
    assert published["nombre_reponses"] == "300"
    assert published["unite"] == "score NPS (-100 à 100)"
    assert published["date_debut"] == "2026-09-01"


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ('=HYPERLINK("https://x.example";"a")', '\'=HYPERLINK("https://x.example";"a")'),
        ("+33 1 23", "'+33 1 23"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Accueil de Lyon", "Accueil de Lyon"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_spreadsheet_text_neutralises_formula_starts(text, cell):
    assert domain.spreadsheet_text(text) == cell


def test_open_data_numbers_stay_numbers_and_text_never_starts_a_formula():
    nps = figure("nps", -12.0, 300, unit="score", label="=cmd|' /C calc'!A0")
    nps["interval"] = {"low": -20.5, "high": -3.5, "level": 0.95, "method": "adjusted_wald"}
    view = {**feed([nps], chosen=("nps",)), "site_name": "=1+1", "site_id": "-site",
            "network": "@reseau"}  # fmt: skip
    row = next(domain.open_data_rows([view]))
    assert row["indicateur"] == "'=cmd|' /C calc'!A0"
    assert (row["valeur"], row["ic95_borne_basse"], row["ic95_borne_haute"]) == (
        "-12", "-20.5", "-3.5",
    )  # fmt: skip
    assert (row["nom_structure"], row["id_structure"], row["reseau"]) == (
        "'=1+1", "'-site", "'@reseau",
    )  # fmt: skip


def test_unknown_indicator_ids_are_named():
    assert domain.unknown_indicators(["nps", "theme_courtoisie", "theme_delais_share", "npss"]) == [
        "npss"
    ]


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"abc-gzip"', True),
        ("*", True),
        ('"x", "abc"', True),
        ('"abcd"', False),
        ("abc", True),
    ],
)
def test_if_none_match_uses_weak_comparison(header, matches):
    assert domain.etag_matches(header, "abc") is matches


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        (None, False),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("GZIP", True),
        ("x-gzip", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding_is_read_with_its_quality(header, gzip):
    assert domain.accepts_gzip(header) is gzip


# --------------------------------------------------------------------------- issue #18


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (42.5, "score", "+43"),  # was « +42 » (half to even)
        (47.5, "score", "+48"),
        (-42.5, "score", "−43"),
        (17 / 40 * 100, "score", "+43"),  # computes as 42.49999999999999
        (62.5, "percent", f"63{NBSP}%"),  # was « 62 % »
        (8.25, "mean_1_10", f"8,3{NBSP}/{NBSP}10"),  # was « 8,2 »
    ],
)
def test_figures_round_half_away_from_zero_as_french_readers_expect(value, unit, text):
    assert domain.format_value(value, unit) == text


def test_the_nps_interval_reads_in_plain_french_with_signs():
    assert domain.format_interval({"low": 34.5, "high": 48.5}, "score") == "entre +35 et +49"


def test_open_data_numbers_round_half_away_too():
    assert domain._number(2.675) == "2.68"
    assert domain._number(-20.5) == "-20.5"
    assert domain._number(40.0) == "40"


def share(indicator, k, n):
    return figure(indicator, k / n * 100, n)


def test_a_change_within_the_noise_reads_stable_on_the_screen_and_in_the_feed():
    # 60/90 then 64/90: « en baisse de 4 points » would be noise (Newcombe interval spans 0).
    view = feed([share("satisfaction", 60, 90)], previous=[share("satisfaction", 64, 90)],
                chosen=("satisfaction",))  # fmt: skip
    current = view["current"]["indicators"][0]
    assert current["change"]["distinguishable"] is False
    assert current["change"]["direction"] == "stable"
    assert current["text"]["change"] == "stable (écart dans la marge d'incertitude)"
    assert current["change"]["interval"]["low"] < 0 < current["change"]["interval"]["high"]
    assert "counts" not in current


def test_a_real_change_says_its_direction_and_points():
    view = feed([share("satisfaction", 400, 1000)], previous=[share("satisfaction", 475, 1000)],
                chosen=("satisfaction",))  # fmt: skip
    current = view["current"]["indicators"][0]
    assert current["text"]["change"] == "en baisse de 8 points"  # −7.5, half away from zero
    assert current["change"]["distinguishable"] is True


def test_no_change_is_told_against_a_withheld_previous_period():
    view = feed([share("satisfaction", 60, 90)], previous=[share("satisfaction", 20, 25)],
                chosen=("satisfaction",))  # fmt: skip
    current = view["current"]["indicators"][0]
    assert "change" not in current and "change" not in current["text"]


def test_a_provisional_figure_says_so_where_it_is_read():
    """Issue #18: a response rate whose invitations' links are still open may still go up; the
    screen and the feed say « provisoire » beside it (the sentence under the figure)."""
    open_rate = figure("response_rate", 31.0, 200, provisional=True)
    closed = figure("satisfaction", 80.0, 200)
    shown = feed([open_rate, closed], chosen=("response_rate", "satisfaction"))
    by_id = {f["id"]: f for f in shown["current"]["indicators"]}
    assert by_id["response_rate"]["provisional"] is True
    assert by_id["response_rate"]["text"]["sample"].endswith(" (provisoire : peut encore évoluer)")
    assert "provisoire" not in by_id["satisfaction"]["text"]["sample"]
