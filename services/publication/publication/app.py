"""publication: per-site figures for reception-hall screens and the open-data feed."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from contracts.topics import SITE_INDICATORS
from plumbing.assets import mount_dsfr
from plumbing.consumer import ConsumerMetrics, EventConsumer
from plumbing.runtime import Runtime, service_app
from publication import domain, repository
from publication.consumer import handle_site_indicators
from publication.settings import PublicationSettings

SERVICE = "publication"
TEMPLATES = Path(__file__).parent / "templates"


def create_app(settings: PublicationSettings) -> FastAPI:
    pages = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    pages.filters["fromiso"] = date.fromisoformat

    async def setup(runtime: Runtime, app: FastAPI) -> None:
        consumer = EventConsumer(
            settings=settings, group_id=SERVICE, topics=[SITE_INDICATORS],
            pool=runtime.db_pool, producer=runtime.kafka_producer,
            handler=handle_site_indicators, metrics=ConsumerMetrics(runtime.registry),
        )  # fmt: skip
        runtime.run_consumer(consumer)

    app = service_app(
        settings=settings, service=SERVICE, schema="publication", title="publication",
        setup=setup, description="Résultats de qualité de service, par site.",
    )  # fmt: skip
    app.add_middleware(GZipMiddleware, minimum_size=500)
    mount_dsfr(app)

    def pool() -> asyncpg.Pool:
        runtime: Runtime = app.state.runtime
        return runtime.db_pool

    def site_view(row: asyncpg.Record) -> dict[str, Any]:
        payload = row["payload"]
        chosen = row["chosen"] or settings.default_indicators
        periods = {p["period"]: p for p in payload["periods"]}
        view: dict[str, Any] = {
            "site_id": row["site_id"], "site_name": row["site_name"], "network": row["network"],
            "updated_at": row["computed_at"].isoformat(), "public_floor": settings.public_floor,
        }  # fmt: skip
        for key, period_id in (("current", settings.current_period), ("previous", settings.previous_period)):
            period = periods.get(period_id)
            view[key] = {
                "period": period_id,
                "indicators": [f.as_json() for f in domain.public_figures(period, chosen, settings.public_floor)]
                if period else [],
            }
        return view

    def cached_json(request: Request, body: Any) -> Response:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={settings.cache_max_age_seconds}"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="application/json", headers=headers)

    @app.get("/v1/sites/{site_id}/indicators", summary="A site's published indicators")
    async def site_indicators(site_id: str, request: Request) -> Response:
        async with pool().acquire() as conn:
            row = await repository.site_indicators(conn, site_id=site_id[:120])
        if row is None:
            return JSONResponse({"error": "unknown_site", "message": "Site inconnu."}, 404)
        return cached_json(request, site_view(row))

    @app.get("/v1/indicators", summary="Every site of a network")
    async def network_indicators(network: str, request: Request) -> Response:
        async with pool().acquire() as conn:
            rows = await repository.network_indicators(conn, network=network[:120])
        return cached_json(request, {"network": network, "sites": [site_view(r) for r in rows]})

    @app.get("/display/{site_id}", response_class=HTMLResponse, include_in_schema=False)
    async def display(site_id: str) -> HTMLResponse:
        async with pool().acquire() as conn:
            row = await repository.site_indicators(conn, site_id=site_id[:120])
        view = site_view(row) if row else None
        html = pages.get_template("display.html").render(view=view, sentence=domain.sample_sentence,
                                                         date_fr=domain.french_date)  # fmt: skip
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    return app
