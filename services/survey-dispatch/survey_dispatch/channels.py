"""The two ways out of survey-dispatch: SMTP for email, an HTTP provider for SMS."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, make_msgid
from urllib.parse import urlsplit

import aiosmtplib
import httpx
from jinja2 import Environment
from markupsafe import escape

from survey_dispatch.settings import DispatchSettings


class PermanentFailure(Exception):
    """The provider refused for good (4xx, bad address): never retried."""


class TemporaryFailure(Exception):
    """Timeout, 5xx, connection refused: retried with backoff."""


class SmtpChannel:
    """SMTP through a small pool of open connections: a new TCP and SMTP handshake per message
    would cap throughput at a few hundred messages a second."""

    def __init__(self, settings: DispatchSettings) -> None:
        url = urlsplit(settings.smtp_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (465 if url.scheme == "smtps" else 25)
        self.use_tls = url.scheme == "smtps"
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(settings.smtp_connections)

    async def send(self, recipient: str, message: bytes) -> None:
        """Hand one message (bytes with CRLF line ends) to the SMTP server."""
        async with self._slots:
            try:
                await self._send_on_pooled_connection(recipient, message)
            except aiosmtplib.SMTPResponseException as error:
                if 500 <= error.code < 600:
                    raise PermanentFailure(f"SMTP {error.code} {error.message}") from error
                raise TemporaryFailure(f"SMTP {error.code} {error.message}") from error
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                raise TemporaryFailure(f"SMTP: {type(error).__name__} {error}") from error

    async def _send_on_pooled_connection(self, recipient: str, message: bytes) -> None:
        reused = bool(self._idle)
        client = self._idle.pop() if reused else await self._connect()
        try:
            await client.sendmail(self.settings.mail_from_address, [recipient], message)
        except aiosmtplib.SMTPServerDisconnected:
            await _close(client)
            if not reused:
                raise
            # An idle connection the server closed meanwhile: the message never left, so
            # sending it once on a fresh connection cannot duplicate it.
            client = await self._connect()
            try:
                await client.sendmail(self.settings.mail_from_address, [recipient], message)
            except BaseException:
                await _close(client)
                raise
        except BaseException:
            await _close(client)  # after an error the session state is unknown: start afresh
            raise
        self._idle.append(client)

    async def _connect(self) -> aiosmtplib.SMTP:
        password = self.settings.smtp_password
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, use_tls=self.use_tls,
            start_tls=self.settings.smtp_starttls or None,
            username=self.settings.smtp_username,
            password=password.get_secret_value() if password else None,
            timeout=self.settings.smtp_timeout_seconds,
        )  # fmt: skip
        await client.connect()
        return client

    async def close(self) -> None:
        while self._idle:
            await _close(self._idle.pop())


async def _close(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        if client.is_connected:
            await client.quit()
    with contextlib.suppress(Exception):
        client.close()


class MailComposer:
    """Builds invitation and reminder emails as bytes, cheaply.

    Everything one site's messages share (the Jinja2 rendering of both parts, the encoded From
    and Subject headers) is prepared once per (site name, kind) and kept; a message then only
    costs substituting its own links and token, base64 of the two parts, and a join. Rendering
    the templates and building an `email.message.EmailMessage` per message took ~2 ms, which
    alone capped a process at a few hundred mails a second.
    """

    MAX_CACHED = 10_000  # site names x kinds; a bound, not a tuning knob

    def __init__(self, settings: DispatchSettings, templates: Environment) -> None:
        self.settings = settings
        self.templates = templates
        self.domain = settings.mail_from_address.rsplit("@", 1)[-1]
        self._cache: dict[tuple[str, bool], MailTemplate] = {}

    def survey_link(self, token: str) -> str:
        return f"{self.settings.public_survey_base_url.rstrip('/')}/s/{token}"

    def optout_link(self, token: str) -> str:
        return f"{self.settings.public_optout_base_url.rstrip('/')}/o/{token}"

    def invitation(
        self, *, to: str, site_name: str, token: str, invitation_id: str, reminder: bool = False
    ) -> bytes:
        template = self._template(site_name, reminder)
        message_id = invitation_id + ("-rappel" if reminder else "")
        return render_mail(
            template, to=to, message_id=message_id_for(message_id, self.domain),
            survey_link=self.survey_link(token), optout_link=self.optout_link(token),
        )  # fmt: skip

    def _template(self, site_name: str, reminder: bool) -> MailTemplate:
        key = (site_name, reminder)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            context = {
                "site_name": site_name, "survey_link": SURVEY_LINK, "optout_link": OPTOUT_LINK,
                "reminder": reminder,
            }  # fmt: skip
            subject = f"{site_name} : votre avis en une minute"
            found = self._cache[key] = mail_template(
                sender_name=site_name, from_address=self.settings.mail_from_address,
                subject=f"Rappel - {subject}" if reminder else subject,
                text=self.templates.get_template("invitation.txt").render(context),
                html=self.templates.get_template("invitation.html").render(context),
            )  # fmt: skip
        return found


# Stand-ins for a message's own links in a prepared template: NUL never occurs in a template,
# a site name or an escaped value, and Jinja2's autoescape leaves it alone.
SURVEY_LINK = "\x00survey-link\x00"
OPTOUT_LINK = "\x00optout-link\x00"
CRLF = "\r\n"


@dataclass(frozen=True)
class MailTemplate:
    """The part of a message shared by every recipient: headers already encoded, both bodies
    already rendered with the link stand-ins."""

    head: bytes
    text: str
    html: str
    boundary: bytes


def mail_template(
    *, sender_name: str, from_address: str, subject: str, text: str, html: str
) -> MailTemplate:
    # Base64 never contains "=_", so a fixed boundary per template cannot occur in a part.
    boundary = "=_" + hashlib.sha256(f"{sender_name}\x00{subject}".encode()).hexdigest()[:24]
    headers = [
        f"From: {formataddr((sender_name, from_address), charset='utf-8')}",
        f"Subject: {Header(subject, 'utf-8').encode(linesep=CRLF)}",
        "MIME-Version: 1.0",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",  # RFC 8058 one-click
        "Auto-Submitted: auto-generated",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    return MailTemplate(
        head=(CRLF.join(headers) + CRLF).encode(), text=text, html=html,
        boundary=boundary.encode(),
    )  # fmt: skip


def render_mail(
    template: MailTemplate, *, to: str, message_id: str, survey_link: str, optout_link: str
) -> bytes:
    """One message as bytes with CRLF line ends, ready for SMTP DATA."""
    text = template.text.replace(SURVEY_LINK, survey_link).replace(OPTOUT_LINK, optout_link)
    html = template.html.replace(SURVEY_LINK, str(escape(survey_link))).replace(
        OPTOUT_LINK, str(escape(optout_link))
    )
    separator = b"--" + template.boundary
    return b"".join((
        template.head,
        f"To: {to}\r\nDate: {_now_rfc2822()}\r\nMessage-ID: {message_id}\r\n"
        f"List-Unsubscribe: <{optout_link}>\r\n\r\n".encode(),
        separator, b"\r\n", _part(b"plain", text), separator, b"\r\n", _part(b"html", html),
        separator, b"--\r\n",
    ))  # fmt: skip


def _part(subtype: bytes, body: str) -> bytes:
    encoded = base64.encodebytes(body.encode()).replace(b"\n", b"\r\n")
    return (
        b"Content-Type: text/" + subtype + b'; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded
    )


_date_cache: tuple[int, str] = (0, "")


def _now_rfc2822() -> str:
    """The Date header, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def message_id_for(invitation_id: str, domain: str) -> str:
    return f"<{invitation_id}@{domain}>" if domain else make_msgid()


class SmsChannel:
    """Provider API: POST {base}/v1/messages, bearer token, JSON {to, sender, text} → 201."""

    def __init__(self, settings: DispatchSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, *, to: str, text: str) -> None:
        try:
            response = await self.client.post(
                f"{self.settings.sms_api_url.rstrip('/')}/v1/messages",
                json={"to": to, "sender": self.settings.sms_sender, "text": text},
                headers={
                    "Authorization": f"Bearer {self.settings.sms_api_token.get_secret_value()}"
                },
                timeout=10.0,
            )
        except httpx.HTTPError as error:
            raise TemporaryFailure(f"SMS provider: {type(error).__name__} {error}") from error
        if response.status_code >= 500 or response.status_code == 429:
            raise TemporaryFailure(f"SMS provider: {response.status_code}")
        if response.status_code >= 400:
            raise PermanentFailure(f"SMS provider: {response.status_code} {response.text[:200]}")
