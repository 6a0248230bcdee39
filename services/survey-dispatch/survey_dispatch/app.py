"""survey-dispatch: decides whom to survey, when, and sends the invitations."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from contracts.topics import CRM_CONTACT_CLOSED
from plumbing.consumer import ConsumerMetrics, EventConsumer
from plumbing.runtime import Runtime, service_app
from survey_dispatch import domain, repository
from survey_dispatch.channels import SmsChannel, SmtpChannel
from survey_dispatch.consumer import ContactClosedHandler, DecisionMetrics
from survey_dispatch.sender import Sender, SendMetrics
from survey_dispatch.settings import DispatchSettings

TEMPLATES = Path(__file__).parent / "templates"
SERVICE = "survey-dispatch"


def create_app(settings: DispatchSettings) -> FastAPI:
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"])
    )

    async def setup(runtime: Runtime, app: FastAPI) -> None:
        if settings.default_rules is not None:
            domain.Rules.from_mapping(settings.default_rules, None)  # refuse bad rules at start
            async with runtime.db_pool.acquire() as conn, conn.transaction():
                await repository.set_rules(
                    conn, network="*", site_id="", rules=settings.default_rules, changed_by="settings"
                )
        handler = ContactClosedHandler(settings, DecisionMetrics(runtime.registry))
        app.state.handler = handler
        consumer = EventConsumer(
            settings=settings, group_id=SERVICE, topics=[CRM_CONTACT_CLOSED],
            pool=runtime.db_pool, producer=runtime.kafka_producer, handler=handler,
            metrics=ConsumerMetrics(runtime.registry),
        )  # fmt: skip
        runtime.run_consumer(consumer)
        http = httpx.AsyncClient()
        sender = Sender(
            settings=settings, pool=runtime.db_pool, smtp=SmtpChannel(settings),
            sms=SmsChannel(settings, http), templates=templates, metrics=SendMetrics(runtime.registry),
        )  # fmt: skip
        runtime.spawn("sender", sender.run)

    app = service_app(
        settings=settings, service=SERVICE, schema="survey_dispatch",
        title="survey-dispatch", setup=setup,
    )  # fmt: skip

    @app.get("/o/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def optout_page(token: str) -> HTMLResponse:
        page = templates.get_template("optout.html")
        return HTMLResponse(page.render(token=token, done=False))

    @app.post("/o/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def optout(token: str, request: Request) -> HTMLResponse:
        """One click, effective at once (RFC 8058 one-click POST lands here too)."""
        runtime: Runtime = app.state.runtime
        handler: ContactClosedHandler = app.state.handler
        async with runtime.db_pool.acquire() as conn, conn.transaction():
            row = await repository.invitation_by_token_digest(
                conn, digest=domain.token_digest(token[:64])
            )
            if row is None:
                return HTMLResponse(
                    templates.get_template("optout.html").render(token=token, unknown=True),
                    status_code=404,
                )
            subjects = [row["user_pseudo_id"]]
            if row["address"]:
                subjects.append(handler.pseudonym(row["address"]))
            await repository.add_opt_outs(conn, network=row["network"], subjects=subjects)
        return HTMLResponse(templates.get_template("optout.html").render(token=token, done=True))

    return app
