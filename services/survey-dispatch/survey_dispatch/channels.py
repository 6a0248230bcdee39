"""The two ways out of survey-dispatch: SMTP for email, an HTTP provider for SMS."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
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
    def __init__(self, settings: DispatchSettings) -> None:
        url = urlsplit(settings.smtp_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (465 if url.scheme == "smtps" else 25)
        self.use_tls = url.scheme == "smtps"
        self.settings = settings

    def build(self, email: Email) -> EmailMessage:
        message = EmailMessage()
        message["From"] = formataddr((email.sender_name, self.settings.mail_from_address))
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Message-ID"] = email.message_id
        message["List-Unsubscribe"] = f"<{email.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        return message

    async def send(self, email: Email) -> None:
        password = self.settings.smtp_password
        try:
            await aiosmtplib.send(
                self.build(email),
                hostname=self.host,
                port=self.port,
                use_tls=self.use_tls,
                start_tls=self.settings.smtp_starttls or None,
                username=self.settings.smtp_username,
                password=password.get_secret_value() if password else None,
                timeout=self.settings.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPResponseException as error:
            if 500 <= error.code < 600:
                raise PermanentFailure(f"SMTP {error.code} {error.message}") from error
            raise TemporaryFailure(f"SMTP {error.code} {error.message}") from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TemporaryFailure(f"SMTP: {type(error).__name__} {error}") from error


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
                headers={"Authorization": f"Bearer {self.settings.sms_api_token.get_secret_value()}"},
                timeout=10.0,
            )
        except httpx.HTTPError as error:
            raise TemporaryFailure(f"SMS provider: {type(error).__name__} {error}") from error
        if response.status_code >= 500 or response.status_code == 429:
            raise TemporaryFailure(f"SMS provider: {response.status_code}")
        if response.status_code >= 400:
            raise PermanentFailure(f"SMS provider: {response.status_code} {response.text[:200]}")
