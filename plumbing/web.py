"""HTTP guards every service shares: a body is refused before it is parsed when it is too big."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE_MESSAGE = (
    "La requête est trop volumineuse (au plus {limit} octets). / "
    "Request body too large (at most {limit} bytes)."
)


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body passes the cap; BodyLimit turns it into a 413. An
    HTTPException, because FastAPI turns any other error raised while it reads a JSON body into
    a 400 ("There was an error parsing the body"), and re-raises this one: a chunked body past
    the cap gets its 413 from the app's exception handler then."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, TOO_LARGE_MESSAGE.format(limit=limit))


class BodyLimit:
    """Answers 413 for a body above `max_bytes`, from its Content-Length or, chunked, as soon as
    the bytes read pass the cap: nothing above the cap is buffered or parsed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"detail": TOO_LARGE_MESSAGE.format(limit=self.max_bytes)}, ensure_ascii=False
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
