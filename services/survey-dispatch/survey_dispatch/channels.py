"""The two ways out of survey-dispatch: SMTP for email, an HTTP provider for SMS."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, make_msgid
from urllib.parse import urlsplit

import aiosmtplib
import httpx

from survey_dispatch.settings import DispatchSettings


class PermanentFailure(Exception):
    """The provider refused for good (4xx, bad address): never retried."""


class TemporaryFailure(Exception):
    """Timeout, 5xx, connection refused: retried with backoff."""


@dataclass(frozen=True)
class Email:
    to: str
    sender_name: str
    subject: str
    text: str
    html: str
    message_id: str
    unsubscribe_url: str


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

    def render(self, email: Email) -> bytes:
        return render_mime(email, self.settings.mail_from_address)

    async def send(self, email: Email) -> None:
        message = self.render(email)
        async with self._slots:
            try:
                await self._send_on_pooled_connection(email.to, message)
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


CRLF = "\r\n"


def render_mime(email: Email, from_address: str) -> bytes:
    """The message as bytes, built by hand: the `email` package's EmailMessage takes ~2 ms per
    message, which alone would cap a process at a few hundred mails a second."""
    boundary = "=_" + hashlib.sha256(email.message_id.encode()).hexdigest()[:24]
    headers = [
        f"From: {formataddr((email.sender_name, from_address), charset='utf-8')}",
        f"To: {email.to}",
        f"Subject: {Header(email.subject, 'utf-8').encode(linesep=CRLF)}",
        f"Date: {formatdate(usegmt=True)}",
        f"Message-ID: {email.message_id}",
        "MIME-Version: 1.0",
        f"List-Unsubscribe: <{email.unsubscribe_url}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",  # RFC 8058 one-click
        "Auto-Submitted: auto-generated",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    lines = [
        *headers, "", f"--{boundary}", *_part("plain", email.text), f"--{boundary}",
        *_part("html", email.html), f"--{boundary}--", "",
    ]  # fmt: skip
    return CRLF.join(lines).encode()


def _part(subtype: str, body: str) -> list[str]:
    encoded = base64.encodebytes(body.encode()).decode().rstrip("\n").split("\n")
    return [
        f'Content-Type: text/{subtype}; charset="utf-8"', "Content-Transfer-Encoding: base64", "",
        *encoded,
    ]  # fmt: skip


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
