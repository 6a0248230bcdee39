"""Site managers' choices: which indicators a site publishes and how its screen behaves.

Every change is recorded (who, when, before, after) in the same transaction as the change, and
notified so screens show it at once.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from plumbing.auth import AdminAuth, Principal, require_site
from publication import domain, repository
from publication.public_api import SiteId
from publication.settings import PublicationSettings

ThemeIndicator = Annotated[str, Field(pattern=domain.THEME_INDICATOR.pattern)]
IndicatorId = domain.FixedIndicator | ThemeIndicator


class DisplaySettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engagements: bool = Field(True, description="Show the Services Publics+ engagements.")
    rotation_seconds: int = Field(12, ge=5, le=300, description="Seconds per engagement.")
    show_previous: bool = Field(True, description="Show the previous period beside each figure.")


class SiteSettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    indicators: list[IndicatorId] = Field(
        min_length=1, max_length=domain.MAX_CHOSEN_INDICATORS,
        description="Published indicators, in display order (nps, satisfaction, ces, ...).",
    )  # fmt: skip
    display: DisplaySettingsBody = Field(default_factory=DisplaySettingsBody)

    @field_validator("indicators")
    @classmethod
    def _known_and_unique(cls, indicators: list[str]) -> list[str]:
        if unknown := domain.unknown_indicators(indicators):
            raise ValueError(f"unknown indicators: {', '.join(unknown)}")
        if len(set(indicators)) != len(indicators):
            raise ValueError("an indicator is listed twice")
        return indicators


class SiteSettingsView(BaseModel):
    site_id: str
    indicators: list[str]
    display: DisplaySettingsBody
    is_default: bool
    updated_at: datetime | None = None
    updated_by: str | None = None


class AuditEntry(BaseModel):
    id: int
    site_id: str
    changed_at: datetime
    actor: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any]


def admin_router(
    *, settings: PublicationSettings, pool: Callable[[], asyncpg.Pool], auth: AdminAuth
) -> APIRouter:
    router = APIRouter(prefix="/admin/v1", tags=["administration"])
    # Resolved at runtime by FastAPI: this module leaves out `from __future__ import annotations`
    # so that the local alias is a real object, not a string looked up in the module.
    Admin = Annotated[Principal, Depends(auth)]

    def settings_json(row: asyncpg.Record | None) -> dict[str, Any]:
        if row is None:
            return {"indicators": list(settings.default_indicators),
                    "display": domain.DisplaySettings().as_json()}  # fmt: skip
        return {"indicators": list(row["indicators"]),
                "display": domain.DisplaySettings.from_json(row["display"]).as_json()}  # fmt: skip

    def view(site_id: str, row: asyncpg.Record | None) -> SiteSettingsView:
        return SiteSettingsView(
            site_id=site_id, **settings_json(row), is_default=row is None,
            updated_at=row["updated_at"] if row else None,
            updated_by=row["updated_by"] if row else None,
        )  # fmt: skip

    async def authorize(conn: Any, principal: Principal, site_id: str) -> None:
        network = await repository.site_network(conn, site_id=site_id)
        require_site(principal, site_id=site_id, network=network)

    @router.get("/me", summary="Who the token says I am")
    async def me(principal: Admin) -> dict[str, Any]:
        return principal.as_json()

    @router.get(
        "/sites/{site_id}/settings", summary="A site's published indicators and screen settings",
        responses={401: {"description": "Jeton absent, invalide ou expiré."},
                   403: {"description": "Ce site n'est pas le vôtre."}},
    )  # fmt: skip
    async def get_settings(site_id: SiteId, principal: Admin) -> SiteSettingsView:
        async with pool().acquire() as conn:
            await authorize(conn, principal, site_id)
            return view(site_id, await repository.site_settings(conn, site_id=site_id))

    @router.put(
        "/sites/{site_id}/settings", summary="Choose a site's published indicators and settings",
        responses={401: {"description": "Jeton absent, invalide ou expiré."},
                   403: {"description": "Ce site n'est pas le vôtre."}},
    )  # fmt: skip
    async def put_settings(
        site_id: SiteId, body: SiteSettingsBody, principal: Admin
    ) -> SiteSettingsView:
        after = body.model_dump(mode="json")
        async with pool().acquire() as conn, conn.transaction():
            await authorize(conn, principal, site_id)
            current = await repository.site_settings_for_update(conn, site_id=site_id)
            before = settings_json(current) if current is not None else None
            if before != after:
                await repository.save_site_settings(
                    conn, site_id=site_id, indicators=body.indicators,
                    display=after["display"], updated_by=principal.subject,
                )  # fmt: skip
                await repository.record_settings_change(
                    conn, site_id=site_id, actor_subject=principal.subject,
                    actor_name=principal.name, actor_roles=sorted(principal.roles),
                    before=before, after=after,
                )  # fmt: skip
                await repository.notify_site_changed(conn, site_id=site_id)
            saved = await repository.site_settings(conn, site_id=site_id)
        return view(site_id, saved)

    @router.get(
        "/sites/{site_id}/settings/audit", summary="A site's settings changes, newest first",
        responses={401: {"description": "Jeton absent, invalide ou expiré."},
                   403: {"description": "Ce site n'est pas le vôtre."}},
    )  # fmt: skip
    async def audit(
        site_id: SiteId, principal: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> list[AuditEntry]:
        async with pool().acquire() as conn:
            await authorize(conn, principal, site_id)
            rows = await repository.settings_audit(conn, site_id=site_id, limit=limit)
        return [
            AuditEntry(
                id=row["id"],
                site_id=row["site_id"],
                changed_at=row["changed_at"],
                actor={
                    "subject": row["actor_subject"],
                    "name": row["actor_name"],
                    "roles": list(row["actor_roles"]),
                },
                before=row["before"],
                after=row["after"],
            )
            for row in rows
        ]

    return router
