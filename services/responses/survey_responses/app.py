"""responses: the one-minute survey page, its JSON API, and the `response submitted` event."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field

from contracts import questionnaire as questionnaires
from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import ResponseSubmitted
from contracts.topics import RESPONSE_SUBMITTED, SURVEY_INVITATION, SURVEY_RESPONSE
from plumbing.assets import CachedStaticFiles, mount_dsfr
from plumbing.consumer import ConsumerMetrics, EventConsumer
from plumbing.outbox import enqueue
from plumbing.runtime import Runtime, service_app
from survey_responses import domain, repository
from survey_responses.consumer import handle_invitation_event
from survey_responses.settings import ResponsesSettings

SERVICE = "responses"
SOURCE = "/responses"
TEMPLATES = Path(__file__).parent / "templates"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
STATUS_OF = {
    domain.LinkState.UNKNOWN: 404,
    domain.LinkState.EXPIRED: 410,
    domain.LinkState.ANSWERED: 409,
}


class AnswersIn(BaseModel):
    answers: dict[str, int | str] = Field(description="Answers by question id.")
    partial: bool = Field(default=False, description="Save without submitting (resume later).")


def digest(token: str) -> str:
    return hashlib.sha256(token[:128].encode()).hexdigest()


def create_app(settings: ResponsesSettings) -> FastAPI:
    pages = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    csrf_key = settings.csrf_secret.get_secret_value().encode()

    async def setup(runtime: Runtime, app: FastAPI) -> None:
        consumer = EventConsumer(
            settings=settings, group_id=SERVICE, topics=[SURVEY_INVITATION],
            pool=runtime.db_pool, producer=runtime.kafka_producer,
            handler=handle_invitation_event, metrics=ConsumerMetrics(runtime.registry),
        )  # fmt: skip
        runtime.run_consumer(consumer)

    app = service_app(
        settings=settings, service=SERVICE, schema="survey_responses",
        title="responses", setup=setup, description="Questionnaire de satisfaction à chaud.",
    )  # fmt: skip
    app.add_middleware(GZipMiddleware, minimum_size=500)
    mount_dsfr(app)
    app.mount("/static/app", CachedStaticFiles(directory=Path(__file__).parent / "static"), name="app-static")

    def csrf_for(invitation_id: str) -> str:
        return hmac.new(csrf_key, invitation_id.encode(), hashlib.sha256).hexdigest()

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("results_url", None)
        html = pages.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def pool() -> asyncpg.Pool:
        runtime: Runtime = app.state.runtime
        return runtime.db_pool

    async def find(conn: asyncpg.Connection, token: str) -> tuple[asyncpg.Record | None, domain.LinkState]:
        row = await repository.invitation_by_digest(conn, digest=digest(token))
        state = domain.link_state(
            found=row is not None, expires_at=row["expires_at"] if row else None,
            answered=bool(row and row["answered"]), now=utc_now(),
        )  # fmt: skip
        return row, state

    def closed_page(state: domain.LinkState, row: asyncpg.Record | None) -> HTMLResponse:
        return page("closed.html", STATUS_OF[state], state=state.value, site_name=row["site_name"] if row else None)

    def survey_page(row: asyncpg.Record, values: dict[str, Any], errors: dict[str, str], status: int = 200) -> HTMLResponse:
        form = questionnaires.load(row["questionnaire_version"])
        return page(
            "survey.html", status, q=form, values=values, errors=errors,
            site_name=row["site_name"] or "notre service", csrf=csrf_for(row["invitation_id"]),
        )  # fmt: skip

    async def submit(conn: asyncpg.Connection, row: asyncpg.Record, answers: dict[str, int | str]) -> bool:
        await repository.lock_invitation(conn, invitation_id=row["invitation_id"])
        response_id = f"rsp-{uuid.uuid4().hex[:20]}"
        answered_at = utc_now()
        if not await repository.insert_response(
            conn, response_id=response_id, invitation_id=row["invitation_id"],
            answers=answers, answered_at=answered_at,
        ):  # fmt: skip
            return False
        data = ResponseSubmitted(
            response_id=response_id, invitation_id=row["invitation_id"], contact_id=row["contact_id"],
            site_id=row["site_id"], network=row["network"], channel=row["channel"], motif=row["motif"],
            profile=row["profile"], request_nature=row["request_nature"],
            user_pseudo_id=row["user_pseudo_id"], questionnaire_version=row["questionnaire_version"],
            answers=answers, answered_at=answered_at,
        )  # fmt: skip
        event = CloudEvent[ResponseSubmitted](
            id=new_event_id(), source=SOURCE, type=RESPONSE_SUBMITTED.type, time=answered_at,
            subject=row["site_id"], data=data,
        )  # fmt: skip
        await enqueue(conn, topic=SURVEY_RESPONSE.name, key=row["site_id"], event=event)
        return True

    @app.get("/s/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def show_survey(token: str) -> HTMLResponse:
        async with pool().acquire() as conn:
            row, state = await find(conn, token)
        if state is not domain.LinkState.OPEN or row is None:
            return closed_page(state, row)
        form = questionnaires.load(row["questionnaire_version"])
        values = domain.prefilled_answers(form, dict(row)) | dict(row["draft"] or {})
        return survey_page(row, values, {})

    @app.post("/s/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def post_survey(token: str, request: Request) -> HTMLResponse:
        raw_form = await request.form()
        async with pool().acquire() as conn, conn.transaction():
            row, state = await find(conn, token)
            if state is not domain.LinkState.OPEN or row is None:
                return closed_page(state, row)
            if not hmac.compare_digest(str(raw_form.get("csrf", "")), csrf_for(row["invitation_id"])):
                return page("error.html", 403, message="Le formulaire a expiré. Rechargez la page et réessayez.")
            form = questionnaires.load(row["questionnaire_version"])
            raw = domain.form_answers(dict(raw_form), form)
            partial = raw_form.get("action") == "save"
            try:
                answers = form.validate_answers(raw, partial=partial)
            except ValueError as problems:
                return survey_page(row, dict(raw), problems.args[0], status=422)
            if partial:
                await repository.save_draft(conn, invitation_id=row["invitation_id"], answers=answers)
                return page(
                    "saved.html", site_name=row["site_name"], survey_url=f"/s/{token}"
                )
            await submit(conn, row, answers)
        return page(
            "thanks.html", site_name=row["site_name"] or "notre service",
            results_url=f"{settings.public_results_base_url.rstrip('/')}/display/{row['site_id']}",
            optout_url=f"{settings.public_optout_base_url.rstrip('/')}/o/{token}",
        )  # fmt: skip

    @app.post(
        "/v1/responses/{token}",
        summary="Submit (or save) answers for an invitation link",
        responses={201: {"description": "Stored"}, 200: {"description": "Draft saved"},
                   404: {"description": "Unknown link"}, 409: {"description": "Already answered"},
                   410: {"description": "Expired"}, 422: {"description": "Invalid answers"}},  # fmt: skip
    )
    async def api_submit(token: str, body: AnswersIn) -> JSONResponse:
        async with pool().acquire() as conn, conn.transaction():
            row, state = await find(conn, token)
            if state is not domain.LinkState.OPEN or row is None:
                return JSONResponse({"error": state.value, "message": MESSAGES[state]}, STATUS_OF[state])
            form = questionnaires.load(row["questionnaire_version"])
            try:
                answers = form.validate_answers(dict(body.answers), partial=body.partial)
            except ValueError as problems:
                return JSONResponse({"error": "invalid_answers", "problems": problems.args[0]}, 422)
            if body.partial:
                await repository.save_draft(conn, invitation_id=row["invitation_id"], answers=answers)
                return JSONResponse({"status": "saved"}, 200)
            await submit(conn, row, answers)
        return JSONResponse({"status": "stored"}, 201)

    return app


MESSAGES = {
    domain.LinkState.UNKNOWN: "Ce lien n'est pas reconnu.",
    domain.LinkState.EXPIRED: "Ce lien a expiré.",
    domain.LinkState.ANSWERED: "Vous avez déjà répondu à ce questionnaire. Merci !",
}
