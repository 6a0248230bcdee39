"""What a running service holds: its pool, its producer, its metrics and its background tasks.

Every service's `app.py` builds one in its FastAPI lifespan, so wiring lives in one place.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import (
    ProcessCollector as _ProcessCollector,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.topics import Topic
from plumbing import db
from plumbing.auth import install_refusal_log
from plumbing.consumer import ConsumerMetrics, EventConsumer
from plumbing.kafka import ensure_topics, new_producer
from plumbing.listener import Listener, NotifyCallback
from plumbing.outbox import OutboxMetrics, OutboxRelay
from plumbing.problems import install_problems
from plumbing.settings import ServiceSettings
from plumbing.tracing import ServerSpans, Tracing
from plumbing.web import BodyLimit

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: ServiceSettings, *, service: str, schema: str) -> None:
        self.settings = settings
        self.service = service
        self.schema = schema
        self.registry = CollectorRegistry()
        _ProcessCollector(registry=self.registry)
        self.tracing = Tracing.from_settings(
            service=service,
            endpoint=settings.otel_exporter_otlp_endpoint,
            traces_endpoint=settings.otel_exporter_otlp_traces_endpoint,
            service_name=settings.otel_service_name,
        )
        self.pool: asyncpg.Pool | None = None
        self.producer: AIOKafkaProducer | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._joined: dict[str, asyncio.Event] = {}
        self._listeners: dict[str, Listener] = {}
        self.task_restarts = Counter(
            "background_task_restarts_total",
            "Background tasks restarted after a crash",
            ["task"],
            registry=self.registry,
        )
        self.listener_up = Gauge(
            "database_listener_up",
            "1 while a LISTEN connection is open and listening, 0 while it is being re-opened",
            ["listener"],
            registry=self.registry,
        )

    async def start(self) -> None:
        self.pool = await db.create_pool(
            self.settings.database_url,
            schema=self.schema,
            max_size=self.settings.database_pool_size,
            reset_session=self.settings.database_reset_session,
        )
        self.producer = new_producer(self.settings, client_id=self.service)
        await self.producer.start()

    def start_outbox_relay(self) -> None:
        relay = OutboxRelay(
            pool=self.db_pool,
            producer=self.kafka_producer,
            metrics=OutboxMetrics(self.registry),
            linger_seconds=self.settings.outbox_linger_seconds,
            idle_poll_seconds=self.settings.outbox_poll_seconds,
        )
        self.watch_listener(relay.listener)
        self.spawn("outbox-relay", relay.run)

    def watch_listener(self, listener: Listener) -> None:
        """Report `listener` in `/readyz` (not ready while it is down) and in a gauge."""
        self._listeners[listener.name] = listener
        self.listener_up.labels(listener.name).set_function(lambda: float(listener.up.is_set()))

    def listen(
        self,
        name: str,
        channels: dict[str, NotifyCallback],
        *,
        on_listening: Callable[[], None] | None = None,
    ) -> Listener:
        """LISTEN on `channels` from a dedicated pooled connection that re-opens itself after a
        database restart (`on_listening` runs at each open: catch up with missed notifications)."""
        listener = Listener(self.db_pool, channels, name=name, on_listening=on_listening)
        self.watch_listener(listener)
        self.spawn(name, listener.run)
        return listener

    @property
    def db_pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "runtime not started"
        return self.pool

    @property
    def kafka_producer(self) -> AIOKafkaProducer:
        assert self.producer is not None, "runtime not started"
        return self.producer

    def spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` in the background; restart it with backoff if it crashes."""

        async def supervised() -> None:
            delay = 1.0
            while True:
                started = time.monotonic()
                cap = 30.0
                try:
                    await run()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        # Stopping: a cancellation that surfaced as another error (asyncpg,
                        # cancelled mid-query, may raise InternalClientError) still ends the
                        # task, or a SIGTERM never finishes draining.
                        raise asyncio.CancelledError from error
                    if is_unavailable(error):
                        # The database or broker is away: try again soon, so the task works
                        # again within seconds of its return, not after a long backoff.
                        cap = DEPENDENCY_RETRY_MAX_SECONDS
                        log.warning(
                            "background task lost a dependency, restarting",
                            extra={"task": name, "error_type": type(error).__name__,
                                   "retry_in": min(delay, cap)},
                        )  # fmt: skip
                    else:
                        log.exception(
                            "background task crashed", extra={"task": name, "retry_in": delay}
                        )
                    self.task_restarts.labels(name).inc()
                if time.monotonic() - started > 60:
                    delay = 1.0
                await asyncio.sleep(min(delay, cap))
                delay = min(delay * 2, cap)

        self._tasks[name] = asyncio.create_task(supervised(), name=name)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        if self.producer is not None:
            await self.producer.stop()
        if self.pool is not None:
            await self.pool.close()
        await asyncio.to_thread(self.tracing.shutdown)  # exports the spans still buffered

    def consume(self, topics: Sequence[Topic], **options: Any) -> EventConsumer:
        """The service's consumer, run in the background: its group is the service's name, and
        it writes with the runtime's pool and producer. `options` go to EventConsumer (the
        handler or batch_handler, and tuning)."""
        consumer = EventConsumer(
            settings=self.settings, group_id=self.service, topics=topics, pool=self.db_pool,
            producer=self.kafka_producer, metrics=ConsumerMetrics(self.registry),
            tracing=self.tracing, **options,
        )  # fmt: skip
        self.run_consumer(consumer)
        return consumer

    def run_consumer(self, consumer: EventConsumer, name: str = "consumer") -> None:
        """Run a consumer in the background; the service is not ready until it joined its
        group (Tansu takes ~5 s to answer a join), so callers never race the first events."""
        self._joined[name] = consumer.joined
        self.spawn(name, consumer.run)

    async def readiness(self) -> dict[str, Any]:
        problems = [f"task {name} stopped" for name, task in self._tasks.items() if task.done()]
        problems += [
            f"{name} has not joined its group"
            for name, joined in self._joined.items()
            if not joined.is_set()
        ]
        problems += [
            problem for listener in self._listeners.values() if (problem := listener.problem())
        ]
        try:
            async with self.db_pool.acquire(timeout=2) as connection:
                await connection.fetchval("SELECT 1")
        except Exception as error:
            problems.append(f"database: {type(error).__name__}")
        try:  # one metadata request: is any broker reachable?
            await asyncio.wait_for(self.kafka_producer.client.fetch_all_metadata(), 2)
        except Exception as error:
            problems.append(f"broker: {type(error).__name__}")
        return {"ready": not problems, "problems": problems}


class HttpMetrics:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware): requests by route and status."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration by route template",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.requests.labels(template, scope["method"], str(status)).inc()
            self.duration.labels(template).observe(time.perf_counter() - started)


RETRY_AFTER_SECONDS = 5
DEPENDENCY_RETRY_MAX_SECONDS = 1.0  # a background task that lost the database or the broker
# A dependency that is away (PostgreSQL, the broker): the request may succeed in a moment.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,  # a connect or a pool acquire that timed out (asyncio's too)
    socket.gaierror,  # the database's or broker's host name does not resolve (yet)
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError included
    asyncpg.CannotConnectNowError,  # starting up, shutting down, recovering
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NoBrokersAvailable,
    kafka_errors.NodeNotReadyError,
)
NETWORK_ERRNOS = frozenset(
    {errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ETIMEDOUT}
)
UNAVAILABLE_MESSAGE = "Le service est momentanément indisponible. Réessayez dans un moment."
UNAVAILABLE_PAGE = (
    '<!doctype html><html lang="fr"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Service momentanément indisponible</title></head><body><main>"
    f"<h1>Service momentanément indisponible</h1><p>{UNAVAILABLE_MESSAGE}</p></main></body></html>"
)


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` says a dependency is away (answer 503), not that the code is wrong."""
    if isinstance(error, BaseExceptionGroup):
        return all(is_unavailable(inner) for inner in error.exceptions)
    if isinstance(error, asyncpg.InterfaceError):
        # Only a connection closed under us; other interface errors are misuse: a bug, a 500.
        text = str(error)
        return "closed" in text or "closing" in text
    if isinstance(error, asyncpg.InternalClientError):
        # A pooled connection whose server died during a query (PostgreSQL killed): the next
        # query on it finds the protocol mid-operation. The database went away; not a bug.
        return "cannot switch to state" in str(error)
    if isinstance(error, UNAVAILABLE_ERRORS):
        return True
    # Other OSErrors only when they are about the network (a missing file is a bug, a 500);
    # asyncio's "Multiple exceptions" when every address of a host refused has no errno.
    return isinstance(error, OSError) and (
        error.errno in NETWORK_ERRNOS or str(error).startswith("Multiple exceptions")
    )


class Unavailable:
    """Pure ASGI middleware: a request that failed because PostgreSQL or the broker is away is
    answered 503 with Retry-After (JSON for the API, a short French page for a browser), never
    500, whatever route or middleware below raised it. Installed once by `service_app`."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.answered = Counter(
            "http_dependency_unavailable_total",
            "Requests answered 503 because a dependency was away, by error type",
            ["error"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            if started or not is_unavailable(error):
                raise
            kind = type(error).__name__
            self.answered.labels(kind).inc()
            # The type only: a driver's message may quote a query's parameters.
            log.warning("dependency unavailable, answered 503", extra={"error_type": kind})
            await self.response(scope)(scope, receive, send)

    @staticmethod
    def response(scope: Scope) -> Response:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
        path: str = scope.get("path", "")
        accept = next(
            (
                value.decode("latin-1")
                for name, value in scope.get("headers", ())
                if name == b"accept"
            ),
            "",
        )
        if "text/html" in accept and not path.startswith("/v1/"):
            return HTMLResponse(UNAVAILABLE_PAGE, status_code=503, headers=headers)
        body = {"error": "unavailable", "message": UNAVAILABLE_MESSAGE}
        return JSONResponse(body, status_code=503, headers=headers)


def install_ops_routes(
    app: FastAPI, runtime: Callable[[], Runtime | None], registry: CollectorRegistry
) -> None:
    """`/healthz` (the process answers), `/readyz` (it can do its job), `/metrics`."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        current = runtime()
        if current is None:
            return JSONResponse({"ready": False, "problems": ["starting"]}, status_code=503)
        state = await current.readiness()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def service_app(
    *,
    settings: ServiceSettings,
    service: str,
    schema: str,
    title: str,
    setup: Callable[[Runtime, FastAPI], Awaitable[None]],
    **fastapi_options: Any,
) -> FastAPI:
    """A FastAPI app whose lifespan starts the runtime, then `setup` (consumers, loops), then
    the outbox relay; and stops them all on shutdown (SIGTERM included)."""
    runtime = Runtime(settings, service=service, schema=schema)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.kafka_create_topics:
            await ensure_topics(settings)
        await runtime.start()
        try:
            await setup(runtime, app)
            runtime.start_outbox_relay()
            app.state.started = True
            yield
        finally:
            await runtime.stop()

    # No Swagger UI or ReDoc: both load scripts from a CDN, and operational pages stay private.
    fastapi_options.setdefault("docs_url", None)
    fastapi_options.setdefault("redoc_url", None)
    app = FastAPI(title=title, lifespan=lifespan, **fastapi_options)
    app.state.runtime = runtime
    app.state.started = False
    app.add_middleware(Unavailable, registry=runtime.registry)  # inside the metrics: a 503 counted
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(HttpMetrics, registry=runtime.registry)
    if runtime.tracing.enabled:  # no middleware at all without a collector
        app.add_middleware(ServerSpans, tracing=runtime.tracing)
    install_ops_routes(app, lambda: runtime if app.state.started else None, runtime.registry)
    install_refusal_log(app)
    install_problems(app)  # last: outermost, every JSON error becomes a Problem Details
    return app
