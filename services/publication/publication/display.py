"""The reception-hall screen. Whatever goes wrong, the public sees a calm page, never an error."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from publication import domain
from publication.feeds import SiteFeeds
from publication.settings import PublicationSettings

log = logging.getLogger(__name__)
PACKAGE = Path(__file__).parent
STATIC_DIR = PACKAGE / "static"
STATIC_URL = "/static/publication"
SITE_ID = re.compile(r"^[A-Za-z0-9._:@/-]{1,120}$")

# Everything from our origin; no inline script or style, so no 'unsafe-inline'. DSFR's logo
# draws the Marianne from a data: SVG.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def asset_versions() -> dict[str, str]:
    """A content hash per static file, so their URLs change with them and can be cached long."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in STATIC_DIR.iterdir()
        if path.is_file()
    }


def display_router(*, settings: PublicationSettings, feeds: SiteFeeds, zone: tzinfo) -> APIRouter:
    router = APIRouter()
    pages = Environment(
        loader=FileSystemLoader(PACKAGE / "templates"), autoescape=select_autoescape(["html"])
    )
    versions = asset_versions()
    template = pages.get_template("display.html")

    def asset(name: str) -> str:
        return f"{STATIC_URL}/{name}?v={versions.get(name, '0')}"

    def updated_text(view: dict[str, Any] | None) -> str:
        if view is None:
            return ""
        site_zone = ZoneInfo(view["timezone"])  # the site's own clock, not the server's
        moment = datetime.fromisoformat(view["updated_at"]).astimezone(site_zone)
        text = view["updated_at_text"]
        if moment.date() == datetime.now(site_zone).date():
            return f"Mis à jour à {text['time']}"
        return f"Mis à jour le {text['date']} à {text['time']}"

    service_worker_script = (STATIC_DIR / "sw.js").read_bytes()

    # Before /display/{site_id}, which would take "sw.js" for a site. Served from /display/ so
    # that the worker's scope covers the screens' pages.
    @router.get("/display/sw.js", include_in_schema=False)
    async def service_worker() -> Response:
        return Response(
            service_worker_script, media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )  # fmt: skip

    @router.get("/display/{site_id}", response_class=HTMLResponse, include_in_schema=False)
    async def display(site_id: str) -> HTMLResponse:
        view = None
        if SITE_ID.match(site_id):
            try:
                rendered = await feeds.site(site_id)
                view = rendered.view if rendered else None
            except Exception:  # the screen still shows the engagements, and reconnects
                log.exception("display without figures", extra={"site_id": site_id})
        figures = view["current"]["indicators"] if view else []
        previous = {
            figure["id"]: figure
            for figure in (view["previous"]["indicators"] if view else [])
            if figure["published"]
        }
        html = template.render(
            view=view, site_id=site_id if SITE_ID.match(site_id) else "",
            figures=figures, previous=previous,
            display=view["display"] if view else domain.DisplaySettings().as_json(),
            engagements=domain.ENGAGEMENTS, engagements_header=domain.ENGAGEMENTS_HEADER,
            updated_text=updated_text(view), results_site=settings.results_site,
            timezone=view["timezone"] if view else settings.display_timezone,
            heartbeat_seconds=settings.sse_heartbeat_seconds,
            asset=asset, rendered_at=datetime.now(zone).isoformat(),
        )  # fmt: skip
        return HTMLResponse(html, headers=PAGE_HEADERS)

    return router
