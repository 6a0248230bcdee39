from __future__ import annotations

from pydantic import Field

from plumbing.settings import ServiceSettings


class ScoringSettings(ServiceSettings):
    http_port: int = 8003
    reporting_timezone: str = "Europe/Paris"
    fcr_window_days: int = Field(default=7, ge=1, le=90)
    publish_interval_seconds: float = Field(
        default=1.0, gt=0, description="At most one indicators event per site per interval."
    )
    publisher_poll_seconds: float = 0.1
