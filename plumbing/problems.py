"""Problem Details (RFC 9457): every error a service answers in JSON is `application/problem+json`.

One ASGI middleware, outermost in `runtime.service_app`, rewrites any 4xx/5xx response whose
body is a JSON object, whoever wrote it: FastAPI's HTTPException and validation handlers, a
route's own `JSONResponse` (the French `message` users see is kept), the 413 of the body cap,
the 503 of a lost database. So no route, middleware or handler can answer an error in another
shape. HTML error pages (the survey's French pages) and successful answers pass untouched.

The problem object: `type` (`about:blank` for a plain HTTP error, `urn:fr-enquetes:problem:<code>`
when the service names its error with an `error` code), `title` (the HTTP status phrase, or the
code's own title), `status`, `detail` (the service's explanation: its `detail`, else its French
`message`), `instance` (the request's path, never its query), and `errors` for a request that
did not validate: one `{"detail", "pointer"?, "location"?}` per problem. The input that failed
is never echoed back (it may be personal data). Other members (`error`, `message`, `problems`,
...) stay as extension members, so existing clients keep working.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:fr-enquetes:problem:"
MAX_ERRORS = 50
INTERNAL_MESSAGE = "Une erreur est survenue. Réessayez plus tard."

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "Problem Details (RFC 9457). Other members may follow (`error`, `message`).",
    "type": "object",
    "properties": {
        "type": {"type": "string", "format": "uri-reference", "default": "about:blank"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "format": "uri-reference"},
        "error": {"type": "string", "description": "The service's error code, if any."},
        "message": {"type": "string", "description": "What a user is shown, in French."},
        "problems": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "A French message by answer or field, where a service gives them.",
        },
        "errors": {
            "type": "array",
            "description": "Each reason a request did not validate.",
            "items": {
                "type": "object",
                "properties": {
                    "detail": {"type": "string"},
                    "pointer": {"type": "string", "description": "JSON Pointer into the body."},
                    "location": {"type": "string", "description": "body, query, path, header"},
                    "name": {"type": "string"},
                },
                "required": ["detail"],
            },
        },
    },
    "required": ["type", "title", "status"],
}


def status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _pointer(parts: list[Any]) -> str:
    escaped = (str(part).replace("~", "~0").replace("/", "~1") for part in parts)
    return "#/" + "/".join(escaped)


def _validation_errors(items: list[Any]) -> list[dict[str, str]]:
    """FastAPI's validation list, without the `input` it echoes (it may be personal data)."""
    errors: list[dict[str, str]] = []
    for item in items[:MAX_ERRORS]:
        if not isinstance(item, Mapping):
            errors.append({"detail": str(item)[:200]})
            continue
        entry = {"detail": str(item.get("msg", "invalid"))[:200]}
        loc = list(item.get("loc") or ())
        if loc:
            entry["location"] = str(loc[0])[:40]
            if loc[0] == "body":
                entry["pointer"] = _pointer(loc[1:])[:200]
            elif len(loc) > 1:
                entry["name"] = str(loc[1])[:120]
        errors.append(entry)
    return errors


def problem_body(status: int, body: Mapping[str, Any], *, instance: str) -> dict[str, Any]:
    """The problem object for an error answer `body` (a JSON object) of status `status`."""
    problem: dict[str, Any] = dict(body)
    code = body.get("error")
    named = isinstance(code, str) and code != ""
    problem["type"] = body.get("type") or (f"{TYPE_PREFIX}{code}" if named else "about:blank")
    problem["title"] = body.get("title") or status_title(status)
    problem["status"] = status
    detail = body.get("detail")
    given = body.get("errors")  # a service's own list of reasons is kept as it is
    errors: list[Any] = list(given) if isinstance(given, list) else []
    if isinstance(detail, list):  # FastAPI's RequestValidationError
        errors = _validation_errors(detail)
        count = len(detail)
        detail = (
            f"La requête n'a pas la forme attendue ({count} erreur{'s' if count > 1 else ''}). / "
            f"The request is invalid ({count} error{'s' if count > 1 else ''})."
        )
    problems = body.get("problems")
    if not errors and isinstance(problems, Mapping):  # a service's own {name: reason}
        errors = [
            {"name": str(name)[:120], "detail": str(reason)[:200]}
            for name, reason in list(problems.items())[:MAX_ERRORS]
        ]
    if not isinstance(detail, str) or not detail:
        message = body.get("message")
        detail = message if isinstance(message, str) and message else problem["title"]
    problem["detail"] = detail
    problem["instance"] = body.get("instance") or instance
    if errors and not (given is not None and not isinstance(given, list)):
        problem["errors"] = errors
    return problem


def problem_response(
    status: int, detail: str, *, request: Request, headers: Mapping[str, str] | None = None,
    **members: Any,
) -> JSONResponse:  # fmt: skip
    """A Problem Details answer built directly (for handlers outside the middleware)."""
    body = problem_body(status, {"detail": detail, **members}, instance=request.url.path)
    return JSONResponse(body, status, headers=dict(headers or {}), media_type=MEDIA_TYPE)


class ProblemDetails:
    """Rewrites JSON error answers into Problem Details; everything else passes as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                if message["status"] >= 400 and _is_json(message.get("headers", ())):
                    held = message
                    return
                await send(message)
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            start, held = held, None
            await self._send_problem(scope, start, b"".join(chunks), send)

        await self.app(scope, receive, rewriting_send)

    @staticmethod
    async def _send_problem(scope: Scope, start: Message, body: bytes, send: Send) -> None:
        status: int = start["status"]
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):  # HEAD, or not an object: left as it is
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        problem = problem_body(status, parsed, instance=scope.get("path", ""))
        encoded = json.dumps(problem, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [
            (name, value)
            for name, value in start.get("headers", ())
            if name.lower() not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(encoded)).encode()),
        ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": encoded})


def _is_json(headers: Any) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            kind = bytes(value).split(b";")[0].strip().lower()
            return kind == b"application/json" or kind == MEDIA_TYPE.encode()
    return False


def install_problems(app: FastAPI) -> None:
    """The middleware (call it last: outermost), a 500 handler that says nothing of the error,
    and an OpenAPI document whose error answers are Problem Details."""
    app.add_middleware(ProblemDetails)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return problem_response(500, INTERNAL_MESSAGE, request=request, error="internal",
                                message=INTERNAL_MESSAGE)  # fmt: skip

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            app.openapi_schema = document_problems(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Every documented 4xx/5xx answer (and `default`) becomes `application/problem+json` with the
    Problem schema; FastAPI's own validation-error schemas go when nothing refers to them."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    reference = {"$ref": "#/components/schemas/Problem"}
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for code, response in operation.get("responses", {}).items():
                if (code.isdigit() and int(code) < 400) or not isinstance(response, dict):
                    continue
                response["content"] = {MEDIA_TYPE: {"schema": reference}}
    for unused in (
        "HTTPValidationError",
        "ValidationError",
    ):  # in this order: one refers to the next
        if f'"#/components/schemas/{unused}"' not in json.dumps(document):
            components.pop(unused, None)
    return document
