from __future__ import annotations

from pydantic import Field

from plumbing.settings import ServiceSettings


class PublicationSettings(ServiceSettings):
    http_port: int = 8004
    public_floor: int = Field(default=30, ge=1, description="Minimum n before a figure is public.")
    default_indicators: list[str] = ["satisfaction", "nps", "fcr_declared", "ces"]
    current_period: str = "rolling_90d"
    previous_period: str = "previous_rolling_90d"
    cache_max_age_seconds: int = 15
