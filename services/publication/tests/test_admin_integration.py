"""Site managers' choices through the real service: tokens, roles, audit, and the screens."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import jwt
import pytest
from httpx import AsyncClient

from plumbing.auth import NETWORK_ADMIN, SITE_MANAGER, LocalIssuer, bearer

pytestmark = pytest.mark.integration

SETTINGS = {
    "indicators": ["satisfaction", "nps"],
    "display": {"engagements": True, "rotation_seconds": 20, "show_previous": False},
}


@pytest.fixture(scope="module")
async def sites(publication, send, make_event, feed_when):
    """Two sites of one network and one of another, with figures."""
    await send(
        make_event("urssaf-lyon", {"nps": (30.0, 200), "satisfaction": (75.0, 210)}),
        make_event("urssaf-lille", {"nps": (20.0, 150)}),
        make_event("cnav-nantes", {"nps": (10.0, 120)}, network="cnav"),
    )
    for site in ("urssaf-lyon", "urssaf-lille", "cnav-nantes"):
        await feed_when(publication.url, site, lambda body: True, timeout=60)
    return publication


async def test_refuses_missing_unsigned_expired_and_foreign_tokens(sites, issuer):
    local, _ = issuer
    claims = {"roles": [NETWORK_ADMIN], "network": "urssaf"}
    unsigned = jwt.encode(
        {
            "iss": local.issuer,
            "aud": local.audience,
            "sub": "mallory",
            "iat": 0,
            "exp": 4102444800,
            **claims,
        },
        key=None,
        algorithm="none",
    )
    other_key = LocalIssuer(issuer=local.issuer, audience=local.audience, kid=local.kid)
    wrong_issuer = LocalIssuer(
        issuer="https://ailleurs.example/",
        audience=local.audience,
        private_key=local.private_key,
        kid=local.kid,
    )
    tokens = {
        "unsigned": unsigned,
        "expired": local.mint(
            subject="bob", roles=[NETWORK_ADMIN], network="urssaf", expires_in=-120
        ),
        "signed by another key": other_key.mint(subject="eve", **_admin()),
        "wrong issuer": wrong_issuer.mint(subject="eve", **_admin()),
        "garbage": "not.a.token",
    }
    async with AsyncClient(base_url=sites.url) as client:
        put = "/admin/v1/sites/urssaf-lyon/settings"
        response = await client.put(put, json=SETTINGS)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        for name, token in tokens.items():
            response = await client.put(put, json=SETTINGS, headers=bearer(token))
            assert response.status_code == 401, name
            audit = await client.get(f"{put}/audit", headers=bearer(token))
            assert audit.status_code == 401, name


async def test_a_site_manager_changes_only_their_sites_and_every_change_is_audited(
    sites, issuer, sse
):
    local, _ = issuer
    manager = bearer(
        local.mint(subject="claire.martin", roles=[SITE_MANAGER], site_ids=["urssaf-lyon"])
    )
    async with AsyncClient(base_url=sites.url) as client:
        own = "/admin/v1/sites/urssaf-lyon/settings"
        before = await client.get(own, headers=manager)
        assert before.status_code == 200
        assert before.json()["is_default"] is True

        async with sse(sites.url, "urssaf-lyon") as stream:
            await stream.next_event("indicators")
            changed = await client.put(own, json=SETTINGS, headers=manager)
            assert changed.status_code == 200, changed.text
            assert changed.json()["indicators"] == ["satisfaction", "nps"]
            pushed = await stream.next_event("indicators", timeout=5)
        assert [f["id"] for f in pushed["current"]["indicators"]] == ["satisfaction", "nps"]
        assert pushed["display"] == SETTINGS["display"]
        feed = (await client.get("/v1/sites/urssaf-lyon/indicators")).json()
        assert feed == pushed

        for foreign in ("urssaf-lille", "cnav-nantes", "site-inconnu"):
            refused = await client.put(
                f"/admin/v1/sites/{foreign}/settings", json=SETTINGS, headers=manager
            )
            assert refused.status_code == 403, foreign
            audit = await client.get(f"/admin/v1/sites/{foreign}/settings/audit", headers=manager)
            assert audit.status_code == 403, foreign

        same = await client.put(own, json=SETTINGS, headers=manager)
        assert same.status_code == 200  # no change, nothing to audit
        audit = await client.get(f"{own}/audit", headers=manager)
        assert audit.status_code == 200
        entries = audit.json()
        assert len(entries) == 1
        assert entries[0]["actor"]["subject"] == "claire.martin"
        assert entries[0]["actor"]["roles"] == [SITE_MANAGER]
        assert entries[0]["before"] is None  # defaults until then
        assert entries[0]["after"] == SETTINGS
        assert entries[0]["changed_at"]

        typo = await client.put(own, json={"indicators": ["npss"]}, headers=manager)
        assert typo.status_code == 422


async def test_a_network_admin_changes_every_site_of_the_network_and_no_other(sites, issuer):
    local, _ = issuer
    admin = bearer(local.mint(subject="admin.urssaf", **_admin()))
    async with AsyncClient(base_url=sites.url) as client:
        first = {"indicators": ["nps"], "display": {"engagements": False}}
        response = await client.put(
            "/admin/v1/sites/urssaf-lille/settings", json=first, headers=admin
        )
        assert response.status_code == 200, response.text
        second = {"indicators": ["nps", "satisfaction"]}
        response = await client.put(
            "/admin/v1/sites/urssaf-lille/settings", json=second, headers=admin
        )
        assert response.status_code == 200
        refused = await client.put(
            "/admin/v1/sites/cnav-nantes/settings", json=first, headers=admin
        )
        assert refused.status_code == 403
        entries = (
            await client.get("/admin/v1/sites/urssaf-lille/settings/audit", headers=admin)
        ).json()
        assert [e["after"]["indicators"] for e in entries] == [["nps", "satisfaction"], ["nps"]]
        assert entries[0]["before"] == entries[1]["after"]
        assert entries[1]["after"]["display"]["engagements"] is False
        me = (await client.get("/admin/v1/me", headers=admin)).json()
        assert me == {
            "subject": "admin.urssaf",
            "name": "admin.urssaf",
            "roles": [NETWORK_ADMIN],
            "site_ids": [],
            "network": "urssaf",
        }


async def _raw_put(url: str, path: str, head: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request over a plain socket, so the test chooses exactly what is sent: a
    client library would stream a declared body whole, and a server that refuses it early
    would reset the connection under it."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"PUT {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in head.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response.split(b"\r\n\r\n", 1)[1]


async def test_a_huge_settings_body_is_refused_before_it_is_parsed(sites, issuer):
    """An admin route read any body whole, then parsed it: now 413 past MAX_REQUEST_BODY_BYTES
    (64 KiB by default), from the declared length without waiting for the bytes, or as soon as
    a chunked body passes the cap."""
    local, _ = issuer
    admin = bearer(local.mint(subject="admin.urssaf", **_admin()))
    put = "/admin/v1/sites/urssaf-lyon/settings"
    json_head = {**admin, "Content-Type": "application/json"}
    async with AsyncClient(base_url=sites.url) as client:
        before = (await client.get(f"{put}/audit", headers=admin)).json()

    # 36 MB announced, none sent: the answer comes without the service waiting for them.
    status, body = await _raw_put(
        sites.url, put, {**json_head, "Content-Length": str(36 * 1024 * 1024)}, b""
    )
    assert status == 413
    assert "trop volumineuse" in body.decode()
    status, _ = await _raw_put(
        sites.url, put, {"Content-Type": "application/json", "Content-Length": "10000000"}, b""
    )
    assert status == 413  # before authentication too

    # Chunked: 72 KiB in 8 KiB chunks, then the end.
    piece = b"x" * 8192
    chunked = b"".join(b"2000\r\n" + piece + b"\r\n" for _ in range(9)) + b"0\r\n\r\n"
    status, _ = await _raw_put(
        sites.url, put, {**json_head, "Transfer-Encoding": "chunked"}, chunked
    )
    assert status == 413

    async with AsyncClient(base_url=sites.url) as client:
        after = (await client.get(f"{put}/audit", headers=admin)).json()
        fine = await client.put(put, json={"indicators": ["nps"]}, headers=admin)
    assert after == before
    assert fine.status_code == 200  # a normal body still goes through


def _admin() -> dict[str, object]:
    return {"roles": [NETWORK_ADMIN], "network": "urssaf"}
