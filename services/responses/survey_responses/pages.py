"""Server-rendered French pages: the questionnaire, thanks, and every way a link can be closed.

Every page is the same for every link but for a few values (the site's name, the CSRF field,
links that carry the token). So each page is rendered once with named slots in their place, its
fixed parts are deflated once (level 9), and a request only fills in the escaped values: the
gzip'd body is the precompressed parts with the values between them as stored deflate blocks.
No template rendering and no compression per request, on the hottest path of the service.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from contracts.questionnaire import Questionnaire
from contracts.questionnaire import load as load_questionnaire
from survey_responses import domain

HERE = Path(__file__).parent
STATIC = HERE / "static"
CLOSED_STATUS = {
    domain.LinkState.UNKNOWN: 404,
    domain.LinkState.EXPIRED: 410,
    domain.LinkState.ANSWERED: 409,
}


def asset_version(name: str) -> str:
    """A content hash in the asset URL, so a day of browser caching never serves a stale file."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]


_MARK = "\ue000"  # a private-use character: in no template, no questionnaire, never escaped
_SLOT = re.compile(f"{_MARK}([a-z_]+){_MARK}")
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # no name, no time, level 9


def slot(name: str) -> str:
    return f"{_MARK}{name}{_MARK}"


def _stored_blocks(data: bytes) -> bytes:
    """`data` as non-final stored (uncompressed) deflate blocks of at most 65,535 bytes."""
    blocks = []
    for start in range(0, len(data), 65_535):
        chunk = data[start : start + 65_535]
        blocks.append(struct.pack("<BHH", 0, len(chunk), len(chunk) ^ 0xFFFF) + chunk)
    return b"".join(blocks)


class Segments:
    """A page rendered once, with slots for the values of one request."""

    __slots__ = ("deflated", "fixed", "fixed_length", "names")

    def __init__(self, html: str) -> None:
        parts = _SLOT.split(html)
        self.fixed = [part.encode() for part in parts[0::2]]
        self.names: list[str] = parts[1::2]
        self.fixed_length = sum(len(part) for part in self.fixed)
        # Each fixed part is deflated alone, flushed to a byte boundary (Z_SYNC_FLUSH), the last
        # one ending the stream: with stored blocks between them, a valid deflate stream.
        self.deflated = []
        for index, part in enumerate(self.fixed):
            deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
            last = index == len(self.fixed) - 1
            flush = zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
            self.deflated.append(deflate.compress(part) + deflate.flush(flush))

    def plain(self, values: list[bytes]) -> bytes:
        pieces = [self.fixed[0]]
        for value, part in zip(values, self.fixed[1:], strict=True):
            pieces += (value, part)
        return b"".join(pieces)

    def gzip(self, values: list[bytes]) -> bytes:
        crc = zlib.crc32(self.fixed[0])
        pieces = [_GZIP_HEADER, self.deflated[0]]
        for value, part, deflated in zip(values, self.fixed[1:], self.deflated[1:], strict=True):
            pieces += (_stored_blocks(value), deflated)
            crc = zlib.crc32(part, zlib.crc32(value, crc))
        size = self.fixed_length + sum(len(value) for value in values)
        pieces.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
        return b"".join(pieces)


def accepts_gzip(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"accept-encoding":
            return b"gzip" in value
    return False


class Page(Response):
    """An HTML page, gzip'd when the client accepts it (every browser does)."""

    media_type = "text/html"

    def __init__(self, segments: Segments, values: Mapping[str, str | None], status_code: int = 200,
                 headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.segments = segments
        self.values = [str(escape(values[name] or "")).encode() for name in segments.names]
        self.status_code = status_code
        self.background: BackgroundTask | None = None
        self.raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (headers or {}).items()
        ]

    @property
    def body(self) -> bytes:  # type: ignore[override]
        """The page uncompressed (what `Response.body` is)."""
        return self.segments.plain(self.values)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [*self.raw_headers, (b"content-type", b"text/html; charset=utf-8"),
                   (b"vary", b"Accept-Encoding")]  # fmt: skip
        if accepts_gzip(scope):
            body = self.segments.gzip(self.values)
            headers.append((b"content-encoding", b"gzip"))
        else:
            body = self.segments.plain(self.values)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def french_spacing(text: str) -> str:
    """A no-break space before « ? ! : ; » so a phone never wraps the mark alone on a line."""
    return re.sub(r" ([?!:;»])", "\u00a0\\1", text).replace("« ", "«\u00a0")


class Pages:
    def __init__(
        self, *, results_base_url: str, optout_base_url: str, legal: domain.Legal | None = None
    ) -> None:
        self.legal = legal or domain.Legal()
        self.results_base_url = results_base_url.rstrip("/")
        self.optout_base_url = optout_base_url.rstrip("/")
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=True,
            auto_reload=False,  # no stat() per request: templates change only with a deploy
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["nbsp"] = french_spacing
        self.env.globals["legal"] = self.legal
        self.env.globals["assets"] = {
            name: asset_version(name) for name in ("survey.css", "survey.js")
        }
        # Bounded: a draft's free text makes its own entry, which soon ages out.
        self._segments: Callable[..., Segments] = lru_cache(maxsize=512)(self._render_segments)

    def _render_segments(self, name: str, *context: tuple[str, Any]) -> Segments:
        """`context` holds fixed values and slot names (a value `slot(...)`), as pairs."""
        values = dict(context)
        if name == "survey.html":  # the questions: ~90 % of the page, from the questionnaire
            questionnaire = load_questionnaire(values.pop("version"))
            steps = domain.steps(questionnaire)
            answers, errors = dict(values.pop("values")), dict(values.pop("errors"))
            steps_html = self.env.get_template("_steps.html").render(
                steps=steps, values=answers, errors=errors
            )
            values |= {"q": questionnaire, "step_count": len(steps), "errors": errors,
                       "steps_html": Markup(steps_html),  # the call-back sentence only
                       "asks_recontact": domain.asks_recontact(questionnaire)}  # fmt: skip
        return Segments(self.env.get_template(name).render(**values))

    def page(self, name: str, status: int = 200, headers: dict[str, str] | None = None, *,
             fixed: Mapping[str, Any], slots: Mapping[str, str | None]) -> Page:  # fmt: skip
        """`fixed` values key the cache (hashable); `slots` change with every request. A slot
        that is None or empty is rendered as such (`{{ x or "..." }}` keeps working)."""
        context = tuple(fixed.items()) + tuple(
            (key, slot(key) if value else None) for key, value in slots.items()
        )
        return Page(self._segments(name, *context), slots, status, headers)

    def results_url(self, site_id: str) -> str:
        return f"{self.results_base_url}/display/{site_id}"

    def survey(
        self, *, questionnaire: Questionnaire, site_name: str | None, csrf: str,
        values: dict[str, Any], errors: dict[str, str], status: int = 200,
    ) -> Page:  # fmt: skip
        fixed = {
            "version": questionnaire.version,
            "values": tuple(sorted((key, str(value)) for key, value in values.items())),
            "errors": tuple(sorted(errors.items())),
        }
        return self.page("survey.html", status, fixed=fixed,
                         slots={"site_name": site_name, "csrf": csrf})  # fmt: skip

    def thanks(self, *, site_name: str | None, site_id: str, token: str) -> Page:
        return self.page("thanks.html", fixed={}, slots={
            "site_name": site_name, "results_url": self.results_url(site_id),
            "optout_url": f"{self.optout_base_url}/o/{token}",
        })  # fmt: skip

    def saved(self, *, site_name: str | None, token: str) -> Page:
        return self.page("saved.html", fixed={},
                         slots={"site_name": site_name, "survey_url": f"/s/{token}"})  # fmt: skip

    def closed(self, state: domain.LinkState, *, site_name: str | None = None,
               site_id: str | None = None) -> Page:  # fmt: skip
        # An unknown link shows nothing of any site: a guess must learn nothing.
        known = state is not domain.LinkState.UNKNOWN
        return self.page("closed.html", CLOSED_STATUS[state], fixed={"state": state.value}, slots={
            "site_name": site_name if known else None,
            "results_url": self.results_url(site_id) if known and site_id else None,
        })  # fmt: skip

    def legal_page(self, name: str) -> Page:
        """/donnees-personnelles, /mentions-legales, /accessibilite: the same for every user."""
        return self.page(f"{name}.html", fixed={}, slots={"site_name": None})

    def error(self, status: int, title: str, message: str, *, retry_url: str | None = None,
              headers: dict[str, str] | None = None) -> Page:  # fmt: skip
        return self.page(
            "error.html", status, headers, fixed={"title": title, "message": message},
            slots={"retry_url": retry_url, "site_name": None},
        )  # fmt: skip
