"""Admin tokens: who is accepted, who is refused, and what each role may change."""

import json
from typing import Annotated

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from plumbing.auth import (
    NETWORK_ADMIN,
    SITE_MANAGER,
    AdminAuth,
    AuthError,
    JwksSource,
    JwksUnavailable,
    LocalIssuer,
    Principal,
    TokenVerifier,
    bearer,
    principal_from_claims,
    require_site,
)
from plumbing.settings import ServiceSettings

pytestmark = pytest.mark.unit

ISSUER, AUDIENCE = "https://idp.example/realms/enquetes", "enquetes-admin"


@pytest.fixture(scope="module")
def local() -> LocalIssuer:
    return LocalIssuer(issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def verifier(local, tmp_path) -> TokenVerifier:
    url = local.write_jwks(tmp_path / "jwks.json")
    return TokenVerifier(jwks=JwksSource(url), issuer=ISSUER, audience=AUDIENCE)


async def test_a_good_token_gives_the_principal(local, verifier):
    token = local.mint(subject="u1", roles=[SITE_MANAGER], site_ids=["a", "b"])
    principal = await verifier.verify(token)
    assert principal == Principal(
        subject="u1", name="u1", roles=frozenset({SITE_MANAGER}), site_ids=frozenset({"a", "b"})
    )


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": 1}, "token expired"),
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"aud": "another-app"}, "wrong audience"),
        ({"roles": ["viewer"]}, "no admin role"),
    ],
)
async def test_bad_claims_are_refused_with_a_reason(local, verifier, claims, reason):
    token = local.mint(**{"subject": "u1", "roles": [SITE_MANAGER], "site_ids": ["a"], **claims})
    with pytest.raises(AuthError, match=reason):
        await verifier.verify(token)


async def test_unsigned_hmac_and_foreign_tokens_are_refused(local, verifier):
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "x",
        "iat": 1,
        "exp": 4102444800,
        "roles": [NETWORK_ADMIN],
        "network": "urssaf",
    }
    forged = [
        jwt.encode(claims, None, algorithm="none"),
        # HMAC: with a public key as the secret, the classic key-confusion forgery
        jwt.encode(
            claims,
            "the-public-key-used-as-an-hmac-secret",
            algorithm="HS256",
            headers={"kid": local.kid},
        ),
        LocalIssuer(issuer=ISSUER, audience=AUDIENCE, kid=local.kid).mint(
            subject="x", roles=[NETWORK_ADMIN], network="urssaf"
        ),
        LocalIssuer(issuer=ISSUER, audience=AUDIENCE, kid="unknown-kid").mint(
            subject="x", roles=[NETWORK_ADMIN], network="urssaf"
        ),
        "not-a-jwt",
    ]
    for token in forged:
        with pytest.raises(AuthError):
            await verifier.verify(token)


def test_who_may_manage_which_site():
    manager = principal_from_claims({"sub": "m", "roles": [SITE_MANAGER], "site_ids": ["a"]})
    admin = principal_from_claims({"sub": "n", "roles": [NETWORK_ADMIN], "network": "urssaf"})
    assert manager.may_manage(site_id="a", network="urssaf")
    assert not manager.may_manage(site_id="b", network="urssaf")
    assert admin.may_manage(site_id="b", network="urssaf")
    assert not admin.may_manage(site_id="b", network="cnav")
    assert not admin.may_manage(site_id="b", network=None)  # an unknown site's network is no match
    # a network admin claim without a network gives nothing
    orphan = principal_from_claims({"sub": "o", "roles": [NETWORK_ADMIN]})
    assert not orphan.may_manage(site_id="a", network="urssaf")


def test_keycloak_realm_roles_and_malformed_claims():
    keycloak = principal_from_claims(
        {
            "sub": "k",
            "realm_access": {"roles": ["offline_access", SITE_MANAGER]},
            "site_ids": ["a", 3, None],
            "email": "k@example.fr",
        }
    )
    assert keycloak.roles == {SITE_MANAGER}
    assert keycloak.site_ids == {"a"}
    assert keycloak.name == "k@example.fr"
    assert principal_from_claims({"sub": "x", "roles": "network_admin"}).roles == frozenset()


async def test_keys_come_over_https_and_a_rotation_is_picked_up(local):
    rotated = LocalIssuer(issuer=ISSUER, audience=AUDIENCE)
    served = {"keys": local.jwks()["keys"]}
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json=served)

    source = JwksSource(
        "https://idp.example/jwks", min_refresh_seconds=0.0, transport=httpx.MockTransport(handler)
    )
    verifier = TokenVerifier(jwks=source, issuer=ISSUER, audience=AUDIENCE)
    await verifier.verify(local.mint(subject="a", roles=[SITE_MANAGER]))
    await verifier.verify(local.mint(subject="a", roles=[SITE_MANAGER]))
    assert calls == 1  # cached
    served["keys"] = served["keys"] + rotated.jwks()["keys"]
    source._fetched_at -= 5  # past the 1 s coalescing window
    await verifier.verify(rotated.mint(subject="b", roles=[SITE_MANAGER]))
    assert calls == 2


async def test_no_keys_at_all_is_unavailable_not_unauthorized(local, tmp_path):
    verifier = TokenVerifier(
        jwks=JwksSource((tmp_path / "absent.json").as_uri()), issuer=ISSUER, audience=AUDIENCE
    )
    with pytest.raises(JwksUnavailable):
        await verifier.verify(local.mint(subject="a", roles=[SITE_MANAGER]))
    with pytest.raises(JwksUnavailable):
        await TokenVerifier(jwks=None, issuer=ISSUER, audience=AUDIENCE).verify("x")


def test_production_refuses_plain_http_for_the_jwks():
    settings = ServiceSettings(
        environment="production", admin_jwks_url="http://idp/jwks", admin_issuer="https://idp"
    )
    with pytest.raises(ValueError, match="https"):
        TokenVerifier.from_settings(settings)


async def test_the_fastapi_dependency_answers_401_403_503(local, verifier):
    app = FastAPI()
    Admin = Annotated[Principal, Depends(AdminAuth(verifier))]

    @app.put("/sites/{site_id}")
    async def change(site_id: str, principal: Admin) -> dict[str, str]:
        require_site(principal, site_id=site_id, network="urssaf")
        return {"by": principal.subject}

    unconfigured = FastAPI()

    @unconfigured.get("/")
    async def root(
        principal: Annotated[
            Principal,
            Depends(AdminAuth(TokenVerifier(jwks=None, issuer=ISSUER, audience=AUDIENCE))),
        ],
    ) -> str:
        return principal.subject

    manager = bearer(local.mint(subject="m", roles=[SITE_MANAGER], site_ids=["a"]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.put("/sites/a", headers=manager)).json() == {"by": "m"}
        assert (await client.put("/sites/b", headers=manager)).status_code == 403
        refused = await client.put("/sites/a")
        assert refused.status_code == 401
        assert "Bearer" in refused.headers["www-authenticate"]
        expired = bearer(
            local.mint(subject="m", roles=[SITE_MANAGER], site_ids=["a"], expires_in=-3600)
        )
        assert (await client.put("/sites/a", headers=expired)).status_code == 401
    transport = httpx.ASGITransport(app=unconfigured)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/", headers=manager)).status_code == 503


def test_dev_key_survives_restarts_and_its_jwks_is_public_only(tmp_path):
    first = LocalIssuer.load_or_create(tmp_path, issuer=ISSUER, audience=AUDIENCE)
    second = LocalIssuer.load_or_create(tmp_path, issuer=ISSUER, audience=AUDIENCE)
    assert first.jwks() == second.jwks()
    published = json.loads((tmp_path / "jwks.json").read_text())
    assert {"d", "p", "q"}.isdisjoint(published["keys"][0])  # no private parts
    assert (tmp_path / "signing-key.pem").stat().st_mode & 0o077 == 0
