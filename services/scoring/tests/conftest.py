"""Fixtures shared by scoring's tests."""

from __future__ import annotations

import pytest

from plumbing.auth import LocalIssuer


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalIssuer, str]:
    """A local token issuer and its JWKS file, for the admin-authenticated routes."""
    local = LocalIssuer(issuer="http://127.0.0.1/dev-issuer", audience="enquetes-admin")
    return local, local.write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json")
