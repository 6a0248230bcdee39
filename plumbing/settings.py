"""Typed settings shared by every service. Built once in `main` and passed down, never at import."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRET_PREFIX = "dev-"
DEV_ADMIN_ISSUER = "http://127.0.0.1/dev-issuer"
LOOPBACK: tuple[IPv4Network | IPv6Network, ...] = (
    IPv4Network("127.0.0.0/8"),
    IPv6Network("::1/128"),
)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    environment: Literal["dev", "test", "production"] = "dev"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_reset_session: bool = Field(
        default=True, description="Reset a pooled connection's session on release (a round trip)."
    )
    outbox_linger_seconds: float = Field(
        default=0.0, ge=0, le=5, description="Wait for more outbox rows after a NOTIFY."
    )
    outbox_poll_seconds: float = Field(
        default=1.0, gt=0, le=300, description="Fallback poll of the outbox; a NOTIFY wakes it."
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_create_topics: bool = Field(
        default=True, description="Create missing topics at start (dev); Strimzi does it in prod."
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=lambda: list(LOOPBACK),
        description="TRUSTED_PROXIES: comma-separated networks (CIDR) whose X-Forwarded-For is "
        "believed, e.g. the ingress controller's pods. Any other peer is the client itself.",
    )
    max_request_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Larger request bodies get a 413 before parsing."
    )
    log_level: str = "INFO"
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector base URL: traces go to <it>/v1/traces."
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces URL (overrides the base URL); none: no traces."
    )
    otel_service_name: str | None = Field(
        default=None, description="service.name of the spans; the service's own name by default."
    )
    admin_jwks_url: str | None = Field(
        default=None, description="JWKS of the OpenID Connect issuer that signs admin tokens."
    )
    admin_issuer: str = DEV_ADMIN_ISSUER
    admin_audience: str = "enquetes-admin"

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_dev(self) -> ServiceSettings:
        if self.environment != "production":
            return self
        for name, value in self:
            if isinstance(value, SecretStr) and value.get_secret_value().startswith(
                DEV_SECRET_PREFIX
            ):
                raise ValueError(f"{name.upper()} still has its development default: set a secret")
        if self.admin_issuer.strip() in {"", DEV_ADMIN_ISSUER}:
            raise ValueError(
                "ADMIN_ISSUER must name the production identity provider: admin tokens are only "
                "accepted from an issuer set explicitly"
            )
        return self

    def librdkafka_options(self) -> dict[str, str]:
        """The same connection as `kafka_client_options`, for confluent-kafka (librdkafka),
        whose fetching runs in its own threads (scoring's rebuild reads the whole log)."""
        options = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in {"SSL", "SASL_SSL"}:
            options["ssl.ca.location"] = "probe"  # the system's CAs, as ssl.create_default_context
        if self.kafka_sasl_mechanism:
            options["sasl.mechanism"] = self.kafka_sasl_mechanism
            options["sasl.username"] = self.kafka_sasl_username or ""
            if self.kafka_sasl_password:
                options["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        return options

    def kafka_client_options(self) -> dict[str, object]:
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in {"SSL", "SASL_SSL"}:
            import ssl

            options["ssl_context"] = ssl.create_default_context()
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password:
                options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        return options
