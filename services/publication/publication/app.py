"""publication: per-site figures for reception-hall screens and the open-data feed."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import FastAPI
from fastapi.middleware import Middleware
from fastapi.middleware.gzip import GZipMiddleware

from contracts.topics import SITE_INDICATORS
from plumbing.assets import CachedStaticFiles, mount_dsfr
from plumbing.auth import AdminAuth, TokenVerifier
from plumbing.runtime import Runtime, service_app
from publication.admin import admin_router
from publication.consumer import handle_site_indicators
from publication.display import STATIC_DIR, STATIC_URL, display_router
from publication.feeds import FeedMetrics, SiteFeeds
from publication.live import ChangeListener, LiveMetrics, SiteHub, end_streams_on_termination
from publication.public_api import CachedFeedShortcut, feed_router
from publication.settings import PublicationSettings

SERVICE = "publication"


def create_app(settings: PublicationSettings) -> FastAPI:
    zone = ZoneInfo(settings.display_timezone)
    auth = AdminAuth(TokenVerifier.from_settings(settings))

    async def setup(runtime: Runtime, app: FastAPI) -> None:
        end_streams_on_termination(hub)
        listener = ChangeListener(
            dsn=settings.database_url, feeds=feeds, hub=hub, metrics=live_metrics,
            tracing=runtime.tracing,
        )  # fmt: skip
        app.state.change_listener = listener
        runtime.watch_listener(listener.listener)
        runtime.spawn("change-listener", listener.run)
        runtime.consume(
            [SITE_INDICATORS], handler=handle_site_indicators,
            replay_from_start=True,  # the read model is rebuilt from the compacted topic
            latest_per_key=True,  # a site's newest snapshot of each batch: the others are stale
        )  # fmt: skip

    app = service_app(
        settings=settings, service=SERVICE, schema="publication", title="publication",
        setup=setup, description="Résultats de qualité de service, par site.",
    )  # fmt: skip
    runtime: Runtime = app.state.runtime
    live_metrics = LiveMetrics(runtime.registry)
    feeds = SiteFeeds(
        settings=settings, pool=lambda: runtime.db_pool, zone=zone,
        metrics=FeedMetrics(runtime.registry),
    )  # fmt: skip
    hub = SiteHub(
        max_clients=settings.sse_max_clients,
        max_per_address=settings.sse_max_clients_per_address, metrics=live_metrics,
    )  # fmt: skip
    app.state.feeds, app.state.hub = feeds, hub

    # Feeds arrive pre-compressed (Content-Encoding set), which this middleware leaves alone;
    # it compresses the rest (pages, OpenAPI) and never the event stream.
    app.add_middleware(GZipMiddleware, minimum_size=500, compresslevel=6)
    # Appended, not added: innermost, so metrics and the rest of the stack still see it.
    app.user_middleware.append(
        Middleware(CachedFeedShortcut, feeds=feeds, max_age=settings.cache_max_age_seconds)
    )
    mount_dsfr(app)
    app.mount(STATIC_URL, CachedStaticFiles(directory=STATIC_DIR), name="publication-static")
    app.include_router(feed_router(settings=settings, feeds=feeds, hub=hub))
    app.include_router(display_router(settings=settings, feeds=feeds, zone=zone))
    app.include_router(admin_router(settings=settings, pool=lambda: runtime.db_pool, auth=auth))
    return app
