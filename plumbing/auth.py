"""Admin access for every service: OpenID Connect bearer tokens checked against the issuer's JWKS.

A token is accepted when it is signed by a key of the issuer's JWKS (asymmetric algorithms only,
so a public key can never be used as an HMAC secret), is not expired, and names our issuer and
audience. Its claims give the principal:

- `roles` (or Keycloak's `realm_access.roles`): `site_manager` and/or `network_admin`;
- `site_ids`: the sites a site manager looks after;
- `network`: the network a network administrator looks after (or a CRM sends contacts of).

A CRM calling the ingest API holds a client-credentials token with the `crm_ingest` role and its
`network`: such a verifier is built with `roles=CRM_ROLES` (and its own audience), and admin
verifiers never see that role, nor an ingest verifier the admin ones.

A site manager may change only the sites listed in their token; a network administrator every
site of their network. Services ask `Principal.may_manage(site_id=..., network=...)`.

In dev and tests there is no identity provider: `LocalIssuer` holds an RSA key, writes its JWKS
to a file (`ADMIN_JWKS_URL=file:///...`) and mints tokens the verifier accepts.
`python -m plumbing.auth mint --role site_manager --site S` does it by hand (key kept in
`.devstack/admin`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from plumbing.settings import ServiceSettings

log = logging.getLogger(__name__)

SITE_MANAGER = "site_manager"
NETWORK_ADMIN = "network_admin"
ADMIN_ROLES = frozenset({SITE_MANAGER, NETWORK_ADMIN})
CRM_INGEST = "crm_ingest"
CRM_ROLES = frozenset({CRM_INGEST})
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
CLOCK_LEEWAY_SECONDS = 30


class AuthError(Exception):
    """The token is missing or not acceptable: the caller gets a 401 with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwksUnavailable(Exception):
    """The issuer's keys cannot be read now: the caller gets a 503, not a 401."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the token says."""

    subject: str
    name: str
    roles: frozenset[str]
    site_ids: frozenset[str] = frozenset()
    network: str | None = None

    def may_manage(self, *, site_id: str, network: str | None) -> bool:
        if NETWORK_ADMIN in self.roles and self.network is not None and self.network == network:
            return True
        return SITE_MANAGER in self.roles and site_id in self.site_ids

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "name": self.name,
            "roles": sorted(self.roles),
            "site_ids": sorted(self.site_ids),
            "network": self.network,
        }


def principal_from_claims(
    claims: Mapping[str, Any], *, accepted_roles: frozenset[str] = ADMIN_ROLES
) -> Principal:
    """The principal of verified claims, with only the `accepted_roles` it holds; malformed
    role claims count as no role at all."""
    realm_access = claims.get("realm_access")
    roles = claims.get("roles")
    if roles is None and isinstance(realm_access, Mapping):
        roles = realm_access.get("roles")
    site_ids = claims.get("site_ids")
    network = claims.get("network")
    subject = str(claims["sub"])
    return Principal(
        subject=subject,
        name=str(claims.get("preferred_username") or claims.get("email") or subject),
        roles=frozenset(_strings(roles)) & accepted_roles,
        site_ids=frozenset(_strings(site_ids)),
        network=network if isinstance(network, str) and network else None,
    )


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str) and item]


@dataclass
class JwksSource:
    """The issuer's public keys, fetched from `url` (https://, http:// or file://) and cached.

    Keys are refreshed after `max_age_seconds`, or sooner when a token names an unknown key id
    (the issuer rotated its keys) but never more often than `min_refresh_seconds`, so tokens with
    made-up key ids cannot make us hammer the issuer.
    """

    url: str
    max_age_seconds: float = 600.0
    min_refresh_seconds: float = 30.0
    timeout_seconds: float = 5.0
    transport: httpx.AsyncBaseTransport | None = None  # tests serve a JWKS without a network
    _keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    _fetched_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        age = time.monotonic() - self._fetched_at
        if age > self.max_age_seconds or (
            self._lookup(kid) is None and age > self.min_refresh_seconds
        ):
            await self._refresh()
        key = self._lookup(kid)
        if key is None:
            raise AuthError("unknown signing key")
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:  # a JWKS with a single key may be used without key ids
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < 1.0:  # another request just did it
                return
            try:
                document = await self._read()
                keys = jwt.PyJWKSet.from_dict(document).keys
            except (OSError, ValueError, httpx.HTTPError, jwt.PyJWTError) as error:
                if not self._keys:
                    raise JwksUnavailable(f"cannot read the JWKS at {self.url}: {error}") from error
                log.warning(
                    "JWKS refresh failed, keeping the keys we have", extra={"error": repr(error)}
                )
                self._fetched_at = time.monotonic()
                return
            self._keys = {
                key.key_id or f"key-{index}": key
                for index, key in enumerate(keys)
                if getattr(key, "public_key_use", None) in (None, "sig")
            }
            self._fetched_at = time.monotonic()

    async def _read(self) -> dict[str, Any]:
        parsed = urlparse(self.url)
        if parsed.scheme == "file":
            text = await asyncio.to_thread(Path(parsed.path).read_text, encoding="utf-8")
            document = json.loads(text)
        else:
            async with httpx.AsyncClient(
                timeout=self.timeout_seconds, transport=self.transport
            ) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
                response.raise_for_status()
                document = response.json()
        if not isinstance(document, dict):
            raise ValueError("a JWKS is a JSON object")
        return document


@dataclass
class TokenVerifier:
    jwks: JwksSource | None
    issuer: str
    audience: str
    leeway_seconds: int = CLOCK_LEEWAY_SECONDS
    roles: frozenset[str] = ADMIN_ROLES
    """The roles this verifier accepts; a token with none of them is refused (401)."""

    @classmethod
    def from_settings(
        cls,
        settings: ServiceSettings,
        *,
        audience: str | None = None,
        roles: frozenset[str] = ADMIN_ROLES,
    ) -> TokenVerifier:
        url = settings.admin_jwks_url
        if url and settings.environment == "production" and urlparse(url).scheme == "http":
            raise ValueError("ADMIN_JWKS_URL must be https:// (or a mounted file://) in production")
        return cls(
            jwks=JwksSource(url) if url else None,
            issuer=settings.admin_issuer,
            audience=audience or settings.admin_audience,
            roles=roles,
        )

    async def verify(self, token: str) -> Principal:
        if self.jwks is None:
            raise JwksUnavailable("admin access is not configured: set ADMIN_JWKS_URL")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise AuthError("malformed token") from error
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:  # refuses "none" and HMAC (key-confusion attacks)
            raise AuthError("unsigned token or unaccepted algorithm")
        kid = header.get("kid")
        key = await self.jwks.key_for(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise AuthError("token expired") from error
        except jwt.InvalidIssuerError as error:
            raise AuthError("wrong issuer") from error
        except jwt.InvalidAudienceError as error:
            raise AuthError("wrong audience") from error
        except jwt.PyJWTError as error:
            raise AuthError("invalid token") from error
        principal = principal_from_claims(claims, accepted_roles=self.roles)
        if not principal.roles:
            kind = "admin" if self.roles == ADMIN_ROLES else "accepted"
            raise AuthError(f"no {kind} role in the token")
        return principal


class AdminAuth:
    """A FastAPI dependency: the verified principal, or 401 (bad token) / 503 (no keys).

    Use it as `Annotated[Principal, Depends(AdminAuth(TokenVerifier.from_settings(settings)))]`
    (in a module without `from __future__ import annotations` when the alias is local: FastAPI
    must see the object, not a string); the site check (403, `require_site`) belongs to the
    route, which knows the site's network.
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        self._bearer = HTTPBearer(auto_error=False, description="OpenID Connect access token")

    async def __call__(self, request: Request) -> Principal:
        credentials: HTTPAuthorizationCredentials | None = await self._bearer(request)
        if credentials is None or not credentials.credentials:
            raise _unauthorized("missing bearer token")
        try:
            return await self.verifier.verify(credentials.credentials)
        except AuthError as error:
            raise _unauthorized(error.reason) from error
        except JwksUnavailable as error:
            log.error("admin token check impossible", extra={"error": str(error)})
            raise HTTPException(503, "admin access unavailable") from error


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail=reason,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
    )


def install_refusal_log(app: FastAPI) -> None:
    """Log every refused request (401, 403) with its reason and route template: who probes the
    admin API shows in the logs. Never the token, nor the path's values."""

    @app.exception_handler(HTTPException)
    async def refused(request: Request, error: HTTPException) -> Response:
        if error.status_code in (401, 403):
            route = request.scope.get("route")
            log.warning(
                "request refused",
                extra={
                    "status": error.status_code,
                    "reason": str(error.detail)[:200],
                    "method": request.method,
                    "route": getattr(route, "path", "(no route)"),
                },
            )
        return await http_exception_handler(request, error)


def require_site(principal: Principal, *, site_id: str, network: str | None) -> None:
    """403 unless the principal may manage this site."""
    if not principal.may_manage(site_id=site_id, network=network):
        raise HTTPException(403, "this site is not yours to manage")


# --------------------------------------------------------------------------- dev and tests


class LocalIssuer:
    """A signing key standing in for the identity provider in dev and tests."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        private_key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.private_key = private_key or rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        self.kid = kid or uuid.uuid4().hex[:16]

    @classmethod
    def from_settings(cls, settings: ServiceSettings, **options: Any) -> LocalIssuer:
        return cls(issuer=settings.admin_issuer, audience=settings.admin_audience, **options)

    @classmethod
    def load_or_create(cls, key_dir: Path, *, issuer: str, audience: str) -> LocalIssuer:
        """The key kept in `key_dir` (created on first use), so dev tokens survive restarts."""
        key_dir.mkdir(parents=True, exist_ok=True)
        key_path = key_dir / "signing-key.pem"
        if key_path.exists():
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{key_path} is not an RSA private key")
            local = cls(issuer=issuer, audience=audience, private_key=loaded, kid="dev-key")
        else:
            local = cls(issuer=issuer, audience=audience, kid="dev-key")
            pem = local.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            key_path.write_bytes(pem)
            key_path.chmod(0o600)
        local.write_jwks(key_dir / "jwks.json")
        return local

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {"keys": [public | {"kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def write_jwks(self, path: Path) -> str:
        """Write the JWKS and return the `file://` URL to put in ADMIN_JWKS_URL."""
        path.write_text(json.dumps(self.jwks()), encoding="utf-8")
        return path.resolve().as_uri()

    def mint(
        self,
        *,
        subject: str,
        roles: Iterable[str],
        site_ids: Iterable[str] = (),
        network: str | None = None,
        expires_in: int = 300,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "roles": list(roles),
            "site_ids": list(site_ids),
            "preferred_username": subject,
        }
        if network is not None:
            payload["network"] = network
        payload |= claims
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers={"kid": self.kid})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m plumbing.auth", description=__doc__)
    parser.add_argument("command", choices=["mint"])
    parser.add_argument("--key-dir", type=Path, default=Path(".devstack/admin"))
    parser.add_argument("--subject", default="dev-admin")
    parser.add_argument(
        "--role", action="append", choices=sorted(ADMIN_ROLES | CRM_ROLES), required=True
    )
    parser.add_argument("--site", action="append", default=[], help="a site id (site_manager)")
    parser.add_argument("--network", help="the network (network_admin, crm_ingest)")
    parser.add_argument("--audience", help="the token's audience (default: ADMIN_AUDIENCE)")
    parser.add_argument("--expires-in", type=int, default=8 * 3600)
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    local = LocalIssuer.load_or_create(
        args.key_dir,
        issuer=settings.admin_issuer,
        audience=args.audience or settings.admin_audience,
    )
    token = local.mint(
        subject=args.subject, roles=args.role, site_ids=args.site, network=args.network,
        expires_in=args.expires_in,
    )  # fmt: skip
    print(f"ADMIN_JWKS_URL={(args.key_dir / 'jwks.json').resolve().as_uri()}")
    print(token)


if __name__ == "__main__":
    main()
