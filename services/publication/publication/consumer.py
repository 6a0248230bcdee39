"""Keeps the read model: the newest indicators snapshot of each site."""

from __future__ import annotations

from typing import Any

from contracts.envelope import CloudEvent
from contracts.events import SiteIndicatorsUpdated
from plumbing.db import Connection
from plumbing.tracing import current_traceparent
from publication import repository


async def handle_site_indicators(conn: Connection, topic: str, event: CloudEvent[Any]) -> None:
    update: SiteIndicatorsUpdated = event.data
    changed = await repository.upsert_site_indicators(
        conn,
        site_id=update.site_id,
        network=update.network,
        site_name=update.site_name,
        computed_at=update.computed_at,
        payload=update.model_dump(mode="json"),
    )
    if changed:  # delivered on commit, so screens never see a figure that could be rolled back
        trace = current_traceparent()  # the screen push continues the event's trace
        await repository.notify_site_changed(
            conn, site_id=update.site_id, traceparent=trace[0] if trace else None
        )
