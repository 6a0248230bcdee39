"""Fixtures of survey-dispatch's integration tests: one admin issuer and one way to start the
service, each module giving only the settings its tests are about."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from plumbing import devstack
from plumbing.auth import LocalIssuer
from plumbing.services import ServiceProcess, System, start_system

ADMIN_ISSUER = "http://127.0.0.1/dev-issuer"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalIssuer, str]:
    """Admin tokens the module's service trusts, and the JWKS URL it reads them from."""
    local = LocalIssuer(issuer=ADMIN_ISSUER, audience="enquetes-admin")
    return local, local.write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture(scope="module")
def start_dispatch(
    stack: devstack.DevStack,
    issuer: tuple[LocalIssuer, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., tuple[System, ServiceProcess]]:
    """Starts survey-dispatch sending at once (no delay, no sending window for e-mail), polling
    fast and trusting `issuer`; `extra_env` adds or overrides settings."""

    def start(**extra_env: Any) -> tuple[System, ServiceProcess]:
        system = start_system(
            stack.env(),
            tmp_path_factory.mktemp("logs"),
            only=("survey-dispatch",),
            extra_env={
                "DEFAULT_RULES": json.dumps({"delay_minutes": 0, "email_uses_sms_window": False}),
                "SENDER_POLL_SECONDS": "0.05",
                "ADMIN_JWKS_URL": issuer[1],
                **{name: str(value) for name, value in extra_env.items()},
            },
        )
        return system, system["survey-dispatch"]

    return start
