"""Pushing changes to screens: Postgres notifications in, server-sent events out.

A site's change (new figures from the consumer, new settings from an admin) commits with a
NOTIFY; every process LISTENs, rebuilds that site's feed once and hands it to the SSE clients of
the site. A slow screen never holds the others back: each client keeps only the newest feed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from plumbing.listener import Listener
from plumbing.tracing import Tracing
from publication.feeds import Rendered, SiteFeeds
from publication.repository import SITE_CHANGED_CHANNEL

log = logging.getLogger(__name__)


class LiveMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.clients = Gauge(
            "publication_sse_clients", "Screens connected to the event stream", registry=registry
        )
        self.pushes = Counter(
            "publication_sse_events_total", "Feeds pushed to screens", registry=registry
        )
        self.refused = Counter(
            "publication_sse_refused_total",
            "Event streams refused: `busy` (this process is full) or `per_address` (that client "
            "address already holds its share)", ["reason"], registry=registry,
        )  # fmt: skip
        self.notifications = Counter(
            "publication_change_notifications_total", "Site changes notified by Postgres",
            registry=registry,
        )  # fmt: skip


class TooManyClients(Exception):
    """This process holds as many streams as it may (503: another replica may take it)."""


class TooManyFromAddress(Exception):
    """This client address holds its share of streams already (429)."""


class Subscription:
    """One screen's mailbox: only the newest feed is kept."""

    def __init__(self, hub: SiteHub, site_id: str, address: str) -> None:
        self.hub = hub
        self.site_id = site_id
        self.address = address
        self._latest: Rendered | None = None
        self._wake = asyncio.Event()

    def offer(self, rendered: Rendered) -> None:
        self._latest = rendered
        self._wake.set()

    async def next(self, timeout: float) -> Rendered | None:
        """The newest feed, or None when `timeout` passes first or the process is stopping."""
        if self._latest is None and not self.hub.draining.is_set():
            waiters = [asyncio.ensure_future(self._wake.wait()),
                       asyncio.ensure_future(self.hub.draining.wait())]  # fmt: skip
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        latest, self._latest = self._latest, None
        self._wake.clear()
        return latest

    def close(self) -> None:
        self.hub.unsubscribe(self)


class SiteHub:
    """The screens connected to this process, by site."""

    def __init__(self, *, max_clients: int, max_per_address: int, metrics: LiveMetrics) -> None:
        self.max_clients = max_clients
        self.max_per_address = max_per_address
        self.metrics = metrics
        self.draining = asyncio.Event()
        self._by_site: dict[str, set[Subscription]] = {}
        self._by_address: dict[str, int] = {}  # no key without a stream: bounded by max_clients
        self._count = 0

    def full(self) -> bool:
        return self._count >= self.max_clients

    def full_for(self, address: str) -> bool:
        return self._by_address.get(address, 0) >= self.max_per_address

    def subscribe(self, site_id: str, address: str) -> Subscription:
        if self.full():
            self.metrics.refused.labels("busy").inc()
            raise TooManyClients
        if self.full_for(address):
            self.metrics.refused.labels("per_address").inc()
            raise TooManyFromAddress
        subscription = Subscription(self, site_id, address)
        self._by_site.setdefault(site_id, set()).add(subscription)
        self._by_address[address] = self._by_address.get(address, 0) + 1
        self._count += 1
        self.metrics.clients.set(self._count)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        members = self._by_site.get(subscription.site_id)
        if members is None or subscription not in members:
            return
        members.discard(subscription)
        if not members:
            del self._by_site[subscription.site_id]
        held = self._by_address.pop(subscription.address, 1) - 1
        if held > 0:
            self._by_address[subscription.address] = held
        self._count -= 1
        self.metrics.clients.set(self._count)

    def sites(self) -> list[str]:
        return list(self._by_site)

    def publish(self, site_id: str, rendered: Rendered) -> None:
        for subscription in self._by_site.get(site_id, ()):
            subscription.offer(rendered)

    def drain(self) -> None:
        """End every stream now; EventSource clients reconnect (to another replica)."""
        self.draining.set()


def end_streams_on_termination(hub: SiteHub) -> None:
    """Event streams never finish by themselves, and uvicorn waits for open responses before
    it stops: chain the server's SIGTERM/SIGINT handlers so the streams end first."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(hub.drain)
            if callable(previous):
                previous(number, frame)

        signal.signal(signum, handler)


def busy_response() -> Response:
    return JSONResponse({"error": "busy", "message": "Trop d'écrans connectés, réessayez."}, 503,
                        headers={"Retry-After": "5"})  # fmt: skip


def too_many_from_address_response() -> Response:
    return JSONResponse(
        {"error": "too_many_streams",
         "message": "Trop de flux ouverts depuis cette adresse : fermez-en un, puis réessayez."},
        429, headers={"Retry-After": "30", "Cache-Control": "no-store"},
    )  # fmt: skip


class EventStream(Response):
    """`text/event-stream` for one site: the current feed at once (unless the client already
    has it, per Last-Event-ID), then every change, and a `ping` event when nothing happens so
    the screen can tell a quiet stream from a dead one."""

    def __init__(
        self, *, hub: SiteHub, feeds: SiteFeeds, site_id: str, address: str,
        last_event_id: str | None, heartbeat_seconds: float, retry_ms: int,
    ) -> None:  # fmt: skip
        super().__init__(media_type="text/event-stream")
        self.hub = hub
        self.feeds = feeds
        self.site_id = site_id
        self.address = address
        self.last_sent = last_event_id
        self.heartbeat_seconds = heartbeat_seconds
        self.retry_ms = retry_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:  # before reading: no change slips by
            subscription = self.hub.subscribe(self.site_id, self.address)
        except TooManyClients:
            await busy_response()(scope, receive, send)
            return
        except TooManyFromAddress:
            await too_many_from_address_response()(scope, receive, send)
            return
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),  # nginx ingress: do not buffer the stream
            ]})  # fmt: skip
            async with anyio.create_task_group() as group:
                group.start_soon(self._until_disconnected, receive, group.cancel_scope.cancel)
                await self._stream(send, subscription)
                group.cancel_scope.cancel()
        except OSError:
            pass  # the screen went away mid-write
        finally:
            subscription.close()

    async def _stream(self, send: Send, subscription: Subscription) -> None:
        async def chunk(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        await chunk(f"retry: {self.retry_ms}\n\n")
        try:
            current = await self.feeds.site(self.site_id)
        except Exception:
            log.exception("feed unavailable for a new stream", extra={"site_id": self.site_id})
            current = None
        if current is not None:
            await self._push(chunk, current)
        while not self.hub.draining.is_set():
            update = await subscription.next(self.heartbeat_seconds)
            if self.hub.draining.is_set():
                break
            if update is None:
                await chunk("event: ping\ndata: {}\n\n")
            else:
                await self._push(chunk, update)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _push(self, chunk: Callable[[str], Any], rendered: Rendered) -> None:
        if rendered.tag == self.last_sent:
            return
        # JSON from json.dumps has no raw newline, so the whole feed fits one `data:` line.
        await chunk(f"id: {rendered.tag}\nevent: indicators\ndata: {rendered.body.decode()}\n\n")
        self.last_sent = rendered.tag
        self.hub.metrics.pushes.inc()

    @staticmethod
    async def _until_disconnected(receive: Receive, stop: Callable[[], None]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        stop()


class ChangeListener:
    """LISTENs on a dedicated connection; rebuilds changed sites in batches, in order."""

    def __init__(
        self, *, dsn: str, feeds: SiteFeeds, hub: SiteHub, metrics: LiveMetrics,
        tracing: Tracing | None = None,
    ) -> None:  # fmt: skip
        self.dsn = dsn
        self.tracing = tracing if tracing is not None else Tracing()
        self._traces: dict[str, str] = {}  # site id -> traceparent of its latest change
        self.feeds = feeds
        self.hub = hub
        self.metrics = metrics
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        # Its own connection, re-opened by itself after a database restart (`/readyz` says
        # "listener publication-changes down" meanwhile); each open starts afresh.
        self.listener = Listener(
            dsn, {SITE_CHANGED_CHANNEL: self._on_notification}, name="publication-changes",
            on_listening=self._start_afresh,
        )  # fmt: skip

    @property
    def listening(self) -> asyncio.Event:
        return self.listener.up

    async def run(self) -> None:
        """Listens and rebuilds until cancelled; runs under `Runtime.spawn`."""
        tasks = {
            asyncio.ensure_future(self.listener.run()),
            asyncio.ensure_future(self._rebuild_forever()),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start_afresh(self) -> None:
        """Changes made while we were not listening were missed: rebuild every site shown."""
        self.feeds.forget_all()
        self._pending.update(self.hub.sites())
        self._wake.set()

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, site_id: object) -> None:
        self.metrics.notifications.inc()
        site, _, traceparent = str(site_id).partition(" ")
        self._pending.add(site)
        if traceparent:
            self._traces[site] = traceparent
        self._wake.set()

    async def _rebuild_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = sorted(self._pending), set()
            traces = {site: self._traces.pop(site) for site in batch if site in self._traces}
            if not batch:
                continue
            try:
                rebuilt = await self.feeds.reload(batch)
            except Exception:
                log.exception("rebuilding changed feeds failed", extra={"sites": len(batch)})
                self.feeds.forget_all()
                await asyncio.sleep(1.0)
                self._pending.update(batch)
                self._wake.set()
                continue
            for site_id, rendered in rebuilt.items():
                if rendered is not None:
                    with self.tracing.span(
                        "push site indicators", parent=traces.get(site_id),
                        attributes={"site.id": site_id},
                    ):  # fmt: skip
                        self.hub.publish(site_id, rendered)
