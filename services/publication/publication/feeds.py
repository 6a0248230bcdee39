"""Public feeds rendered once and kept in memory, so a screen's poll costs no database query.

Each rendered body is kept with its gzip form and its entity tag. An entry is replaced when
Postgres notifies that its site changed (see `live.ChangeListener`); a version stamp per key
makes sure a slow build that started before the change never overwrites the newer entry.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge

from publication import domain, repository
from publication.settings import PublicationSettings

DB_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Rendered:
    """One representation, ready to send: bytes, gzip bytes and the entity tag they share."""

    tag: str
    body: bytes
    gzipped: bytes
    media_type: str
    view: dict[str, Any] | None = None  # the public feed a site's page and SSE are made from


def render_json(view: Any) -> Rendered:
    body = json.dumps(view, ensure_ascii=False, separators=(",", ":")).encode()
    return Rendered(
        tag=domain.entity_tag(body), body=body, gzipped=gzip.compress(body, 6, mtime=0),
        media_type="application/json", view=view if isinstance(view, dict) else None,
    )  # fmt: skip


def render_csv(rows: Iterable[dict[str, str]]) -> Rendered:
    # `;` and UTF-8, as French open-data portals publish; dot decimals, so tools parse numbers.
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=domain.OPEN_DATA_COLUMNS, delimiter=";",
                            lineterminator="\r\n")  # fmt: skip
    writer.writeheader()
    writer.writerows(rows)
    body = text.getvalue().encode()
    return Rendered(
        tag=domain.entity_tag(body), body=body, gzipped=gzip.compress(body, 6, mtime=0),
        media_type="text/csv; charset=utf-8",
    )  # fmt: skip


class RenderedCache:
    """Entries built on first use; concurrent misses share one build. At most `max_entries` are
    kept, the least recently used going first: keys come from requests, so memory must not
    grow with what clients ask for."""

    def __init__(self, *, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Rendered] = OrderedDict()
        self._versions: dict[str, int] = {}
        self._epoch = 0
        self._building: dict[str, asyncio.Task[Rendered | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: str) -> Rendered | None:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    async def get(
        self, key: str, build: Callable[[], Awaitable[Rendered | None]]
    ) -> Rendered | None:
        hit = self.peek(key)
        if hit is not None:
            return hit
        task = self._building.get(key)
        if task is None:
            stamp = self._stamp(key)

            async def run() -> Rendered | None:
                return await build()

            task = asyncio.ensure_future(run())
            self._building[key] = task
            task.add_done_callback(lambda done: self._settle(key, stamp, done))
        return await asyncio.shield(task)

    def put(self, key: str, rendered: Rendered | None) -> None:
        self.invalidate(key)
        if rendered is not None:
            self._store(key, rendered)

    def invalidate(self, key: str) -> None:
        if len(self._versions) >= self.max_entries and key not in self._versions:
            # A new epoch voids every build in flight, so the stamps can start afresh.
            self._versions.clear()
            self._epoch += 1
        self._versions[key] = self._versions.get(key, 0) + 1
        self._entries.pop(key, None)
        self._building.pop(key, None)

    def _store(self, key: str, rendered: Rendered) -> None:
        self._entries[key] = rendered
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._building.clear()

    def _stamp(self, key: str) -> tuple[int, int]:
        return self._epoch, self._versions.get(key, 0)

    def _settle(
        self, key: str, stamp: tuple[int, int], task: asyncio.Task[Rendered | None]
    ) -> None:
        if self._building.get(key) is task:
            del self._building[key]
        if task.cancelled() or task.exception() is not None:
            return
        rendered = task.result()
        if rendered is not None and stamp == self._stamp(key):
            self._store(key, rendered)


@dataclass(frozen=True)
class Catalogue:
    """The sites that have figures and their networks: the only keys a public feed is built,
    and cached, for. Anything else is answered 404 without a query."""

    sites: frozenset[str]
    networks: frozenset[str]


class FeedMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.builds = Counter(
            "publication_feed_builds_total", "Feeds rendered from the database, by kind",
            ["kind"], registry=registry,
        )  # fmt: skip
        self.cached = Gauge(
            "publication_feed_cache_entries", "Rendered feeds kept in memory, by cache",
            ["cache"], registry=registry,
        )  # fmt: skip


class SiteFeeds:
    """The public feeds of this service: per site, per network (JSON) and the open-data CSV."""

    def __init__(
        self, *, settings: PublicationSettings, pool: Callable[[], asyncpg.Pool], zone: tzinfo,
        metrics: FeedMetrics,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.pool = pool
        self.zone = zone
        self.metrics = metrics
        self._sites = RenderedCache(max_entries=settings.feed_cache_max_sites)
        # Network feeds and CSV exports: any site change voids them.
        self._bulk = RenderedCache(max_entries=settings.feed_cache_max_bulk)
        self._catalogue: Catalogue | None = None
        self._catalogue_build: asyncio.Task[Catalogue] | None = None
        self._catalogue_epoch = 0
        metrics.cached.labels("sites").set_function(lambda: len(self._sites))
        metrics.cached.labels("bulk").set_function(lambda: len(self._bulk))

    async def catalogue(self) -> Catalogue:
        """Known sites and networks, read once after each change; concurrent misses share it."""
        if self._catalogue is not None:
            return self._catalogue
        task = self._catalogue_build
        if task is None:
            epoch = self._catalogue_epoch
            task = asyncio.ensure_future(self._build_catalogue())
            self._catalogue_build = task

            def settle(done: asyncio.Task[Catalogue]) -> None:
                if self._catalogue_build is done:
                    self._catalogue_build = None
                if done.cancelled() or done.exception() is not None:
                    return
                if epoch == self._catalogue_epoch:
                    self._catalogue = done.result()

            task.add_done_callback(settle)
        return await asyncio.shield(task)

    def cached_site(self, site_id: str) -> Rendered | None:
        return self._sites.peek(site_id)

    async def site(self, site_id: str) -> Rendered | None:
        """The site's feed; None (nothing cached, no query) for a site without figures."""
        hit = self._sites.peek(site_id)
        if hit is not None:
            return hit
        if site_id not in (await self.catalogue()).sites:
            return None
        return await self._sites.get(site_id, lambda: self._build_site(site_id))

    def cached_network(self, network: str) -> Rendered | None:
        return self._bulk.peek(f"json:{network}")

    async def network(self, network: str) -> Rendered | None:
        """The network's feed; None for a network without any site (nothing cached)."""
        key = f"json:{network}"
        hit = self._bulk.peek(key)
        if hit is not None:
            return hit
        if network not in (await self.catalogue()).networks:
            return None
        return await self._bulk.get(key, lambda: self._build_network(network))

    async def open_data(self, network: str | None) -> Rendered | None:
        """The CSV of a network, or of all when `network` is None; None for an unknown network."""
        key = f"csv:{network or '*'}"
        hit = self._bulk.peek(key)
        if hit is not None:
            return hit
        if network is not None and network not in (await self.catalogue()).networks:
            return None
        return await self._bulk.get(key, lambda: self._build_csv(network))

    async def reload(self, site_ids: list[str]) -> dict[str, Rendered | None]:
        """Rebuild the feeds of sites that changed, in one query; returns them for the screens."""
        self._bulk.clear()
        self._forget_catalogue()
        for site_id in site_ids:
            self._sites.invalidate(site_id)
        async with self.pool().acquire(timeout=DB_TIMEOUT_SECONDS) as conn:
            rows = await repository.site_snapshots(conn, site_ids=site_ids)
        self.metrics.builds.labels("site").inc(len(rows))
        rendered: dict[str, Rendered | None] = dict.fromkeys(site_ids)
        for row in rows:
            rendered[row["site_id"]] = render_json(self.view_of(row))
        for site_id, feed in rendered.items():
            self._sites.put(site_id, feed)
        return rendered

    def forget_all(self) -> None:
        """After missed notifications (listener reconnected), nothing cached can be trusted."""
        self._sites.clear()
        self._bulk.clear()
        self._forget_catalogue()

    def _forget_catalogue(self) -> None:
        self._catalogue = None
        self._catalogue_build = None
        self._catalogue_epoch += 1

    async def _build_catalogue(self) -> Catalogue:
        async with self.pool().acquire(timeout=DB_TIMEOUT_SECONDS) as conn:
            rows = await repository.site_catalogue(conn)
        self.metrics.builds.labels("catalogue").inc()
        return Catalogue(
            sites=frozenset(row["site_id"] for row in rows),
            networks=frozenset(row["network"] for row in rows),
        )

    def view_of(self, row: asyncpg.Record) -> dict[str, Any]:
        snapshot = domain.Snapshot(
            site_id=row["site_id"], site_name=row["site_name"], network=row["network"],
            computed_at=row["computed_at"], periods=row["payload"]["periods"],
        )  # fmt: skip
        choice = domain.SiteChoice(
            indicators=tuple(row["chosen"] or self.settings.default_indicators),
            display=domain.DisplaySettings.from_json(row["display"]),
        )
        zone = domain.site_zone(  # the site's own clock, as scoring's event told it
            row["payload"].get("site_timezone"), site_id=row["site_id"], network=row["network"],
            default=self.settings.display_timezone,
        )  # fmt: skip
        return domain.site_feed(
            snapshot, choice, floor=self.settings.public_floor,
            periods=self.settings.periods_of(row["network"]), zone=zone,
        )  # fmt: skip

    async def _build_site(self, site_id: str) -> Rendered | None:
        async with self.pool().acquire(timeout=DB_TIMEOUT_SECONDS) as conn:
            row = await repository.site_snapshot(conn, site_id=site_id)
        self.metrics.builds.labels("site").inc()
        return render_json(self.view_of(row)) if row is not None else None

    async def _views(self, network: str | None) -> list[dict[str, Any]]:
        async with self.pool().acquire(timeout=DB_TIMEOUT_SECONDS) as conn:
            rows = await repository.network_snapshots(conn, network=network)
        return [self.view_of(row) for row in rows]

    async def _build_network(self, network: str) -> Rendered:
        self.metrics.builds.labels("network").inc()
        return render_json({"network": network, "sites": await self._views(network)})

    async def _build_csv(self, network: str | None) -> Rendered:
        self.metrics.builds.labels("open_data").inc()
        return render_csv(domain.open_data_rows(await self._views(network)))
