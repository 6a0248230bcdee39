from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from contracts import questionnaire
from plumbing.settings import ServiceSettings

MIN_PRODUCTION_KEY_BYTES = 32


class DispatchSettings(ServiceSettings):
    http_port: int = 8001
    smtp_url: str = "smtp://127.0.0.1:25"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = 10.0
    mail_from_address: str = "enquete@services-publics.example"
    sms_api_url: str = "http://127.0.0.1:9000"
    sms_api_token: SecretStr = SecretStr("dev-sms-token")
    sms_sender: str = Field(default="SERVICEPUB", max_length=11)
    pseudonym_key: SecretStr = SecretStr("dev-pseudonym-key-change-me")
    sms_inbound_token: SecretStr = Field(
        default=SecretStr("dev-sms-inbound-token"),
        description="Shared secret the SMS provider sends (bearer) on POST /v1/sms/inbound.",
    )
    optout_email_local_part_case_insensitive: bool = Field(
        default=True,
        description="Opt-outs match e-mail local parts whatever their case, as providers do.",
    )
    public_survey_base_url: str = "http://127.0.0.1:8002"
    public_optout_base_url: str = "http://127.0.0.1:8001"
    questionnaire_version: str = Field(
        default=questionnaire.DEFAULT_VERSION,
        description="The version asked where no network or motif rule chooses one.",
    )
    sender_poll_seconds: float = Field(
        default=1.0, gt=0,
        description="Fallback poll of due sends; a decision wakes the senders at its commit.",
    )  # fmt: skip
    database_pool_size: int = Field(
        default=20, ge=1, le=200,
        description="Consumer, outbox relay, wake-up listener, sender and reminder loops, API.",
    )  # fmt: skip
    # Pool connections come back without session state (locks are transaction-scoped, the
    # sort setting is SET LOCAL, listeners are removed before release): no reset round trip.
    database_reset_session: bool = False
    send_concurrency: int = Field(
        default=200, ge=1, le=500,
        description="Invitations one sender loop claims and sends per transaction.",
    )  # fmt: skip
    max_send_attempts: int = Field(default=8, ge=1)
    send_workers: int = Field(default=4, ge=1, le=64, description="Concurrent sender loops.")
    smtp_connections: int = Field(
        default=8, ge=1, le=100,
        description="SMTP connections kept open and reused, messages pipelined on each.",
    )  # fmt: skip
    retry_base_seconds: float = Field(default=5.0, gt=0, description="First retry delay.")
    retry_max_seconds: float = Field(default=600.0, gt=0, description="Retry delay cap.")
    breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive provider failures that open its circuit."
    )
    breaker_cooldown_seconds: float = Field(
        default=30.0, gt=0, description="How long an open circuit stops calling the provider."
    )
    housekeeping_seconds: float = Field(
        default=60.0, gt=0, description="How often expired personal data is purged."
    )
    inbox_retention_days: int = Field(
        default=35, ge=1,
        description="Handled event ids kept: more than the CRM topic's 3 days; a repeated "
        "response event older than that only marks an answered invitation answered again.",
    )  # fmt: skip
    ingest_audience: str = Field(
        default="enquetes-ingest",
        description="Audience of the CRMs' client-credentials tokens on POST /v1/contacts "
        "(same issuer and JWKS as admin tokens; role crm_ingest, claim network).",
    )
    default_rules: dict[str, Any] | None = Field(
        default=None,
        description="JSON rules written as the '*' network defaults at start (demo, tests).",
    )

    @field_validator("questionnaire_version")
    @classmethod
    def _known_version(cls, version: str) -> str:
        """An unknown default version would send links that no survey page can show."""
        if not questionnaire.is_known(version):
            raise ValueError(questionnaire.unknown_version_message(version))
        return version

    @model_validator(mode="after")
    def _strong_keys(self) -> DispatchSettings:
        """An empty pseudonym key would fail every contact (and a short one is guessable):
        refuse it at start, with the variable's name, rather than in the middle of the stream."""
        keys = {"PSEUDONYM_KEY": self.pseudonym_key, "SMS_INBOUND_TOKEN": self.sms_inbound_token}
        for name, secret in keys.items():
            length = len(secret.get_secret_value().encode("utf-8"))
            if length == 0:
                raise ValueError(f"{name} must not be empty")
            if self.environment == "production" and length < MIN_PRODUCTION_KEY_BYTES:
                raise ValueError(
                    f"{name} must be at least {MIN_PRODUCTION_KEY_BYTES} bytes in production "
                    f"(it has {length}): generate one with `openssl rand -base64 48`"
                )
        return self
