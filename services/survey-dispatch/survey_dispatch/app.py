"""survey-dispatch: decides whom to survey, when, and sends the invitations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from jinja2 import Environment, FileSystemLoader, select_autoescape

from contracts.topics import CRM_CONTACT_CLOSED, SURVEY_RESPONSE
from plumbing.runtime import Runtime, service_app
from survey_dispatch import domain, repository
from survey_dispatch.admin import admin_router, new_admin_auth
from survey_dispatch.channels import MailComposer, SmsChannel, SmtpChannel
from survey_dispatch.consumer import ContactClosedHandler, DecisionMetrics
from survey_dispatch.housekeeping import Purge
from survey_dispatch.ingest import install_ingest_routes
from survey_dispatch.optout import install_optout_routes
from survey_dispatch.sender import DUE_CHANNEL, Sender, SendMetrics, new_breakers
from survey_dispatch.settings import DispatchSettings

TEMPLATES = Path(__file__).parent / "templates"
SERVICE = "survey-dispatch"


def new_templates() -> Environment:
    """The message and page templates; HTML ones autoescaped, the plain-text one not."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def create_app(settings: DispatchSettings) -> FastAPI:
    templates = new_templates()

    async def setup(runtime: Runtime, app: FastAPI) -> None:
        await _write_default_rules(runtime, settings)
        runtime.consume([CRM_CONTACT_CLOSED, SURVEY_RESPONSE], batch_handler=handler)
        sender = Sender(
            settings=settings, pool=runtime.db_pool, smtp=SmtpChannel(settings),
            sms=SmsChannel(settings, httpx.AsyncClient()),
            composer=MailComposer(settings, templates), metrics=SendMetrics(runtime.registry),
            breakers=new_breakers(settings),
        )  # fmt: skip
        # Its own connection, re-opened after a database restart; on each open a loop catches up.
        runtime.listen("sender-wake", {DUE_CHANNEL: sender.on_due}, on_listening=sender.on_due)
        for worker in range(settings.send_workers):  # SKIP LOCKED keeps the workers apart
            runtime.spawn(f"sender-{worker}", sender.run)
        runtime.spawn("reminders", sender.run_reminders)
        runtime.spawn("queue-gauge", sender.watch_queue)
        purge = Purge(
            pool=runtime.db_pool, every_seconds=settings.housekeeping_seconds,
            registry=runtime.registry,
            inbox_retention=timedelta(days=settings.inbox_retention_days),
        )  # fmt: skip
        runtime.spawn("purge", purge.run)

    app = service_app(
        settings=settings, service=SERVICE, schema="survey_dispatch",
        title="survey-dispatch", setup=setup,
    )  # fmt: skip
    runtime: Runtime = app.state.runtime
    handler = ContactClosedHandler(settings, DecisionMetrics(runtime.registry))
    app.state.admin_auth = new_admin_auth(settings)
    app.include_router(admin_router(lambda: runtime.db_pool, handler.pseudonym))
    install_optout_routes(app, runtime, handler, templates, settings)
    install_ingest_routes(app, runtime, settings)
    return app


async def _write_default_rules(runtime: Runtime, settings: DispatchSettings) -> None:
    if settings.default_rules is None:
        return
    domain.Rules.from_mapping(settings.default_rules, None)  # refuse bad rules at start
    async with runtime.db_pool.acquire() as conn, conn.transaction():
        await repository.set_rules(
            conn, network="*", site_id="", rules=settings.default_rules, changed_by="settings"
        )
