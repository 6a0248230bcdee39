"""What a running service holds: its pool, its producer, its metrics and its background tasks.

Every service's `app.py` builds one in its FastAPI lifespan, so wiring lives in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
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
from plumbing.outbox import OutboxMetrics, OutboxRelay
from plumbing.settings import ServiceSettings
from plumbing.web import BodyLimit

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: ServiceSettings, *, service: str, schema: str) -> None:
        self.settings = settings
        self.service = service
        self.schema = schema
        self.registry = CollectorRegistry()
        _ProcessCollector(registry=self.registry)
        self.pool: asyncpg.Pool | None = None
        self.producer: AIOKafkaProducer | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._joined: dict[str, asyncio.Event] = {}
        self.task_restarts = Counter(
            "background_task_restarts_total",
            "Background tasks restarted after a crash",
            ["task"],
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
        )
        self.spawn("outbox-relay", relay.run)

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
                try:
                    await run()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception(
                        "background task crashed", extra={"task": name, "retry_in": delay}
                    )
                    self.task_restarts.labels(name).inc()
                if time.monotonic() - started > 60:
                    delay = 1.0
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

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

    def consume(self, topics: Sequence[Topic], **options: Any) -> EventConsumer:
        """The service's consumer, run in the background: its group is the service's name, and
        it writes with the runtime's pool and producer. `options` go to EventConsumer (the
        handler or batch_handler, and tuning)."""
        consumer = EventConsumer(
            settings=self.settings, group_id=self.service, topics=topics, pool=self.db_pool,
            producer=self.kafka_producer, metrics=ConsumerMetrics(self.registry), **options,
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
        try:
            async with self.db_pool.acquire(timeout=2) as connection:
                await connection.fetchval("SELECT 1")
        except Exception as error:
            problems.append(f"database: {type(error).__name__}")
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
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(HttpMetrics, registry=runtime.registry)
    install_ops_routes(app, lambda: runtime if app.state.started else None, runtime.registry)
    install_refusal_log(app)
    return app
