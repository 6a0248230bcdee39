"""A whole system whose admin routes trust a test issuer, for the end-to-end trust tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import quick_system
from plumbing import devstack
from plumbing.auth import LocalIssuer
from plumbing.services import System


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalIssuer, str]:
    local = LocalIssuer(issuer="http://127.0.0.1/e2e-issuer", audience="enquetes-admin")
    return local, local.write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture(scope="module")
def admin_system(
    stack: devstack.DevStack,
    issuer: tuple[LocalIssuer, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[System]:
    """Like `system`, with admin tokens of `issuer` accepted by every service."""
    local, jwks_url = issuer
    yield from quick_system(
        stack,
        tmp_path_factory.mktemp("logs"),
        {
            "ADMIN_JWKS_URL": jwks_url,
            "ADMIN_ISSUER": local.issuer,
            # SMS too at any hour, on any day: the tests run whenever the clock says.
            "DEFAULT_RULES": '{"delay_minutes": 0, "email_uses_sms_window": false, '
            '"window_start_hour": 0, "window_end_hour": 24, '
            '"rest_on_sundays_and_holidays": false}',
        },
    )
