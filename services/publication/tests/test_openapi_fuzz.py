"""Schemathesis against the running service's OpenAPI: no input makes it answer 5xx.

Driven through Hypothesis directly: schemathesis' pytest plugin (`from_fixture`) relies on a
pytest internal that pytest 9 removed.
"""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from plumbing.auth import NETWORK_ADMIN, bearer

pytestmark = pytest.mark.integration

STREAM = "/v1/sites/{site_id}/events"  # never ends by design; the integration tests cover it


@pytest.fixture(scope="module")
def operations(publication, send, make_event):
    # Real data behind the routes, so generated calls reach the code past "unknown site".
    asyncio.run(send(make_event("urssaf-fuzz", {"nps": (12.0, 90), "satisfaction": (70.0, 9)})))
    schema = schemathesis.openapi.from_url(f"{publication.url}/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    return {f"{op.method.upper()} {op.path}": op for op in found if op.path != STREAM}


@pytest.fixture(scope="module")
def admin_headers(issuer):
    local, _ = issuer
    return bearer(
        local.mint(subject="fuzz", roles=[NETWORK_ADMIN], network="urssaf", expires_in=3600)
    )


@pytest.mark.parametrize("with_token", [True, False], ids=["admin-token", "anonymous"])
def test_no_input_makes_the_service_fail(operations, admin_headers, with_token):
    assert {
        "GET /v1/sites/{site_id}/indicators",
        "PUT /admin/v1/sites/{site_id}/settings",
        "GET /v1/open-data/export-indicateurs.csv",
    } <= set(operations)
    headers = admin_headers if with_token else None
    for name, operation in operations.items():

        @given(case=operation.as_strategy(), real_site=st.booleans())
        @settings(
            max_examples=40 if with_token else 10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case, real_site):
            if real_site and "site_id" in (case.path_parameters or {}):
                case.path_parameters["site_id"] = "urssaf-fuzz"  # past the 403, into the writes
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            check()
        except Exception as error:
            raise AssertionError(f"{name}: {error}") from error
