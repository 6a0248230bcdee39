"""The two ways out of survey-dispatch: SMTP for email, an HTTP provider for SMS."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from email.header import Header
from email.utils import formataddr, formatdate, make_msgid
from typing import cast
from urllib.parse import urlsplit

import aiosmtplib
import httpx
from jinja2 import Environment
from markupsafe import escape

from survey_dispatch import domain
from survey_dispatch.domain import has_control_character, header_safe, scrubbed, smtp_reason
from survey_dispatch.settings import DispatchSettings


class PermanentFailure(Exception):
    """The provider refused for good (4xx, bad address): never retried."""


class TemporaryFailure(Exception):
    """Timeout, 5xx, connection refused: retried with backoff."""


class SmtpChannel:
    """SMTP through a small pool of open connections, several messages in flight on each.

    aiosmtplib opens each connection (TLS, STARTTLS, AUTH, EHLO). When the server advertises
    PIPELINING (RFC 2920; every common relay does), the connection's messages are then
    pipelined: one write and one wait per message (its data, its end, and the next message's
    MAIL, RCPT and DATA together) instead of four round trips. A server without it gets one
    aiosmtplib `sendmail` after the other on each connection.
    """

    def __init__(self, settings: DispatchSettings) -> None:
        url = urlsplit(settings.smtp_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (465 if url.scheme == "smtps" else 25)
        self.use_tls = url.scheme == "smtps"
        self.settings = settings
        self._idle: list[_Session] = []
        self._slots = asyncio.Semaphore(settings.smtp_connections)

    async def send(self, recipient: str, message: bytes) -> None:
        """Hand one message (bytes with CRLF line ends) to the SMTP server."""
        [outcome] = await self.send_many([(recipient, message)])
        if outcome is not None:
            raise outcome

    async def send_many(self, messages: list[tuple[str, bytes]]) -> list[Exception | None]:
        """(recipient, message) pairs, spread over the pooled connections; for each message
        None when the server accepted it, else a Permanent- or TemporaryFailure."""
        if not messages:
            return []
        share = -(-len(messages) // self.settings.smtp_connections)  # ceiling division
        chunks = [messages[i : i + share] for i in range(0, len(messages), share)]
        results = await asyncio.gather(*(self._send_chunk(chunk) for chunk in chunks))
        return [outcome for outcomes in results for outcome in outcomes]

    async def _send_chunk(self, messages: list[tuple[str, bytes]]) -> list[Exception | None]:
        outcomes: list[Exception | None] = [UNANSWERED] * len(messages)
        async with self._slots:
            reused = bool(self._idle)
            session: _Session | None = None
            try:
                session = self._idle.pop() if reused else await self._connect()
                try:
                    await session.send(messages, outcomes)
                except _Unsent:
                    # An idle connection the server closed meanwhile: nothing of this chunk
                    # reached it, so sending on a fresh connection cannot duplicate anything.
                    session.close()
                    if not reused:
                        raise
                    session = await self._connect()
                    await session.send(messages, outcomes)
            except (aiosmtplib.SMTPException, OSError, TimeoutError, _Unsent) as error:
                if session is not None:
                    session.close()  # after an error the session state is unknown: afresh
                failure = _temporary(error.__cause__ if isinstance(error, _Unsent) else error)
                return [failure if outcome is UNANSWERED else outcome for outcome in outcomes]
            except BaseException:
                if session is not None:
                    session.close()
                raise
            self._idle.append(session)
        return outcomes

    async def _connect(self) -> _Session:
        password = self.settings.smtp_password
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, use_tls=self.use_tls,
            start_tls=self.settings.smtp_starttls or None,
            username=self.settings.smtp_username,
            password=password.get_secret_value() if password else None,
            timeout=self.settings.smtp_timeout_seconds,
        )  # fmt: skip
        await client.connect()
        if not client.supports_extension("pipelining"):
            return _Session(client, None, self.settings)
        return _Session(client, _Pipeline.take_over(client), self.settings)

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().quit()


class _Unsent(Exception):
    """The connection failed before the server answered anything of this chunk."""


class _Unanswered(Exception):
    """Stands for a message the server has not answered yet."""


UNANSWERED = _Unanswered()


def _failure(code: int, message: str) -> Exception:
    """The reply's codes only: a relay's text often quotes the recipient's address."""
    if 500 <= code < 600:
        return PermanentFailure(smtp_reason(code, message))
    return TemporaryFailure(smtp_reason(code, message))


def _temporary(error: BaseException | None) -> TemporaryFailure:
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return TemporaryFailure(smtp_reason(error.code, error.message))
    return TemporaryFailure(f"smtp: {type(error).__name__} {scrubbed(str(error), 200)}")


class _Session:
    """One open SMTP connection: pipelined when the server allows it, else aiosmtplib's."""

    def __init__(
        self, client: aiosmtplib.SMTP, pipeline: _Pipeline | None, settings: DispatchSettings
    ) -> None:
        self.client = client
        self.pipeline = pipeline
        self.sender = settings.mail_from_address
        self.timeout = settings.smtp_timeout_seconds
        self.utf8 = client.supports_extension("smtputf8")

    async def send(
        self, messages: list[tuple[str, bytes]], outcomes: list[Exception | None]
    ) -> None:
        """Set each message's outcome as the server answers it; raises _Unsent when the
        connection failed before any answer."""
        if self.pipeline is None:
            await self._send_one_by_one(messages, outcomes)
        else:
            await self._send_pipelined(self.pipeline, messages, outcomes)

    async def _send_one_by_one(
        self, messages: list[tuple[str, bytes]], outcomes: list[Exception | None]
    ) -> None:
        for index, (recipient, message) in enumerate(messages):
            try:
                await self.client.sendmail(self.sender, [recipient], message)
                outcomes[index] = None
            except aiosmtplib.SMTPResponseException as error:
                outcomes[index] = _failure(error.code, error.message)
            except aiosmtplib.SMTPRecipientsRefused as error:
                # Without PIPELINING a refused RCPT comes as this (aiosmtplib has reset the
                # envelope): that recipient's own failure, not the session's.
                refused = error.recipients[0] if error.recipients else None
                outcomes[index] = (
                    _failure(refused.code, refused.message)
                    if refused is not None
                    else PermanentFailure("smtp: recipient refused")
                )
            except ValueError:  # an address aiosmtplib refuses to put in an envelope
                outcomes[index] = PermanentFailure("smtp: unusable address")
            except aiosmtplib.SMTPServerDisconnected as error:
                if index == 0:
                    raise _Unsent() from error
                raise

    def _envelope(self, recipient: str) -> bytes:
        if recipient.isascii() and self.sender.isascii():
            return f"MAIL FROM:<{self.sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()
        if not self.utf8:
            raise PermanentFailure("SMTP: a non-ASCII address and no SMTPUTF8 on the server")
        return f"MAIL FROM:<{self.sender}> SMTPUTF8\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()

    async def _send_pipelined(
        self, pipeline: _Pipeline, messages: list[tuple[str, bytes]],
        outcomes: list[Exception | None],
    ) -> None:  # fmt: skip
        """Each write carries the previous message's data (or an RSET after a refused
        envelope) and the next message's MAIL, RCPT and DATA; then the answers are read in
        order. RFC 2920 allows exactly this: DATA ends a group, message content starts one."""
        carry = b""  # sent ahead of the next envelope
        awaited: int | None = None  # whose end-of-data answer comes first; -1 for an RSET's
        answered = False
        index = 0
        try:
            while True:
                envelope = b""
                while index < len(messages) and not envelope:
                    try:
                        envelope = self._envelope(messages[index][0])
                    except PermanentFailure as refused:
                        outcomes[index] = refused
                        index += 1
                if carry or envelope:
                    pipeline.write(carry + envelope)
                carry = b""
                if awaited is not None:
                    code, text = await pipeline.reply(self.timeout)
                    answered = True
                    if awaited >= 0:
                        outcomes[awaited] = None if code == 250 else _failure(code, text)
                    awaited = None
                if not envelope:
                    return
                mail, rcpt, data = [await pipeline.reply(self.timeout) for _ in range(3)]
                answered = True
                if data[0] == 354:
                    if mail[0] != 250 or rcpt[0] not in (250, 251):
                        raise aiosmtplib.SMTPException("DATA accepted without an envelope")
                    carry, awaited = _data(messages[index][1]), index
                else:
                    refusal = next(reply for reply in (mail, rcpt, data) if reply[0] >= 400)
                    outcomes[index] = _failure(*refusal)
                    carry, awaited = b"RSET\r\n", -1
                index += 1
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as error:
            if not answered:
                raise _Unsent() from error
            raise

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
        else:
            with contextlib.suppress(Exception):
                self.client.close()

    async def quit(self) -> None:
        with contextlib.suppress(Exception):
            if self.pipeline is not None:
                self.pipeline.write(b"QUIT\r\n")
                await self.pipeline.reply(self.timeout)
            elif self.client.is_connected:
                await self.client.quit()
        self.close()


def _data(message: bytes) -> bytes:
    """The message as DATA content: dot-stuffed (RFC 5321 4.5.2), CRLF-terminated, then the
    lone dot."""
    if message.startswith(b".") or b"\n." in message:
        message = re.sub(rb"(?m)^\.", b"..", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message + b".\r\n"


class _Pipeline(asyncio.Protocol):
    """The reading side of a pipelined session: replies parsed as they arrive and queued, so
    several outstanding commands each get theirs, in order. Takes over the transport (plain or
    TLS) of a connection aiosmtplib opened and authenticated."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.replies: collections.deque[tuple[int, str]] = collections.deque()
        self.lost: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None

    @classmethod
    def take_over(cls, client: aiosmtplib.SMTP) -> _Pipeline:
        assert client.protocol is not None and client.protocol.transport is not None
        transport = cast(asyncio.Transport, client.protocol.transport)
        pipeline = cls(transport)
        transport.set_protocol(pipeline)
        return pipeline

    def write(self, data: bytes) -> None:
        if self.lost is not None or self.transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected(f"connection lost: {self.lost}")
        self.transport.write(data)

    async def reply(self, timeout: float) -> tuple[int, str]:
        while not self.replies:
            if self.lost is not None:
                raise aiosmtplib.SMTPServerDisconnected(f"connection lost: {self.lost}")
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.waiter, timeout)
            except TimeoutError as error:
                raise aiosmtplib.SMTPReadTimeoutError("no reply from the SMTP server") from error
            finally:
                self.waiter = None
        return self.replies.popleft()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        start = 0
        lines: list[bytes] = []
        while (end := self.buffer.find(b"\n", start)) >= 0:
            line = bytes(self.buffer[start:end]).rstrip(b"\r")
            start = end + 1
            lines.append(line)
            if line[3:4] != b"-":  # the last line of a reply
                try:
                    code = int(line[:3])
                except ValueError:  # garbage: the session is unusable, its messages retried
                    self.lost = aiosmtplib.SMTPException(f"malformed reply {line[:100]!r}")
                    self.buffer.clear()
                    self.transport.close()
                    break
                text = b"\n".join(part[4:] for part in lines).decode("utf-8", "replace")
                self.replies.append((code, text))
                lines = []
                del self.buffer[:start]
                start = 0
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or exc or ConnectionResetError("closed by the server")
        self._wake()

    def eof_received(self) -> bool:
        self.lost = self.lost or ConnectionResetError("closed by the server")
        self._wake()
        return False

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def close(self) -> None:
        self.transport.close()


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
        self._cache: dict[tuple[str, bool, str], MailTemplate] = {}

    @property
    def public_base_url(self) -> str:
        """The responses service's public address: survey links, and the personal-data notice,
        legal notice and accessibility statement the mails' footer links to."""
        return self.settings.public_survey_base_url.rstrip("/")

    def survey_link(self, token: str) -> str:
        return f"{self.public_base_url}/s/{token}"

    def optout_link(self, invitation_id: str) -> str:
        """The invitation's own opt-out link (never its survey token: see optout.py)."""
        key = self.settings.pseudonym_key.get_secret_value().encode()
        token = domain.optout_token(invitation_id, key)
        return f"{self.settings.public_optout_base_url.rstrip('/')}/o/{token}"

    def invitation(
        self, *, to: str, site_name: str, token: str, invitation_id: str, reminder: bool = False,
        validity: str | None = None,
    ) -> bytes:  # fmt: skip
        """`validity` is the link's validity in words (domain.link_validity); the default
        rules' when not told."""
        if validity is None:
            validity = domain.link_validity(
                timedelta(days=domain.Rules().expiry_days), reminder=reminder
            )
        template = self._template(site_name, reminder, validity)
        message_id = invitation_id + ("-rappel" if reminder else "")
        return render_mail(
            template, to=to, message_id=message_id_for(message_id, self.domain),
            survey_link=self.survey_link(token), optout_link=self.optout_link(invitation_id),
        )  # fmt: skip

    def _template(self, site_name: str, reminder: bool, validity: str) -> MailTemplate:
        key = (site_name, reminder, validity)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            site_name = header_safe(site_name) or "Service public"  # one line, in every part
            context = {
                "site_name": site_name, "survey_link": SURVEY_LINK, "optout_link": OPTOUT_LINK,
                "reminder": reminder, "public_base_url": self.public_base_url,
                "validity": validity,
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
    """Header values are reduced to one line first (control characters become spaces), then
    encoded: whatever a CRM put in a site name, it cannot add a header."""
    sender_name, subject = header_safe(sender_name), header_safe(subject)
    if has_control_character(from_address):
        raise ValueError("control character in the From address")
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
    """One message as bytes with CRLF line ends, ready for SMTP DATA. A header value with a
    control character is refused (ValueError) rather than sent."""
    if any(map(has_control_character, (to, message_id, optout_link))):
        raise ValueError("control character in a header value")
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
            raise TemporaryFailure(f"SMS provider: {type(error).__name__}") from error
        if response.status_code >= 500 or response.status_code == 429:
            raise TemporaryFailure(f"SMS provider: {response.status_code}")
        if response.status_code >= 400:  # the status only: the body may quote the number
            raise PermanentFailure(f"SMS provider: {response.status_code}")
