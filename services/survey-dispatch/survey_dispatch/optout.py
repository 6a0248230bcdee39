"""Opting out, effective at once: the one-click link of each invitation and the SMS `STOP` reply.

An opt-out records the HMAC of the user reference and of the contact point, and cancels what is
still pending for them (sends not yet made, reminders). The link carries the invitation's own
opt-out secret, never its survey token; only its SHA-256 is stored.

The page gets the survey page's security headers (services/responses' `security.py`: the two
services share no code, so the set is repeated here and a test compares them).
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field

from plumbing.runtime import Runtime
from plumbing.web import PAGE_SECURITY_HEADERS
from survey_dispatch import domain, repository
from survey_dispatch.consumer import ContactClosedHandler
from survey_dispatch.settings import DispatchSettings

log = logging.getLogger(__name__)

STYLESHEET = Path(__file__).parent / "templates" / "optout.css"
STYLESHEET_PATH = "/o/static/optout.css"
MAX_TOKEN_LENGTH = 64


class OptOutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.opt_outs = Counter(
            "dispatch_optouts_total", "Opt-outs recorded, by source (link, sms)", ["source"],
            registry=registry,
        )  # fmt: skip
        self.cancelled = Counter(
            "dispatch_optout_cancelled_total",
            "Pending sends and reminders cancelled by an opt-out", registry=registry,
        )  # fmt: skip


class SmsReply(BaseModel):
    """What the SMS provider posts for a reply: the sender's number and the text."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    sender: Annotated[str, Field(alias="from", min_length=1, max_length=40)]
    text: Annotated[str, Field(max_length=2000)]


def install_optout_routes(
    app: FastAPI, runtime: Runtime, handler: ContactClosedHandler, templates: Environment,
    settings: DispatchSettings,
) -> None:  # fmt: skip
    metrics = OptOutMetrics(runtime.registry)
    case_insensitive = settings.optout_email_local_part_case_insensitive
    inbound_token = settings.sms_inbound_token.get_secret_value().encode()

    def page(status: int = 200, **context: object) -> HTMLResponse:
        body = templates.get_template("optout.html").render(stylesheet=STYLESHEET_PATH, **context)
        return HTMLResponse(body, status_code=status, headers=PAGE_SECURITY_HEADERS)

    @app.get(STYLESHEET_PATH, include_in_schema=False)
    async def optout_stylesheet() -> Response:
        headers = {**PAGE_SECURITY_HEADERS, "cache-control": "public, max-age=86400"}
        return Response(STYLESHEET.read_bytes(), media_type="text/css", headers=headers)

    @app.get("/o/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def optout_page(token: str) -> HTMLResponse:
        return page(done=False)

    @app.post("/o/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def optout(token: str) -> HTMLResponse:
        """One click, effective at once (RFC 8058 one-click POST lands here too)."""
        digest = domain.token_digest(token[:MAX_TOKEN_LENGTH])
        async with runtime.db_pool.acquire() as conn, conn.transaction():
            row = await repository.invitation_by_optout_digest(conn, digest=digest)
            if row is None:
                return page(404, unknown=True)
            subjects = [row["user_pseudo_id"]]
            if row["address"]:
                subjects.append(handler.optout_subject(row["address"]))
            await repository.lock_users(conn, keys=subjects)
            await repository.add_opt_outs(conn, network=row["network"], subjects=subjects)
            cancelled = await repository.cancel_pending(
                conn, network=row["network"], user_pseudo_id=row["user_pseudo_id"],
                address=row["address"], case_insensitive_local_part=case_insensitive,
            )  # fmt: skip
        metrics.opt_outs.labels("link").inc()
        metrics.cancelled.inc(cancelled)
        return page(done=True)

    @app.post("/v1/sms/inbound", tags=["sms"])
    async def sms_inbound(
        reply: SmsReply, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, bool]:
        """A reply to one of our SMS, posted by the provider. `STOP` (whatever its case, accents
        or spaces) opts the number out of every network at once: it is our sender's number."""
        given = (authorization or "").removeprefix("Bearer ").strip().encode()
        if not given or not hmac.compare_digest(given, inbound_token):
            raise HTTPException(401, "bad or missing provider token")
        if not domain.is_stop_reply(reply.text):
            return {"opted_out": False}
        phone = domain.normalize_mobile(reply.sender)
        if phone is None:  # not a number we could ever have written to
            log.info("STOP reply from a number we never write to: ignored")
            return {"opted_out": False}
        subject = handler.optout_subject(phone)
        async with runtime.db_pool.acquire() as conn, conn.transaction():
            await repository.lock_users(conn, keys=[subject])
            await repository.add_opt_outs(conn, network="*", subjects=[subject])
            cancelled = await repository.cancel_pending(
                conn, network="*", user_pseudo_id=None, address=phone,
                case_insensitive_local_part=case_insensitive,
            )  # fmt: skip
        metrics.opt_outs.labels("sms").inc()
        metrics.cancelled.inc(cancelled)
        return {"opted_out": True}
