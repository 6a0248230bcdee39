"""Each manager sees their own sites (issue #15): the manager-to-sites mapping and its admin API.

A network administrator (plumbing.auth) puts, reads and deletes the managers of their network:
`PUT /admin/v1/networks/{network}/managers/{manager_id}` with `{"email": ..., "sites": [...]}`
(or `"scope": "network"` for regional staff, who see every site of the network; `"scope": "all"`
for national staff, only from a network listed in settings.national_networks). Every change is
audited (who, when, before, after: the manager's own address at most) in the transaction that
makes it.

The boundary is PostgreSQL (migration 0191): each manager has a login role `mgr_<manager_id>`
that reads only the `scoring_managers` views, filtered by `current_user` through this mapping.
Its password is derived from settings.manager_password_key (an HMAC of the role name), so the
Grafana provisioning generator (deploy/grafana/managers.py) derives the same one from the same
secret; the database receives a SCRAM-SHA-256 verifier only, never the password, and nothing
logs either. The weekly e-mail's recipients come from the same mapping (weekly_report).
"""

# No `from __future__ import annotations`: FastAPI must see the local `Admin` alias as an object.

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request, Response

from plumbing.auth import NETWORK_ADMIN, AdminAuth, Principal
from scoring import repository
from scoring.api import ERRORS
from scoring.settings import ScoringSettings

log = logging.getLogger(__name__)

SCOPES = ("sites", "network", "all")
MAX_SITES = 500
MANAGER_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
SITE_ID = re.compile(r"^[A-Za-z0-9._:@/-]{1,120}$")
# One plain address (no display name, no list): what the weekly e-mail's To: header gets.
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{LABEL}(?:\.{LABEL})+$")
SCRAM_ITERATIONS = 4096


class InvalidManager(ValueError):
    """The request body or id is not acceptable: a 422 with this (French) message."""


@dataclass(frozen=True)
class ManagerSpec:
    """A validated PUT: what the mapping will hold."""

    email: str
    scope: str
    sites: tuple[str, ...]


def login_role(manager_id: str) -> str:
    """The manager's PostgreSQL login role (cluster-wide name; the prefix marks it as ours)."""
    return f"mgr_{manager_id}"


def check_manager_id(manager_id: str) -> str:
    if not MANAGER_ID.fullmatch(manager_id):
        raise InvalidManager(
            "identifiant de gestionnaire invalide : 2 à 40 caractères, minuscules, chiffres et _, "
            "commençant par une lettre (ex. dupont_m)"
        )
    return manager_id


def manager_spec(body: object) -> ManagerSpec:
    """Validate a PUT body: {"email": str, "scope": "sites"|"network"|"all", "sites": [str]}."""
    if not isinstance(body, Mapping):
        raise InvalidManager('objet JSON attendu : {"email": ..., "sites": [...]}')
    unknown = sorted(set(body) - {"email", "scope", "sites"})
    if unknown:
        raise InvalidManager(f"champ(s) inconnu(s) : {', '.join(map(str, unknown))}")
    email = body.get("email")
    if not isinstance(email, str) or len(email) > 254 or not EMAIL.fullmatch(email):
        raise InvalidManager(
            "adresse électronique invalide (une seule adresse, ex. nom@exemple.fr)"
        )
    scope = body.get("scope", "sites")
    if scope not in SCOPES:
        raise InvalidManager("portée invalide : « sites », « network » ou « all »")
    sites = body.get("sites", [])
    if not isinstance(sites, list) or not all(isinstance(site, str) for site in sites):
        raise InvalidManager("« sites » doit être une liste d'identifiants de sites")
    if scope == "sites" and not sites:
        raise InvalidManager("au moins un site est attendu pour la portée « sites »")
    if scope != "sites" and sites:
        raise InvalidManager(f"la portée « {scope} » ne prend pas de liste de sites")
    if len(sites) > MAX_SITES:
        raise InvalidManager(f"au plus {MAX_SITES} sites par gestionnaire")
    bad = [site for site in sites if not SITE_ID.fullmatch(site)]
    if bad:
        raise InvalidManager(f"identifiant de site invalide : {bad[0][:120]!r}")
    if len(set(sites)) != len(sites):
        raise InvalidManager("un site figure deux fois dans la liste")
    return ManagerSpec(email=email, scope=scope, sites=tuple(sorted(sites)))


def derive_password(key: str, role: str) -> str:
    """The role's database password: HMAC-SHA256 of its name under the shared secret."""
    digest = hmac.new(key.encode(), role.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def scram_verifier(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677), so the clear
    password never reaches the server."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def report_recipients(
    mapped: Mapping[str, Sequence[str]], fallback: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """The weekly e-mail's recipients: a site's mapped managers; the static setting only for a
    site no manager sees (a site nobody is mapped to would otherwise get no report at all)."""
    recipients = {site: list(emails) for site, emails in mapped.items() if emails}
    for site, emails in fallback.items():
        if site not in recipients and emails:
            recipients[site] = list(emails)
    return dict(sorted(recipients.items()))


def site_problems(
    sites: Sequence[str], known: Mapping[str, str], network: str
) -> tuple[list[str], list[str]]:
    """(sites scoring has never heard of, sites of another network) among `sites`."""
    unknown = [site for site in sites if site not in known]
    foreign = [site for site in sites if site in known and known[site] != network]
    return unknown, foreign


DEV_PASSWORD_KEY = "dev-manager-password-key"
PUT_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Un rôle PostgreSQL de ce nom existe et n'est pas un gestionnaire."},
    422: {"description": "Identifiant, adresse, portée ou site invalide (message en français)."},
    503: {"description": "MANAGER_PASSWORD_KEY non configurée (production)."},
}


def password_key(settings: ScoringSettings) -> str | None:
    """The secret the roles' passwords derive from; a development key outside production."""
    if settings.manager_password_key is not None:
        return settings.manager_password_key.get_secret_value()
    return None if settings.environment == "production" else DEV_PASSWORD_KEY


# --------------------------------------------------------------------------- HTTP


def managers_router(settings: ScoringSettings, auth: AdminAuth) -> APIRouter:
    router = APIRouter(prefix="/admin/v1/networks/{network}/managers", tags=["admin"])
    Admin = Annotated[Principal, Depends(auth)]
    Network = Annotated[str, Path(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9._:@/-]+$")]
    ManagerId = Annotated[str, Path(min_length=1, max_length=120)]
    key = password_key(settings)

    @router.get("", responses=ERRORS)
    async def list_managers(request: Request, network: Network, caller: Admin) -> dict[str, Any]:
        """The network's managers, their sites and login roles (never a password)."""
        _require_network_admin(caller, network)
        async with request.app.state.runtime.db_pool.acquire() as conn:
            rows = await repository.managers_of_network(conn, network=network)
        return {"network": network, "managers": [_manager_json(row) for row in rows]}

    @router.get("/{manager_id}", responses=ERRORS)
    async def get_manager(
        request: Request, network: Network, manager_id: ManagerId, caller: Admin
    ) -> dict[str, Any]:
        """One manager with the audit of their changes."""
        _require_network_admin(caller, network)
        _valid_id(manager_id)
        pool = request.app.state.runtime.db_pool
        row = await _own_row(pool, network, manager_id)
        if row is None:
            raise HTTPException(404, "gestionnaire inconnu")
        return await _with_audit(pool, row)

    @router.put("/{manager_id}", responses={**ERRORS, **PUT_ERRORS})
    async def put_manager(
        request: Request, network: Network, manager_id: ManagerId, caller: Admin,
        body: Annotated[Any, Body(examples=[{"email": "nom@exemple.fr", "sites": ["s1"]}])],
    ) -> dict[str, Any]:  # fmt: skip
        """Create or replace a manager: their weekly e-mail address and the sites they see
        (`scope` "sites", the default), or every site of the network (`scope` "network"), or
        every site (`scope` "all", national staff). Creates or updates their database role.
        Audited; takes effect on the boards' next query."""
        _require_network_admin(caller, network)
        _valid_id(manager_id)
        if key is None:
            raise HTTPException(
                503, "MANAGER_PASSWORD_KEY n'est pas configurée : aucun rôle ne peut être créé"
            )
        try:
            spec = manager_spec(body)
        except InvalidManager as error:
            raise HTTPException(422, str(error)) from None
        if spec.scope == "all" and network not in settings.national_networks:
            raise HTTPException(403, "la portée « all » est réservée à l'administration nationale")
        pool = request.app.state.runtime.db_pool
        role = login_role(manager_id)
        verifier = scram_verifier(derive_password(key, role), _salt(key, role))
        async with pool.acquire() as conn, conn.transaction():
            existing = await repository.manager_row(conn, manager_id=manager_id)
            if existing is not None and existing["network"] != network:
                raise HTTPException(403, "ce gestionnaire relève d'un autre réseau")
            known = await repository.networks_of_sites(conn, site_ids=spec.sites)
            unknown, foreign = site_problems(spec.sites, known, network)
            if foreign:
                raise HTTPException(403, f"site d'un autre réseau : {foreign[0]}")
            if unknown:
                raise HTTPException(422, f"site inconnu de scoring : {unknown[0]}")
            try:
                await repository.put_manager(
                    conn, manager_id=manager_id, network=network, email=spec.email,
                    scope=spec.scope, sites=spec.sites, login_role=role,
                    password_verifier=verifier, changed_by=caller.subject,
                )  # fmt: skip
            except asyncpg.DuplicateObjectError:
                raise HTTPException(
                    409, f"le rôle {role} existe déjà et n'est pas celui d'un gestionnaire"
                ) from None
        log.info(
            "manager changed",
            extra={"manager_id": manager_id, "network": network, "changed_by": caller.subject},
        )
        row = await _own_row(pool, network, manager_id)
        assert row is not None
        return await _with_audit(pool, row)

    @router.delete("/{manager_id}", status_code=204, responses=ERRORS)
    async def delete_manager(
        request: Request, network: Network, manager_id: ManagerId, caller: Admin
    ) -> Response:
        """Remove a manager: their sites at once, then their database role. Audited."""
        _require_network_admin(caller, network)
        _valid_id(manager_id)
        pool = request.app.state.runtime.db_pool
        async with pool.acquire() as conn, conn.transaction():
            existing = await repository.manager_row(conn, manager_id=manager_id)
            if existing is None or existing["network"] != network:
                raise HTTPException(404, "gestionnaire inconnu")
            await repository.delete_manager(
                conn, manager_id=manager_id, network=network, changed_by=caller.subject
            )
        log.info(
            "manager removed",
            extra={"manager_id": manager_id, "network": network, "changed_by": caller.subject},
        )
        return Response(status_code=204)

    return router


def _require_network_admin(caller: Principal, network: str) -> None:
    if NETWORK_ADMIN not in caller.roles or caller.network != network:
        raise HTTPException(403, "réservé aux administrateurs de ce réseau")


def _valid_id(manager_id: str) -> None:
    try:
        check_manager_id(manager_id)
    except InvalidManager as error:
        raise HTTPException(422, str(error)) from None


def _salt(key: str, role: str) -> bytes:
    # Deterministic (a PUT that changes nothing rewrites the same verifier), secret-keyed.
    return hmac.new(key.encode(), b"salt:" + role.encode(), hashlib.sha256).digest()[:16]


async def _own_row(pool: asyncpg.Pool, network: str, manager_id: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await repository.manager_row(conn, manager_id=manager_id)
    return row if row is not None and row["network"] == network else None


async def _with_audit(pool: asyncpg.Pool, row: Mapping[str, Any]) -> dict[str, Any]:
    async with pool.acquire() as conn:
        audit = await repository.managers_audit(conn, manager_id=row["manager_id"])
    return {
        **_manager_json(row),
        "audit": [
            {**dict(entry), "changed_at": entry["changed_at"].isoformat()} for entry in audit
        ],
    }


def _manager_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "manager_id": row["manager_id"],
        "network": row["network"],
        "email": row["email"],
        "scope": row["scope"],
        "sites": list(row["sites"]),
        "login_role": row["login_role"],
        "updated_at": row["updated_at"].isoformat(),
        "updated_by": row["updated_by"],
    }
