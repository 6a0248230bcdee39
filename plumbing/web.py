"""HTTP guards every service shares: a body is refused before it is parsed when it is too big,
a client's address is believed from X-Forwarded-For only when a trusted proxy wrote it, and the
pages people open (survey, opt-out, legal pages) carry one set of security headers."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence

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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_ADDRESS_LENGTH = 64  # a key in memory: a forged header must not make it big


def client_address(
    peer: str | None, forwarded_for: Iterable[str], *, trusted: Sequence[Network]
) -> str:
    """Who a request comes from, believing X-Forwarded-For only from a trusted proxy.

    The TCP peer, unless it is in `trusted` (the ingress controller): then the right-most
    X-Forwarded-For entry that is not itself trusted. Entries left of it were written by the
    client and can be anything; the right-most untrusted one was written by our proxy. An
    untrusted peer's header is ignored, so nobody picks another address by forging it.
    """
    if peer is None:
        return "unknown"
    if not _is_trusted(peer, trusted):
        return peer
    entries = [entry.strip() for header in forwarded_for for entry in header.split(",")]
    for entry in reversed(entries):
        host = _host_of(entry)
        if host and not _is_trusted(host, trusted):
            return host[:MAX_ADDRESS_LENGTH]
    return peer  # only proxies on the way, or no header: the peer is all we know


def _is_trusted(host: str, trusted: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def _host_of(entry: str) -> str:
    """`1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443` or `2001:db8::1`, without the port."""
    if entry.startswith("["):
        return entry[1 : entry.find("]")] if "]" in entry else entry
    if entry.count(":") == 1:
        return entry.split(":", 1)[0]
    return entry


CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
PAGE_SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    # A link's secret is in its path: no page may tell another site where the user came from.
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "cache-control": "no-store",
}
HSTS = "max-age=63072000; includeSubDomains"
_RAW_PAGE_HEADERS = [
    (name.encode(), value.encode()) for name, value in PAGE_SECURITY_HEADERS.items()
]
_HSTS = (b"strict-transport-security", HSTS.encode())


class SecurityHeaders:
    """Pure ASGI middleware adding PAGE_SECURITY_HEADERS where a response has not set them
    (a static asset sets its own cache-control); HSTS only behind TLS, where browsers honour it."""

    def __init__(self, app: ASGIApp, *, hsts_always: bool = False) -> None:
        self.app = app
        self.hsts_always = hsts_always

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        over_tls = self.hsts_always or behind_tls(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in _RAW_PAGE_HEADERS if header[0] not in present]
                if over_tls:
                    headers = [h for h in headers if h[0].lower() != _HSTS[0]]
                    headers.append(_HSTS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def behind_tls(scope: Scope) -> bool:
    """TLS ended here (`https`) or at the ingress, which says so in `X-Forwarded-Proto`.

    Trusting the header from anyone is harmless: a browser ignores HSTS received over plain HTTP.
    """
    if scope.get("scheme") == "https":
        return True
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-proto":
            return bool(value.split(b",")[0].strip().lower() == b"https")
    return False
