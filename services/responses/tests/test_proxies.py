"""Behind an ingress: only a trusted proxy's X-Forwarded-For names the client. Here the tests'
peer (127.0.0.1) is NOT a trusted proxy, as any user on the internet is not."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    return {"TRUSTED_PROXIES": "10.0.0.0/8", "RATE_LIMIT_IP_BURST": "5"}


async def test_an_untrusted_peer_cannot_pick_its_bucket_by_forging_x_forwarded_for(service):
    statuses = []
    async with httpx.AsyncClient(base_url=service.url) as http:
        for n in range(6):  # a new forged address each time: still one bucket, the peer's
            answer = await http.get(
                f"/s/guess-{n}", headers={"X-Forwarded-For": f"198.51.100.{n + 1}"}
            )
            statuses.append(answer.status_code)
        api = await http.post(
            "/v1/responses/guess-x",
            json={"answers": {}},
            headers={"X-Forwarded-For": "192.0.2.200"},
        )
    assert statuses == [404] * 5 + [429]
    assert api.status_code == 429
