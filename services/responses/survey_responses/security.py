"""Security headers on every response, and the cross-site request forgery checks of the form."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    # The token is in the path: no page may tell another site where the user came from.
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
HSTS = "max-age=63072000; includeSubDomains"
_RAW = [(name.encode(), value.encode()) for name, value in HEADERS.items()]
_RAW.append((b"cache-control", b"no-store"))
_HSTS = (b"strict-transport-security", HSTS.encode())


class SecurityHeaders:
    """Pure ASGI middleware. Pages and answers are never cached (`no-store`) unless the route
    said otherwise (static assets); HSTS only behind TLS, where browsers honour it."""

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
                headers += [header for header in _RAW if header[0] not in present]
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


def csrf_token(key: bytes, invitation_id: str) -> str:
    """Bound to the invitation: a form from one link cannot be posted to another."""
    return hmac.new(key, f"csrf:{invitation_id}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(key: bytes, invitation_id: str, given: str) -> bool:
    expected = csrf_token(key, invitation_id).encode()
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected)


def cross_site(headers: Mapping[str, str]) -> bool:
    """Browsers say where a form post comes from (`Sec-Fetch-Site`); refuse another site's.

    Not `Origin` against `Host`: an ingress may rewrite the host, and the HMAC above is the
    real defence; this only stops a forged post before it reaches the database.
    """
    return headers.get("sec-fetch-site", "same-origin") not in {"same-origin", "none"}
