"""A site's default clock (contracts.sites) and the events' validated `site_timezone`."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contracts.events import ContactSeen
from contracts.sites import METROPOLITAN, SiteClock, site_clock, site_timezone

pytestmark = pytest.mark.unit

GUADELOUPE = SiteClock("America/Guadeloupe", "GP")
MARTINIQUE = SiteClock("America/Martinique", "MQ")
GUYANE = SiteClock("America/Cayenne", "GF")
REUNION = SiteClock("Indian/Reunion", "RE")
MAYOTTE = SiteClock("Indian/Mayotte", "YT")


@pytest.mark.parametrize(
    ("site_id", "expected"),
    [
        ("urssaf-guadeloupe", GUADELOUPE),
        ("971-les-abymes", GUADELOUPE),
        ("caf971", GUADELOUPE),
        ("accueil-97110-pointe-a-pitre", GUADELOUPE),
        ("cgss-martinique", MARTINIQUE),
        ("972-fort-de-france", MARTINIQUE),
        ("guyane-cayenne", GUYANE),
        ("973", GUYANE),
        ("CGSS-Réunion-Saint-Denis", REUNION),
        ("974-saint-pierre", REUNION),
        ("mayotte-mamoudzou", MAYOTTE),
        ("97600", MAYOTTE),
        ("urssaf-paris-nord", METROPOLITAN),
        ("urssaf-19710", METROPOLITAN),  # a Corrèze postal code, not Guadeloupe
        ("site-9711", METROPOLITAN),  # not a department code
        ("975-saint-pierre", METROPOLITAN),  # Saint-Pierre-et-Miquelon: not a default here
    ],
)
def test_site_clock_by_site_id(site_id, expected):
    assert site_clock(site_id, "urssaf") == expected


def test_site_clock_by_network_or_name_and_the_site_first():
    assert site_clock("agence-1", "cgss-martinique") == MARTINIQUE
    assert site_clock("agence-1", "urssaf", "Accueil de Mamoudzou, Mayotte") == MAYOTTE
    # A network spanning regions: the site's own name wins.
    assert site_clock("agence-reunion", "cgss-guadeloupe") == REUNION
    assert site_clock("agence-1", "urssaf") == METROPOLITAN


def test_an_event_zone_wins_over_the_default_and_its_absence_falls_back():
    assert site_timezone("Europe/Paris", site_id="urssaf-guadeloupe") == "Europe/Paris"
    assert site_timezone(None, site_id="urssaf-guadeloupe") == "America/Guadeloupe"
    assert site_timezone(None, site_id="agence-1", network="urssaf") == "Europe/Paris"


def _seen(**extra):
    return ContactSeen.model_validate({
        "contact_id": "c-1", "site_id": "urssaf-guadeloupe", "network": "urssaf",
        "channel": "telephone", "motif": "m", "user_pseudo_id": "p" * 32,
        "closed_at": datetime(2026, 1, 4, 3, 30, tzinfo=UTC), **extra,
    })  # fmt: skip


def test_site_timezone_is_optional_and_must_be_an_iana_zone():
    assert _seen().site_timezone is None
    assert _seen(site_timezone="America/Guadeloupe").site_timezone == "America/Guadeloupe"
    for bad in ("Mars/Olympus", "../../etc/passwd", "UTC+4", "", "Europe/Pariss"):
        with pytest.raises(ValidationError):
            _seen(site_timezone=bad)


def test_a_service_may_set_the_metropolitan_default_but_not_an_overseas_one():
    assert site_timezone(None, site_id="agence-1", metropolitan="Europe/Brussels") == (
        "Europe/Brussels"
    )
    assert site_timezone(None, site_id="mayotte-1", metropolitan="Europe/Brussels") == (
        "Indian/Mayotte"
    )
