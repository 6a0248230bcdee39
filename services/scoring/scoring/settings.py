from __future__ import annotations

from pydantic import Field, SecretStr

from plumbing.settings import ServiceSettings


class ScoringSettings(ServiceSettings):
    http_port: int = 8003
    # No session state to reset: SET LOCAL only, LISTEN on connections held for good.
    database_reset_session: bool = False
    database_pool_size: int = 20  # partitions side by side, sites side by side, two listeners
    reporting_timezone: str = "Europe/Paris"
    fcr_window_days: int = Field(default=7, ge=1, le=90)
    fcr_refresh_seconds: float = Field(
        default=10.0, ge=0, description="The publisher recomputes a site's observed FCR (its "
        "costliest query) at most this often, and when the site's periods change at midnight: "
        "the published figure may lag by this much (its window is FCR_WINDOW_DAYS). 0: every "
        "publish.",
    )  # fmt: skip
    publish_interval_seconds: float = Field(
        default=0.5, gt=0, description="At most one indicators event per site per interval: a "
        "busy site's answers wait up to this long for their event (issue #14: p95 under 1 s).",
    )  # fmt: skip
    publish_catching_up_seconds: float = Field(
        default=5.0, gt=0, description="The interval instead, for a site catching up on old "
        "answers (its oldest unpublished answer older than CATCHING_UP_AFTER_SECONDS): after "
        "an outage, the screens show the count climbing every 5 s rather than every 0.5 s, from "
        "5 s after the backlog reached the site, and scoring spends its CPU on the backlog.",
    )  # fmt: skip
    catching_up_after_seconds: float = Field(
        default=60.0, gt=0, description="A site whose oldest answer not yet published is older "
        "than this is catching up (PUBLISH_CATCHING_UP_SECONDS).",
    )  # fmt: skip
    publisher_poll_seconds: float = Field(
        default=0.5, gt=0, description="Longest publisher sleep; commits and due times wake it."
    )
    anonymity_floor: int = Field(
        default=5,
        ge=1,
        description="No manager output (API, weekly e-mail, Grafana views) shows a figure, a cell "
        "or a verbatim of fewer answers (contracts.floors; written to reporting_settings).",
    )
    contacts_retention_days: int = Field(
        default=30, ge=1, description="Contacts are kept this long beyond the FCR window."
    )
    verbatims_retention_days: int = Field(default=90, ge=7)
    alerts_retention_days: int = Field(default=90, ge=7)
    open_alert_threshold_days: int = Field(
        default=7, ge=1, le=60,
        description="An alert nobody called back for longer than this is overdue: counted in "
        "scoring_open_alerts_overdue{site_id}, which the OpenAlertsOverdue rule watches.",
    )  # fmt: skip
    open_alerts_poll_seconds: float = Field(
        default=60.0, gt=0, description="How often the open-alert gauges are recounted."
    )
    inbox_margin_days: int = Field(
        default=7, ge=1, description="Event ids are kept this long beyond their topic's retention."
    )
    purge_interval_seconds: float = Field(default=3600.0, gt=0)
    weekly_report_week: str | None = Field(
        default=None, description="ISO week of the weekly report, e.g. 2026-W47 (default: last)."
    )
    weekly_report_recipients: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Fallback only: site id -> addresses for a site no manager is mapped to "
        "(the recipients come from the managers' mapping, scoring.managers).",
    )
    manager_password_key: SecretStr | None = Field(
        default=None,
        description="Secret from which each manager's database password is derived (HMAC of "
        "the role name); deploy/grafana/managers.py derives the same from the same secret. "
        "Unset: a development key outside production; in production the managers' admin API "
        "answers 503 (the weekly report does not need it).",
    )
    national_networks: list[str] = Field(
        default_factory=list,
        description="Networks whose administrators may map national staff (scope « all »).",
    )
    weekly_report_board_url: str = "http://127.0.0.1:3000/d/enquetes-site-weekly/"
    smtp_url: str = "smtp://127.0.0.1:25"
    mail_from_address: str = "resultats@services-publics.example"
