"""Admin API: survey rules per network and site (audited), and erasure requests for a user.

Protected by the shared OpenID Connect admin access (plumbing.auth): a network administrator
manages their network's rules and erasures; a site manager the rules of their own sites.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import UserErased
from contracts.topics import SURVEY_INVITATION, USER_ERASED
from plumbing.auth import NETWORK_ADMIN, AdminAuth, Principal, TokenVerifier, require_site
from plumbing.outbox import enqueue
from survey_dispatch import domain, repository
from survey_dispatch.settings import DispatchSettings

NETWORK_DEFAULTS = ""  # the site_id of a network's default rules
SOURCE = "/survey-dispatch"
log = logging.getLogger(__name__)


class ErasureRequest(BaseModel):
    user_ref: Annotated[str, Field(min_length=1, max_length=200)]


async def _admin(request: Request) -> Principal:
    """The verified caller, through the app's AdminAuth (built from the settings in create_app)."""
    auth: AdminAuth = request.app.state.admin_auth
    return await auth(request)


Admin = Annotated[Principal, Depends(_admin)]


def new_admin_auth(settings: DispatchSettings) -> AdminAuth:
    return AdminAuth(TokenVerifier.from_settings(settings))


def admin_router(pool: Callable[[], asyncpg.Pool], pseudonym: Callable[[str], str]) -> APIRouter:
    router = APIRouter(prefix="/admin/v1", tags=["admin"])

    @router.get("/networks/{network}/rules")
    async def network_rules(network: str, caller: Admin) -> dict[str, Any]:
        _require_network_admin(caller, network)
        return await _read_rules(pool(), network, NETWORK_DEFAULTS)

    @router.put("/networks/{network}/rules")
    async def put_network_rules(
        network: str, caller: Admin, rules: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        _require_network_admin(caller, network)
        return await _write_rules(pool(), network, NETWORK_DEFAULTS, rules, caller)

    @router.get("/networks/{network}/sites/{site_id}/rules")
    async def site_rules(network: str, site_id: str, caller: Admin) -> dict[str, Any]:
        await _require_site_in_network(pool(), caller, network, site_id)
        return await _read_rules(pool(), network, site_id)

    @router.put("/networks/{network}/sites/{site_id}/rules")
    async def put_site_rules(
        network: str, site_id: str, caller: Admin, rules: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        await _require_site_in_network(pool(), caller, network, site_id)
        return await _write_rules(pool(), network, site_id, rules, caller)

    @router.post("/networks/{network}/erasures")
    async def erase(network: str, request: ErasureRequest, caller: Admin) -> dict[str, Any]:
        """Right to erasure: everything held about the user in this network goes. Their opt-out
        stays, as an HMAC only, so that erasing them never makes us contact them again."""
        _require_network_admin(caller, network)
        user_pseudo_id = pseudonym(request.user_ref)
        erasure = UserErased(
            erasure_id=f"era-{uuid.uuid4().hex}", network=network,
            user_pseudo_id=user_pseudo_id, requested_at=utc_now(),
        )  # fmt: skip
        async with pool().acquire() as conn, conn.transaction():
            erased = await repository.erase_user(
                conn, network=network, user_pseudo_id=user_pseudo_id
            )
            await repository.record_erasure(
                conn, erasure_id=erasure.erasure_id, network=network,
                requested_by=caller.subject, requested_at=erasure.requested_at,
                invitations_erased=erased,
            )  # fmt: skip
            # responses and scoring erase that user's answers on receipt (same topic as the
            # invitations they already consume, keyed by network: the user has no site).
            await enqueue(
                conn, topic=SURVEY_INVITATION.name, key=network,
                event=CloudEvent[UserErased](
                    id=new_event_id(), source=SOURCE, type=USER_ERASED.type,
                    time=erasure.requested_at, subject=network, data=erasure,
                ),
            )  # fmt: skip
        log.info(
            "user erased",
            extra={"erasure_id": erasure.erasure_id, "network": network,
                   "requested_by": caller.subject, "invitations_erased": erased},
        )  # fmt: skip
        return {
            "network": network, "erasure_id": erasure.erasure_id,
            "invitations_erased": erased,
        }  # fmt: skip

    @router.get("/networks/{network}/erasures")
    async def erasures(network: str, caller: Admin) -> dict[str, Any]:
        """The erasure audit: who asked, when, how much went (never whom it was about)."""
        _require_network_admin(caller, network)
        async with pool().acquire() as conn:
            rows = await repository.erasure_audit(conn, network=network)
        return {
            "network": network,
            "erasures": [
                {**dict(row), "requested_at": row["requested_at"].isoformat()} for row in rows
            ],
        }

    return router


def _require_network_admin(caller: Principal, network: str) -> None:
    if NETWORK_ADMIN not in caller.roles or caller.network != network:
        raise HTTPException(403, "only this network's administrators may do this")


async def _require_site_in_network(
    pool: asyncpg.Pool, caller: Principal, network: str, site_id: str
) -> None:
    """A network administrator manages any site of their network. A site manager only their
    own sites, and only under their network: the token's `network` when it names one, else
    the network the site's contacts come from (a site seen in no network, or in another
    one, is not theirs to configure here)."""
    require_site(caller, site_id=site_id, network=network)
    if NETWORK_ADMIN in caller.roles and caller.network == network:
        return
    if caller.network is not None:
        if caller.network != network:
            raise HTTPException(403, "this site is not yours to manage in this network")
        return
    async with pool.acquire() as conn:
        networks = await repository.site_networks(conn, site_id=site_id)
    if networks != {network}:
        raise HTTPException(403, "this site is not yours to manage in this network")


async def _read_rules(pool: asyncpg.Pool, network: str, site_id: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await repository.rules_row(conn, network=network, site_id=site_id)
        network_rules, site_rules = await repository.rules_for(
            conn, network=network, site_id=site_id
        )
        audit = await repository.rules_audit(conn, network=network, site_id=site_id)
    try:  # rules stored before combinations were checked may not combine: say so, no 500
        effective: dict[str, Any] | None = _as_json(
            domain.effective_rules(network_rules, site_rules, network=network, site_id=site_id)
        )
        problem = None
    except (ValueError, TypeError) as error:
        effective, problem = None, f"these rules do not combine: {error}"
    return {
        "network": network,
        "site_id": site_id or None,
        "rules": row["rules"] if row else {},
        "updated_at": row["updated_at"].isoformat() if row else None,
        "updated_by": row["updated_by"] if row else None,
        "effective": effective,
        "problem": problem,
        "audit": [
            {**dict(entry), "changed_at": entry["changed_at"].isoformat()} for entry in audit
        ],
    }


async def _write_rules(
    pool: asyncpg.Pool, network: str, site_id: str, rules: dict[str, Any], caller: Principal
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        await repository.lock_rules(conn)  # two valid changes must not make a bad pair
        stored = await repository.all_rules(conn, network=network)
        problem = domain.rules_problem(
            {**stored, (network, site_id): rules}, changed=(network, site_id)
        )
        if problem is not None:  # refuse a rule that would fail later, in the middle of a send
            raise HTTPException(422, f"invalid rules: {problem}")
        await repository.set_rules(
            conn, network=network, site_id=site_id, rules=rules, changed_by=caller.subject
        )
    return await _read_rules(pool, network, site_id)


def _as_json(rules: domain.Rules) -> dict[str, Any]:
    return {
        name: sorted(value) if isinstance(value, frozenset) else value
        for name, value in vars(rules).items()
    }
