"""responses: the one-minute survey page, its JSON API, and the `response submitted` event."""

from __future__ import annotations

import gc
import hashlib
import logging
import math
import time
import urllib.parse
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, StrictInt
from starlette.exceptions import HTTPException

from contracts import questionnaire as questionnaires
from contracts.envelope import utc_now
from contracts.topics import SURVEY_INVITATION
from plumbing.assets import dsfr_dist_dir
from plumbing.problems import INTERNAL_MESSAGE, problem_response
from plumbing.runtime import Runtime, service_app
from plumbing.tracing import current_traceparent
from plumbing.web import PAGE_SECURITY_HEADERS, SecurityHeaders, client_address
from survey_responses import domain, repository, retention, security, submission
from survey_responses.assets import CompressedStaticFiles
from survey_responses.consumer import handle_invitation_event
from survey_responses.pages import CLOSED_STATUS, STATIC, Page, Pages
from survey_responses.ratelimit import RateLimiter
from survey_responses.recent import RecentInvitations
from survey_responses.settings import ResponsesSettings

log = logging.getLogger(__name__)
SERVICE = "responses"
MAX_FORM_BYTES = 32_768  # 15 answers and 1,000 characters of text fit many times over
MESSAGES = {
    domain.LinkState.UNKNOWN: "Ce lien n'est pas reconnu.",
    domain.LinkState.EXPIRED: "Ce lien a expiré.",
    domain.LinkState.ANSWERED: "Vous avez déjà répondu à ce questionnaire. Merci !",
}
BAD_ANSWER_TYPE = (
    "Une note est un nombre entier, une autre réponse un texte (ni true/false, ni nombre "
    "décimal). / A rating is an integer, any other answer a string (no boolean, no decimal)."
)
TOO_MANY = "Trop de tentatives en peu de temps. Merci de patienter une minute, puis de réessayer."


class AnswersIn(BaseModel):
    # Strict: JSON `true` would otherwise pass as the rating 1, and `7.0` as 7.
    answers: dict[str, StrictInt | str] = Field(
        description="Answers by question id (see the questionnaire version of the invitation): "
        "an integer for a rating (never a boolean nor a decimal), a string otherwise."
    )
    partial: bool = Field(default=False, description="Save without submitting (resume later).")


class Outcome(BaseModel):
    status: str = Field(description="`stored` (submitted) or `saved` (draft).")


class Problem(BaseModel):
    error: str = Field(description="unknown, expired, answered, invalid_answers, ...")
    message: str = Field(description="In French, for the user.")
    problems: dict[str, str] = Field(default_factory=dict, description="French message by item.")


def digest(token: str) -> str:
    return hashlib.sha256(domain.token_digest_input(token)).hexdigest()


class FormTooLarge(ValueError):
    pass


async def read_form(request: Request) -> dict[str, Any]:
    """The posted fields (the last value of a repeated one). A browser's form is URL-encoded:
    parsed here directly, much cheaper than the multipart parser, which takes the rest.
    ValueError if malformed, FormTooLarge past MAX_FORM_BYTES (whatever Content-Length said)."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise FormTooLarge
        fields = urllib.parse.parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=100
        )
        return dict(fields)
    try:
        return dict(await request.form(max_files=0, max_fields=100))
    except HTTPException as error:  # Starlette's answer to a malformed or too large form
        raise ValueError(error.detail) from None


def create_app(settings: ResponsesSettings) -> FastAPI:
    pages = Pages(
        results_base_url=settings.public_results_base_url,
        optout_base_url=settings.public_optout_base_url,
        legal=settings.legal(),
    )
    csrf_key = settings.csrf_secret.get_secret_value().encode()
    by_ip = RateLimiter(rate_per_minute=settings.rate_limit_ip_per_minute,
                        burst=settings.rate_limit_ip_burst)  # fmt: skip
    by_link = RateLimiter(rate_per_minute=settings.rate_limit_token_per_minute,
                          burst=settings.rate_limit_token_burst)  # fmt: skip

    async def setup(runtime: Runtime, app: FastAPI) -> None:
        runtime.consume([SURVEY_INVITATION], handler=handle_invitation_event)
        runtime.spawn("retention", lambda: retention.run(runtime.db_pool, settings))
        # What is loaded by now (modules, models, templates) lives as long as the process: out
        # of the collector's sight, a full collection no longer walks it every few hundred
        # requests (it was ~10 % of the CPU under load, and tens of ms of pause each time).
        gc.collect()
        gc.freeze()

    app = service_app(
        settings=settings, service=SERVICE, schema="survey_responses", title="responses",
        setup=setup, description="Questionnaire de satisfaction à chaud : l'API JSON à côté de "
        "la page, pour d'autres interfaces (serveur vocal, borne d'accueil).",
        docs_url=None, redoc_url=None,  # Swagger UI loads scripts from a CDN: not on this origin
        # Prometheus, not OpenTelemetry: without this FastAPI asks the OTel API on every request
        # whether a provider is configured (os.environ lookups, ~2 % of the CPU under load).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )  # fmt: skip
    # No gzip middleware: pages come gzip'd from `Pages` (compressed once, see pages.py) and
    # static files from `CompressedStaticFiles`; the JSON answers are a few dozen bytes.
    app.add_middleware(SecurityHeaders, hsts_always=settings.hsts_always)
    # As `plumbing.assets.mount_dsfr`, but compressed once (see assets.py).
    app.mount("/static/dsfr", CompressedStaticFiles(directory=dsfr_dist_dir()), name="dsfr")
    app.mount("/static/app", CompressedStaticFiles(directory=STATIC), name="app-static")

    recent = RecentInvitations()

    def pool() -> asyncpg.Pool:
        runtime: Runtime = app.state.runtime
        return runtime.db_pool

    def answer_span(row: asyncpg.Record) -> Any:
        """The answer comes from a phone without trace context: its span continues the trace
        the invitation arrived with (the contact's), linked to the request's own span."""
        runtime: Runtime = app.state.runtime
        request_span = current_traceparent()
        return runtime.tracing.span(
            "submit response",
            parent=row.get("traceparent"),
            parent_state=row.get("tracestate"),
            links=[request_span] if request_span else (),
            attributes={"invitation.id": row["invitation_id"], "site.id": row["site_id"]},
        )

    def throttled(request: Request, token: str, *, writes: bool) -> float:
        """Seconds to wait, or 0. Every request counts for its address (guessing links, flooding);
        only writes count for the link too: reloading a page is no abuse, and test harnesses
        poll it. The address is only a key in memory: it is never stored."""
        now = time.monotonic()
        peer = request.client.host if request.client else None
        address = client_address(
            peer, request.headers.getlist("x-forwarded-for"), trusted=settings.trusted_proxies
        )
        wait = by_ip.retry_after(address, now)
        return wait or (by_link.retry_after(digest(token), now) if writes else 0.0)

    def retry_headers(wait: float) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(wait)))}

    def too_many_page(wait: float) -> Page:
        return pages.error(429, "Trop de tentatives", TOO_MANY, headers=retry_headers(wait))

    def state_of(row: asyncpg.Record | None) -> domain.LinkState:
        return domain.link_state(
            found=row is not None, expires_at=row["expires_at"] if row else None,
            answered=bool(row and row["answered"]), now=utc_now(),
        )  # fmt: skip

    def closed_page(state: domain.LinkState, row: asyncpg.Record | None) -> Page:
        return pages.closed(
            state, site_name=row["site_name"] if row else None,
            site_id=row["site_id"] if row else None,
        )  # fmt: skip

    def survey_page(row: asyncpg.Record, values: dict[str, Any], errors: dict[str, str],
                    status: int = 200) -> Page:  # fmt: skip
        return pages.survey(
            questionnaire=questionnaires.load(row["questionnaire_version"]),
            site_name=row["site_name"], csrf=security.csrf_token(csrf_key, row["invitation_id"]),
            values=values, errors=errors, status=status,
        )  # fmt: skip

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error")
        # Answered outside the other middlewares: the security headers are added here.
        headers = dict(PAGE_SECURITY_HEADERS)
        if request.url.path.startswith("/v1/"):  # outside the Problem Details middleware
            return problem_response(500, INTERNAL_MESSAGE, request=request, headers=headers,
                                    error="internal", message=INTERNAL_MESSAGE)  # fmt: skip
        message = "Nous n'avons pas pu traiter votre demande. Réessayez dans un moment."
        return pages.error(500, "Une erreur est survenue", message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
        problems: dict[str, str] = {}
        answers: dict[str, str] = {}
        for problem in error.errors()[:20]:
            loc = problem["loc"]
            if len(loc) >= 3 and loc[:2] == ("body", "answers") and isinstance(loc[2], str):
                answers[domain.clean_text(loc[2])[:80]] = BAD_ANSWER_TYPE
            else:
                problems[".".join(str(part) for part in loc)[:80]] = str(problem["msg"])[:200]
        if answers and not problems:  # well formed but for the type of some answers
            body = {"error": "invalid_answers", "message": "Certaines réponses ne conviennent "
                    "pas.", "problems": answers}  # fmt: skip
            return JSONResponse(body, 422)
        body = {"error": "invalid_request", "message": "La requête n'a pas la forme attendue.",
                "problems": problems | answers}  # fmt: skip
        return JSONResponse(body, 422)

    # The page and its form are plain Starlette routes: no FastAPI dependency solving on the two
    # requests of every survey (the path is all they take; they are not in the OpenAPI).
    async def show_survey(request: Request) -> Page:
        token: str = request.path_params["token"]
        if wait := throttled(request, token, writes=False):
            return too_many_page(wait)
        key = digest(token)
        async with pool().acquire() as conn:
            row = await repository.invitation_by_digest(conn, digest=key)
        state = state_of(row)
        if state is not domain.LinkState.OPEN or row is None:
            return closed_page(state, row)
        recent.remember(key, row)
        form = questionnaires.load(row["questionnaire_version"])
        values = domain.prefilled_answers(form, dict(row)) | dict(row["draft"] or {})
        return survey_page(row, values, {})

    async def post_survey(request: Request) -> Page:
        token: str = request.path_params["token"]
        if wait := throttled(request, token, writes=True):
            return too_many_page(wait)
        if security.cross_site(request.headers):
            return pages.error(403, "Envoi refusé", "Ce formulaire doit être envoyé depuis notre "
                               "site. Ouvrez le lien reçu et réessayez.")  # fmt: skip
        length = request.headers.get("content-length", "0")
        try:
            if not length.isdigit() or int(length) > MAX_FORM_BYTES:
                raise FormTooLarge
            raw_form = await read_form(request)
        except FormTooLarge:
            return pages.error(
                413,
                "Réponses trop longues",
                "Vos réponses dépassent la taille permise. Raccourcissez le texte.",
                retry_url=f"/s/{token}",
            )
        except ValueError:
            return pages.error(400, "Envoi illisible", "Le formulaire reçu n'a pas la forme "
                               "attendue. Rechargez la page et réessayez.")  # fmt: skip
        key = digest(token)
        given_csrf = raw_form.get("csrf")
        partial = raw_form.get("action") == "save"

        def csrf_ok(row: asyncpg.Record) -> bool:
            return isinstance(given_csrf, str) and security.csrf_valid(
                csrf_key, row["invitation_id"], given_csrf
            )

        # No explicit transaction: each write below is one atomic statement (see repository).
        async with pool().acquire() as conn:
            # A valid submission of a page this process just served: no read (see recent.py).
            remembered = None if partial else recent.get(key)
            row: asyncpg.Record | None = remembered
            if row is None or not csrf_ok(row):
                row = await repository.invitation_by_digest(conn, digest=key)
            state = state_of(row)
            if state is not domain.LinkState.OPEN or row is None:
                return closed_page(state, row)
            if not csrf_ok(row):
                return pages.error(403, "Formulaire expiré", "Le formulaire a expiré. Rechargez "
                                   "la page et réessayez.", retry_url=f"/s/{token}")  # fmt: skip
            form = questionnaires.load(row["questionnaire_version"])
            raw = domain.form_answers(raw_form, form)
            try:
                answers = form.validate_answers(raw, partial=partial)
            except ValueError as problems:
                if row is remembered:  # answered by now? Then the page says so, not "correct".
                    current = await repository.invitation_by_digest(conn, digest=key)
                    if (now := state_of(current)) is not domain.LinkState.OPEN:
                        return closed_page(now, current)
                return survey_page(row, raw, problems.args[0], status=422)
            answers = domain.redact_answers(form, answers)  # before it is stored or emitted
            if partial:
                await submission.save_draft(conn, row, answers)
                return pages.saved(site_name=row["site_name"], token=token)
            with answer_span(row):
                stored = await submission.submit(conn, row, answers)
        recent.forget(key)
        if not stored:  # a double tap (or a replay): the other one won
            return closed_page(domain.LinkState.ANSWERED, row)
        return pages.thanks(site_name=row["site_name"], site_id=row["site_id"], token=token)

    def legal_route(name: str) -> Any:
        async def show(request: Request) -> Page:
            return pages.legal_page(name)

        return show

    for legal_name in ("donnees-personnelles", "mentions-legales", "accessibilite"):
        app.add_route(f"/{legal_name}", legal_route(legal_name), methods=["GET"],
                      include_in_schema=False)  # fmt: skip
    app.add_route("/s/{token}", show_survey, methods=["GET"], include_in_schema=False)
    app.add_route("/s/{token}", post_survey, methods=["POST"], include_in_schema=False)

    @app.post(
        "/v1/responses/{token}",
        summary="Submit (or save) answers for an invitation link",
        status_code=201,
        response_model=Outcome,
        responses={
            200: {"model": Outcome, "description": "Draft saved (`partial`)"},
            404: {"model": Problem, "description": "Unknown link"},
            409: {"model": Problem, "description": "Already answered"},
            410: {"model": Problem, "description": "Expired"},
            422: {"model": Problem, "description": "Invalid answers"},
            429: {"model": Problem, "description": "Too many requests (see Retry-After)"},
        },
    )
    async def api_submit(token: str, body: AnswersIn, request: Request) -> JSONResponse:
        if wait := throttled(request, token, writes=True):
            return JSONResponse({"error": "too_many_requests", "message": TOO_MANY}, 429,
                                headers=retry_headers(wait))  # fmt: skip
        async with pool().acquire() as conn:
            row = await repository.invitation_by_digest(conn, digest=digest(token))
            state = state_of(row)
            if state is not domain.LinkState.OPEN or row is None:
                problem = {"error": state.value, "message": MESSAGES[state]}
                return JSONResponse(problem, CLOSED_STATUS[state])
            form = questionnaires.load(row["questionnaire_version"])
            try:
                answers = form.validate_answers(
                    domain.clean_answers(body.answers), partial=body.partial
                )
            except ValueError as problems:
                problem = {"error": "invalid_answers", "message": "Certaines réponses ne "
                           "conviennent pas.", "problems": problems.args[0]}  # fmt: skip
                return JSONResponse(problem, 422)
            answers = domain.redact_answers(form, answers)  # before it is stored or emitted
            if body.partial:
                await submission.save_draft(conn, row, answers)
                return JSONResponse({"status": "saved"}, 200)
            with answer_span(row):
                stored = await submission.submit(conn, row, answers)
            if not stored:
                answered = domain.LinkState.ANSWERED
                problem = {"error": answered.value, "message": MESSAGES[answered]}
                return JSONResponse(problem, CLOSED_STATUS[answered])
        return JSONResponse({"status": "stored"}, 201)

    return app
