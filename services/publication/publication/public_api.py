"""The open feed: per site, per network, the open-data CSV and the per-site event stream."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from plumbing.web import client_address
from publication import domain
from publication.feeds import Rendered, SiteFeeds
from publication.live import (
    EventStream,
    SiteHub,
    busy_response,
    too_many_from_address_response,
)
from publication.settings import PublicationSettings

ID_PATTERN = r"^[A-Za-z0-9._:@/-]+$"  # contracts.events.Identifier
SiteId = Annotated[
    str,
    Path(min_length=1, max_length=120, pattern=ID_PATTERN, description="Identifiant du site"),
]
Network = Annotated[
    str, Query(min_length=1, max_length=120, pattern=ID_PATTERN, description="Réseau (ex. urssaf)")
]

UNKNOWN_SITE = {"error": "unknown_site", "message": "Site inconnu."}
UNKNOWN_NETWORK = {"error": "unknown_network", "message": "Réseau inconnu."}
NOT_FOUND_HEADERS = {"Cache-Control": "no-store"}
FEED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Le flux public (ETag, gzip)."},
    304: {"description": "Inchangé depuis l'ETag envoyé dans If-None-Match."},
}


def conditional(request: Request, rendered: Rendered, *, max_age: int) -> Response:
    """304 when the client has it; else the gzip or identity bytes, each with its own ETag."""
    status, headers, body = conditional_parts(
        rendered, max_age=max_age, accept_encoding=request.headers.get("accept-encoding"),
        if_none_match=request.headers.get("if-none-match"),
    )  # fmt: skip
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


def conditional_parts(
    rendered: Rendered, *, max_age: int, accept_encoding: str | None, if_none_match: str | None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    wants_gzip = domain.accepts_gzip(accept_encoding)
    etag = f'"{rendered.tag}-gzip"' if wants_gzip else f'"{rendered.tag}"'
    headers = [
        (b"cache-control", f"public, max-age={max_age}".encode()),
        (b"vary", b"Accept-Encoding"),
        (b"etag", etag.encode()),
    ]
    if domain.etag_matches(if_none_match, rendered.tag):
        return 304, headers, b""
    body = rendered.gzipped if wants_gzip else rendered.body
    if wants_gzip:
        headers.append((b"content-encoding", b"gzip"))
    headers += [
        (b"content-type", rendered.media_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    return 200, headers, body


READ_METHODS = ("GET", "HEAD")  # HEAD: harvesters and screens check the ETag without the body
FEED_ROUTE = "/v1/sites/{site_id}/indicators"
FEED_PATH = re.compile(r"^/v1/sites/([A-Za-z0-9._:@-]{1,120})/indicators$")
NETWORK_ROUTE = "/v1/indicators"
NETWORK_QUERY = re.compile(rb"^network=([A-Za-z0-9._:@-]{1,120})$")


class CachedFeedShortcut:
    """Pure ASGI, innermost middleware: a GET of a site or network feed that is in memory is
    answered here, without FastAPI's routing and parameter machinery, which otherwise cost as
    much as the rest of the request. Anything else (a miss, another path, another query) goes on
    to the FastAPI route, which validates it and fills the cache."""

    def __init__(self, app: ASGIApp, *, feeds: SiteFeeds, max_age: int) -> None:
        self.app = app
        self.feeds = feeds
        self.max_age = max_age
        # What HttpMetrics labels requests by, as if the route had answered.
        self.site_route = SimpleNamespace(path=FEED_ROUTE)
        self.network_route = SimpleNamespace(path=NETWORK_ROUTE)

    def _cached(self, scope: Scope) -> tuple[Rendered | None, SimpleNamespace]:
        if scope["path"] == NETWORK_ROUTE:
            query = NETWORK_QUERY.match(scope["query_string"])
            network = query.group(1).decode() if query else None
            return (self.feeds.cached_network(network) if network else None), self.network_route
        match = FEED_PATH.match(scope["path"])
        return (self.feeds.cached_site(match.group(1)) if match else None), self.site_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in READ_METHODS:
            rendered, route = self._cached(scope)
            if rendered is not None:
                headers = Headers(scope=scope)
                status, raw_headers, body = conditional_parts(
                    rendered, max_age=self.max_age,
                    accept_encoding=headers.get("accept-encoding"),
                    if_none_match=headers.get("if-none-match"),
                )  # fmt: skip
                scope["route"] = route
                await send({"type": "http.response.start", "status": status,
                            "headers": raw_headers})  # fmt: skip
                head = scope["method"] == "HEAD"  # same headers, Content-Length included
                await send({"type": "http.response.body", "body": b"" if head else body})
                return
        await self.app(scope, receive, send)


def feed_router(*, settings: PublicationSettings, feeds: SiteFeeds, hub: SiteHub) -> APIRouter:
    router = APIRouter(tags=["flux public"])
    max_age = settings.cache_max_age_seconds

    @router.api_route(
        "/v1/sites/{site_id}/indicators", methods=list(READ_METHODS),
        summary="Les indicateurs publiés d'un site",
        responses={**FEED_RESPONSES, 404: {"description": "Site inconnu."}},
    )  # fmt: skip
    async def site_indicators(site_id: SiteId, request: Request) -> Response:
        rendered = feeds.cached_site(site_id) or await feeds.site(site_id)
        if rendered is None:
            return JSONResponse(UNKNOWN_SITE, 404, headers=NOT_FOUND_HEADERS)
        return conditional(request, rendered, max_age=max_age)

    @router.api_route(
        "/v1/indicators",
        methods=list(READ_METHODS),
        summary="Tous les sites d'un réseau",
        responses={**FEED_RESPONSES, 404: {"description": "Réseau inconnu."}},
    )
    async def network_indicators(network: Network, request: Request) -> Response:
        rendered = await feeds.network(network)
        if rendered is None:
            return JSONResponse(UNKNOWN_NETWORK, 404, headers=NOT_FOUND_HEADERS)
        return conditional(request, rendered, max_age=max_age)

    @router.api_route(
        "/v1/open-data/export-indicateurs.csv", methods=list(READ_METHODS),
        summary="Export open data (CSV, séparateur ;)",
        responses={200: {"content": {"text/csv": {}}, "description": "Voir le README."},
                   404: {"description": "Réseau inconnu."}},
    )  # fmt: skip
    async def open_data(
        request: Request,
        network: Annotated[str | None, Query(min_length=1, max_length=120, pattern=ID_PATTERN,
                                             description="Réseau ; tous si absent")] = None,
    ) -> Response:  # fmt: skip
        rendered = await feeds.open_data(network)
        if rendered is None:
            return JSONResponse(UNKNOWN_NETWORK, 404, headers=NOT_FOUND_HEADERS)
        response = conditional(request, rendered, max_age=max_age)
        name = f"export-indicateurs-{network or 'tous'}.csv".replace('"', "")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    @router.get(
        "/v1/sites/{site_id}/events", summary="Flux d'événements (SSE) d'un site",
        response_class=Response,
        responses={200: {"content": {"text/event-stream": {}},
                         "description": "`event: indicators` (le flux du site), `event: ping`."},
                   429: {"description": "Trop de flux ouverts depuis cette adresse."},
                   503: {"description": "Trop d'écrans connectés à ce processus."}},
    )  # fmt: skip
    async def site_events(site_id: SiteId, request: Request) -> Any:
        # An unknown site streams too: a screen installed before its first figures comes alive
        # when they arrive. What it costs is bounded: streams per client address and in all.
        address = client_address(
            request.client.host if request.client else None,
            request.headers.getlist("x-forwarded-for"), trusted=settings.trusted_proxies,
        )  # fmt: skip
        if hub.draining.is_set() or hub.full():
            return busy_response()
        if hub.full_for(address):
            hub.metrics.refused.labels("per_address").inc()
            return too_many_from_address_response()
        return EventStream(
            hub=hub, feeds=feeds, site_id=site_id, address=address,
            last_event_id=request.headers.get("last-event-id"),
            heartbeat_seconds=settings.sse_heartbeat_seconds, retry_ms=settings.sse_retry_ms,
        )  # fmt: skip

    return router
