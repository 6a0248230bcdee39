"""Each manager sees their own sites (issue #15), through a real scoring process and database: a
manager's own PostgreSQL login reads their sites' rows and none of another site's, through every
reporting view and with hand-written SQL; the audited admin API's changes take effect at once;
the weekly e-mail goes to the mapped managers (real SMTP sink)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from scoring import managers, weekly_report
from scoring.settings import ScoringSettings

from plumbing import db
from plumbing.auth import NETWORK_ADMIN, SITE_MANAGER, LocalIssuer, bearer
from plumbing.services import System, start_system
from plumbing.sinks import read_maildir
from plumbing.testing import async_wait_for

pytestmark = pytest.mark.integration

KEY = "key-for-the-managers-test"
WEEK = "2026-W47"
MONDAY = date(2026, 11, 16)
# site -> network; A and B are URSSAF's, C is the MSA's.
SITES = {"mgr-site-a": "urssaf", "mgr-site-b": "urssaf", "mgr-site-c": "msa"}
A, B, C = SITES


def admin_of(issuer: tuple[LocalIssuer, str], network: str) -> dict[str, str]:
    return bearer(issuer[0].mint(subject=f"admin-{network}", roles=[NETWORK_ADMIN],
                                 network=network))  # fmt: skip


@pytest.fixture(scope="module")
def scoring(
    stack: Any, issuer: tuple[LocalIssuer, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    system = start_system(
        stack.env(), tmp_path_factory.mktemp("scoring"), only=("scoring",),
        extra_env={"ADMIN_JWKS_URL": issuer[1], "MANAGER_PASSWORD_KEY": KEY,
                   "NATIONAL_NETWORKS": '["dgafp"]'},
    )  # fmt: skip
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
async def seeded(stack: Any, scoring: System) -> None:
    """Every reporting view has rows for each of the three sites; manager logins need SCRAM."""
    conn = await db.connect(stack.database_url, schema="scoring")
    try:
        for site, network in SITES.items():
            await seed_site(conn, site, network)
        # The devstack trusts every local login: make the managers' roles prove their password.
        hba = Path(await conn.fetchval("SHOW hba_file"))
        rule = "host all /^mgr_ 127.0.0.1/32 scram-sha-256\n"
        if rule not in hba.read_text():
            hba.write_text(rule + hba.read_text())
            await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def seed_site(conn: asyncpg.Connection, site: str, network: str) -> None:
    await conn.execute(
        "INSERT INTO sites (site_id, network, site_name) VALUES ($1, $2, $3)",
        site, network, f"Site {site}",
    )  # fmt: skip
    rows = [("__responses__", "1", 12), ("satisfaction_globale", "9", 12),
            ("recommandation", "3", 12), ("theme_clarte", "8", 12)]  # fmt: skip
    for item, value, count in rows:
        await conn.execute(
            # The site's day; its breakdown is the responses' facts, below (migration 0270).
            "INSERT INTO site_day_tallies (site_id, day, item, value, count) "
            "VALUES ($1, $2, $3, $4, $5)",
            site, MONDAY, item, value, count,
        )  # fmt: skip
    await conn.execute(
        "INSERT INTO invitation_tallies (site_id, day, channel, motif, count) "
        "VALUES ($1, $2, 'telephone', 'declaration', 20)",
        site, MONDAY,
    )  # fmt: skip
    closed_at = datetime.combine(MONDAY, datetime.min.time(), UTC) + timedelta(hours=9)
    await conn.execute(
        "INSERT INTO contacts (contact_id, site_id, network, user_pseudo_id, channel, motif, "
        "closed_at) VALUES ($1, $2, $3, $4, 'telephone', 'declaration', $5)",
        f"contact-{site}", site, network, f"user-{site}", closed_at,
    )  # fmt: skip
    for alert, handled_at, outcome in (
        ("open", None, None),
        ("handled", closed_at + timedelta(hours=3), "refus"),
    ):
        await conn.execute(
            "INSERT INTO alerts (alert_id, invitation_id, contact_id, site_id, network, reasons, "
            "answers, raised_at, handled_at, outcome) VALUES ($1, $1, $1, $2, $3, $4, $5, $6, $7, "
            "$8)",
            f"alert-{alert}-{site}", site, network, ["low_recommendation"], {"recommandation": 3},
            closed_at, handled_at, outcome,
        )  # fmt: skip
    for number in range(12):  # issue #15: a team's and a survey channel's week, at the floor
        key = f"response-{site}-{number}"
        await conn.execute(
            "INSERT INTO invitation_facts (invitation_id, site_id, survey_channel, sent_day, "
            "sent_at) VALUES ($1, $2, 'email', $3, $4)",
            key, site, MONDAY, closed_at,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO response_facts (response_id, invitation_id, site_id, day, answered_at, "
            "channel, motif, team, cells) VALUES ($1, $1, $2, $3, $4, 'telephone', "
            "'declaration', 'equipe-a', $5)",
            key, site, MONDAY, closed_at + timedelta(hours=1),
            {"__responses__": "1", "satisfaction_globale": "9", "recommandation": "3"},
        )  # fmt: skip
    await conn.execute(
        "INSERT INTO verbatims (response_id, site_id, day, channel, motif, text, satisfaction, "
        "recommandation, themes, tone) VALUES ($1, $2, $3, 'telephone', 'declaration', $4, 9, 3, "
        "'{delais}', 'irritant')",  # issue #17: tagged, so reporting_weekly_irritants has a row
        f"response-{site}", site, MONDAY, f"Verbatim du site {site}",
    )  # fmt: skip


async def manager_connection(stack: Any, manager_id: str, password: str | None = None):
    url = urlsplit(stack.database_url)
    role = managers.login_role(manager_id)
    return await asyncpg.connect(
        host="127.0.0.1", port=url.port, database=url.path.lstrip("/") or "postgres", user=role,
        password=password or managers.derive_password(KEY, role),
    )  # fmt: skip


@pytest.fixture
async def client(scoring: System, seeded: None) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=scoring["scoring"].url, timeout=10) as http:
        yield http


async def put(client: httpx.AsyncClient, issuer: Any, network: str, manager_id: str,
              body: object) -> httpx.Response:  # fmt: skip
    return await client.put(f"/admin/v1/networks/{network}/managers/{manager_id}", json=body,
                            headers=admin_of(issuer, network))  # fmt: skip


async def sites_seen(conn: asyncpg.Connection) -> dict[str, set[str]]:
    """Manager view -> the site ids its rows carry, read as the manager."""
    views = [row["table_name"] for row in await conn.fetch(
        "SELECT table_name FROM information_schema.views WHERE table_schema = 'scoring_managers' "
        "ORDER BY 1")]  # fmt: skip
    seen = {}
    for view in views:
        rows = await conn.fetch(f'SELECT DISTINCT site_id FROM scoring_managers."{view}"')
        seen[view] = {row["site_id"] for row in rows}
    return seen


async def test_a_manager_reads_their_sites_and_nothing_of_another_through_every_view(
    stack, client, issuer
):
    response = await put(client, issuer, "urssaf", "alice_a", {"email": "alice@exemple.fr",
                                                               "sites": [A]})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["login_role"] == "mgr_alice_a"

    owner = await db.connect(stack.database_url, schema="scoring")
    try:
        # Every reporting view Grafana reads that has a site has its filtered twin, and only
        # security_barrier twins exist.
        granted = {row["table_name"] for row in await owner.fetch(
            "SELECT table_name FROM information_schema.role_table_grants g "
            "JOIN information_schema.columns c USING (table_schema, table_name) "
            "WHERE g.grantee = 'grafana_reader' AND g.table_schema = 'scoring' "
            "AND c.column_name = 'site_id'")}  # fmt: skip
        twins = {row["relname"]: row["reloptions"] for row in await owner.fetch(
            "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'scoring_managers'")}  # fmt: skip
        assert set(twins) == granted
        assert all(options == ["security_barrier=true"] for options in twins.values())
        assert "reporting_verbatims" in twins and "reporting_weekly_changes" in twins
        seen_by_all = await sites_seen(owner)  # the owner is no manager: its mapping is empty
        assert all(not sites for sites in seen_by_all.values())
    finally:
        await owner.close()

    alice = await manager_connection(stack, "alice_a")
    try:
        seen = await sites_seen(alice)
        assert set(seen) == granted
        assert all(sites == {A} for sites in seen.values()), seen  # A's rows, in every view
        verbatims = await alice.fetch("SELECT verbatim FROM scoring_managers.reporting_verbatims")
        assert [row["verbatim"] for row in verbatims] == [f"Verbatim du site {A}"]
        figures = await alice.fetch(
            "SELECT value FROM scoring_managers.reporting_weekly_indicators "
            "WHERE indicator = 'satisfaction' AND week = $1", WEEK)  # fmt: skip
        assert [row["value"] for row in figures] == [100]
        # Hand-written SQL: asking for B, going around the views, or leaking through a function.
        assert (
            await alice.fetch(
                "SELECT * FROM scoring_managers.reporting_verbatims WHERE site_id = $1", B
            )
            == []
        )
        for sql in ("SELECT * FROM scoring.verbatims", "SELECT * FROM scoring.reporting_alerts",
                    "SELECT * FROM scoring.manager_visible_sites",
                    "SELECT * FROM scoring.reporting_verbatims"):  # fmt: skip
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await alice.fetch(sql)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await alice.execute(
                "CREATE FUNCTION public.leak(text) RETURNS boolean LANGUAGE sql AS 'SELECT true'"
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await alice.execute("SET ROLE grafana_reader")
    finally:
        await alice.close()

    with pytest.raises(asyncpg.InvalidPasswordError):  # the password is the derived one only
        await manager_connection(stack, "alice_a", password="not-the-password")


async def test_the_admin_apis_changes_take_effect_and_are_audited(stack, client, issuer):
    assert (
        await put(client, issuer, "urssaf", "bob_b", {"email": "bob@exemple.fr", "sites": [B]})
    ).status_code == 200
    bob = await manager_connection(stack, "bob_b")
    try:

        async def verbatim_sites() -> set[str]:
            rows = await bob.fetch("SELECT site_id FROM scoring_managers.reporting_verbatims")
            return {row["site_id"] for row in rows}

        assert await verbatim_sites() == {B}
        response = await put(client, issuer, "urssaf", "bob_b",
                             {"email": "bob@exemple.fr", "sites": [A, B]})  # fmt: skip
        assert response.status_code == 200 and response.json()["sites"] == [A, B]
        assert await verbatim_sites() == {A, B}  # the open session sees the change at once
        response = await put(client, issuer, "urssaf", "bob_b",
                             {"email": "bob.regional@exemple.fr", "scope": "network"})  # fmt: skip
        assert response.status_code == 200
        assert await verbatim_sites() == {A, B}  # URSSAF's sites, never the MSA's C

        response = await client.delete("/admin/v1/networks/urssaf/managers/bob_b",
                                       headers=admin_of(issuer, "urssaf"))  # fmt: skip
        assert response.status_code == 204
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # removed: even an open
            await verbatim_sites()  # session of theirs may read nothing any more
    finally:
        await bob.close()
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await manager_connection(stack, "bob_b")  # and the role is gone

    owner = await db.connect(stack.database_url, schema="scoring")
    try:
        audit = await owner.fetch(
            "SELECT changed_by, before, after FROM managers_audit WHERE manager_id = 'bob_b' "
            "ORDER BY id"
        )
    finally:
        await owner.close()
    assert [row["changed_by"] for row in audit] == ["admin-urssaf"] * 4
    assert audit[0]["before"] is None and audit[0]["after"]["sites"] == [B]
    assert audit[2]["after"] == {"email": "bob.regional@exemple.fr", "scope": "network",
                                 "sites": [], "login_role": "mgr_bob_b"}  # fmt: skip
    assert audit[3]["after"] is None
    assert "password" not in str([dict(row) for row in audit]).lower()


async def test_national_staff_read_every_site(stack, client, issuer):
    assert (
        await put(client, issuer, "urssaf", "nat_x", {"email": "n@exemple.fr", "scope": "all"})
    ).status_code == 403
    assert (
        await put(client, issuer, "dgafp", "nat_x", {"email": "n@exemple.fr", "scope": "all"})
    ).status_code == 200
    national = await manager_connection(stack, "nat_x")
    try:
        seen = await sites_seen(national)
        assert all(sites == set(SITES) for sites in seen.values())
        # ... and, as Grafana's all-sites reader, the services' own reporting views.
        rows = await national.fetch("SELECT DISTINCT site_id FROM scoring.reporting_verbatims")
        assert {row["site_id"] for row in rows} == set(SITES)
    finally:
        await national.close()


async def test_bad_requests_get_clear_4xx(client, issuer):
    ok = {"email": "x@exemple.fr", "sites": [A]}
    cases = [
        ("urssaf", "Bad-Id", ok, 422, "identifiant de gestionnaire invalide"),
        ("urssaf", "carol_c", {"email": "pas une adresse", "sites": [A]}, 422, "adresse"),
        ("urssaf", "carol_c", {"email": "x@exemple.fr", "sites": []}, 422, "au moins un site"),
        ("urssaf", "carol_c", {"email": "x@exemple.fr", "sites": ["inconnu"]}, 422,
         "site inconnu de scoring : inconnu"),
        ("urssaf", "carol_c", {"email": "x@exemple.fr", "sites": [C]}, 403, "autre réseau"),
        ("urssaf", "carol_c", {**ok, "password": "x"}, 422, "champ(s) inconnu(s) : password"),
        ("urssaf", "carol_c", ["x@exemple.fr"], 422, "objet JSON attendu"),
    ]  # fmt: skip
    for network, manager_id, body, status, words in cases:
        response = await put(client, issuer, network, manager_id, body)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["detail"], response.text
    # Another network's administrator, a site manager, no token.
    url = "/admin/v1/networks/urssaf/managers/carol_c"
    response = await client.put(url, json=ok, headers=admin_of(issuer, "msa"))
    assert response.status_code == 403
    manager = bearer(issuer[0].mint(subject="m", roles=[SITE_MANAGER], site_ids=[A]))
    assert (await client.put(url, json=ok, headers=manager)).status_code == 403
    assert (await client.put(url, json=ok)).status_code == 401
    response = await client.get(url, headers=admin_of(issuer, "urssaf"))
    assert response.status_code == 404 and response.json()["detail"] == "gestionnaire inconnu"


async def test_the_weekly_email_goes_to_the_mapped_managers(stack, client, issuer):
    assert (
        await put(client, issuer, "urssaf", "dan_d", {"email": "dan@exemple.fr", "sites": [A]})
    ).status_code == 200
    assert (
        await put(
            client, issuer, "urssaf", "eve_e", {"email": "eve@exemple.fr", "scope": "network"}
        )
    ).status_code == 200
    configured = ScoringSettings(
        database_url=stack.database_url, smtp_url=stack.smtp_url, weekly_report_week=WEEK,
        # The static setting is a fallback: A has managers, C has none.
        weekly_report_recipients={A: ["static@exemple.fr"], C: ["fallback.msa@exemple.fr"]},
    )  # fmt: skip
    await asyncio.to_thread(weekly_report.command, configured)

    def delivered() -> dict[str, set[str]] | None:
        mails = [m for m in read_maildir(stack.maildir) if WEEK in str(m["Subject"])]
        by_site = {}
        for mail in mails:
            site = next(s for s in SITES if f"Site {s}" in str(mail["Subject"]).replace("\n ", " "))
            by_site[site] = {address.strip() for address in str(mail["To"]).split(",")}
        return by_site if len(by_site) == 3 else None

    by_site = await async_wait_for(delivered, timeout=10)
    # alice_a (site A, from the first test) may still be mapped: A's managers, whoever they are.
    assert {"dan@exemple.fr", "eve@exemple.fr"} <= by_site[A]
    assert "static@exemple.fr" not in by_site[A]
    assert by_site[B] >= {"eve@exemple.fr"} and "dan@exemple.fr" not in by_site[B]
    assert by_site[C] == {"fallback.msa@exemple.fr"}


def manager_provisioning() -> Any:
    path = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "managers.py"
    spec = importlib.util.spec_from_file_location("grafana_managers", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_managers_board_runs_as_the_manager_and_shows_only_their_site(
    stack, client, issuer
):
    """Every SQL query of the board deploy/grafana/managers.py provisions, as the manager's own
    role: rows for their site; the same queries asked about another site: none."""
    response = await put(client, issuer, "urssaf", "fay_f", {"email": "f@exemple.fr",
                                                             "sites": [C]})  # fmt: skip
    assert response.status_code == 403  # C is the MSA's: the MSA's administrator maps it
    response = await client.put("/admin/v1/networks/msa/managers/fay_f",
                                json={"email": "f@exemple.fr", "sites": [C]},
                                headers=admin_of(issuer, "msa"))  # fmt: skip
    assert response.status_code == 200, response.text
    generator = manager_provisioning()
    board = generator.manager_board(generator.load_build().site_board())
    queries = [target["rawSql"] for panel in board["panels"] for target in panel["targets"]]
    queries += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]

    def substitute(sql: str, site: str, network: str) -> str:
        values = {"site": site, "network": network, "week": WEEK, "verbatim_filter": "",
                  "verbatim_theme": "tous", "verbatim_tone": "tous"}  # fmt: skip

        def value(match: re.Match[str]) -> str:  # `:sqlstring`: quoted, quotes doubled
            text = values[match.group(1)]
            return "'" + text.replace("'", "''") + "'" if match.group(2) else text

        return re.sub(r"\$\{(\w+)(?::(sqlstring))?\}", value, sql)

    fay = await manager_connection(stack, "fay_f")
    try:
        for sql in queries:
            assert await fay.fetch(substitute(sql, C, "msa")), sql
            rows = await fay.fetch(substitute(sql, A, "urssaf"))
            values = [value for row in rows for value in row.values()]
            if "${site}" in sql:  # nothing of A's: no row, or an aggregate of nothing
                assert all(value is None or value == 0 for value in values), sql
            else:  # the variables' lists: her site and network only
                assert A not in values and "urssaf" not in values, sql
    finally:
        await fay.close()
