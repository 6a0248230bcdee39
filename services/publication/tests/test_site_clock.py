"""Issue #15: the screen's « Mis à jour à » and the feed's times on the site's own clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from publication import domain

pytestmark = pytest.mark.unit

NBSP = "\u00a0"


def _view(zone_name: str) -> dict:
    snapshot = domain.Snapshot(
        site_id="urssaf-guadeloupe", site_name="Urssaf Guadeloupe", network="urssaf",
        computed_at=datetime(2026, 11, 20, 13, 5, tzinfo=UTC), periods=[],
    )  # fmt: skip
    zone = domain.site_zone(
        zone_name, site_id="urssaf-guadeloupe", network="urssaf", default="Europe/Paris"
    )
    return domain.site_feed(
        snapshot, domain.SiteChoice(("nps",)), floor=30,
        periods=("rolling_90d", "previous_rolling_90d"), zone=zone,
    )  # fmt: skip


def test_updated_at_reads_as_the_guadeloupe_wall_clock_not_paris():
    view = _view("America/Guadeloupe")
    assert view["timezone"] == "America/Guadeloupe"
    assert view["updated_at_text"] == {"date": "20 novembre 2026", "time": f"9{NBSP}h{NBSP}05"}
    assert view["updated_at"] == "2026-11-20T09:05:00-04:00"  # the same instant, local
    paris = _view("Europe/Paris")
    assert paris["updated_at_text"]["time"] == f"14{NBSP}h{NBSP}05"


def test_the_open_data_row_carries_the_sites_local_time():
    view = _view("America/Guadeloupe")
    view["current"]["indicators"] = [{
        "id": "nps", "label": "NPS", "type": "nps", "published": False,
        "period": {"id": "rolling_90d", "start": "2026-08-23", "end": "2026-11-20"},
        "withheld_reason": "résultats en cours de collecte",
    }]  # fmt: skip
    [row] = domain.open_data_rows([view])
    assert row["date_mise_a_jour"] == "2026-11-20T09:05:00-04:00"


@pytest.mark.parametrize(
    ("told", "site_id", "network", "expected"),
    [
        (None, "urssaf-guadeloupe", "urssaf", "America/Guadeloupe"),  # older events: default
        (None, "agence-1", "cgss-reunion", "Indian/Reunion"),
        ("Europe/Paris", "urssaf-guadeloupe", "urssaf", "Europe/Paris"),  # the rules win
        (None, "urssaf-paris", "urssaf", "Europe/Brussels"),  # the service's display zone
    ],
)
def test_a_sites_zone_is_the_one_told_else_the_shared_default(told, site_id, network, expected):
    zone = domain.site_zone(told, site_id=site_id, network=network, default="Europe/Brussels")
    assert zone.key == expected
