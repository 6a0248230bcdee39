from __future__ import annotations

from pydantic import Field

from plumbing.settings import ServiceSettings


class PublicationSettings(ServiceSettings):
    http_port: int = 8004
    public_floor: int = Field(default=30, ge=1, description="Minimum n before a figure is public.")
    default_indicators: list[str] = Field(
        default_factory=lambda: ["satisfaction", "nps", "fcr_declared", "ces"],
        description="What a site publishes until its managers choose.",
    )
    current_period: str = "rolling_90d"
    previous_period: str = "previous_rolling_90d"
    network_periods: dict[str, tuple[str, str]] = Field(
        default_factory=dict,
        description='Per-network (current, previous) periods, e.g. {"cnav": ["month", '
        '"previous_month"]}; other networks use current_period and previous_period.',
    )
    cache_max_age_seconds: int = Field(default=15, ge=0, le=3600)
    display_timezone: str = "Europe/Paris"
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=120)
    sse_retry_ms: int = Field(default=3000, ge=100, le=60_000)
    sse_max_clients: int = Field(default=5000, ge=1)
    sse_max_clients_per_address: int = Field(
        default=4, ge=1, description="Event streams one client address may hold (429 beyond)."
    )
    feed_cache_max_sites: int = Field(
        default=20_000, ge=1, description="Site feeds kept in memory (least recently used out)."
    )
    feed_cache_max_bulk: int = Field(
        default=512, ge=2, description="Network feeds and CSV exports kept in memory."
    )
    results_site: str = "resultats-services-publics.fr"

    def periods_of(self, network: str) -> tuple[str, str]:
        return self.network_periods.get(network, (self.current_period, self.previous_period))
