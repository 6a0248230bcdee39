"""`make demo` runs Debian's Prometheus beside the four services: it scrapes every one of them,
job = the service's name, with the project's alert rules loaded, and the banner prints its URL."""

from __future__ import annotations

import httpx
import pytest

from plumbing import demo, processes
from plumbing.testing import async_wait_for

pytestmark = pytest.mark.integration


async def test_the_demos_prometheus_scrapes_the_four_services_with_the_alert_rules(
    stack, system, tmp_path
):
    prometheus = demo.start_prometheus(system, tmp_path / "prometheus")
    assert prometheus is not None, demo.PROMETHEUS_HINT  # make setup installs it: never skipped
    try:
        async with httpx.AsyncClient(base_url=prometheus.url, timeout=5) as client:

            async def all_up() -> set[str] | None:
                answer = (await client.get("/api/v1/query", params={"query": "up == 1"})).json()
                jobs = {series["metric"]["job"] for series in answer["data"]["result"]}
                return jobs if jobs == set(system.services) else None

            assert await async_wait_for(all_up, timeout=30, interval=0.5) == {
                "survey-dispatch", "responses", "scoring", "publication",
            }  # fmt: skip
            rules = (await client.get("/api/v1/rules")).json()["data"]["groups"]
            alerts = {rule["name"] for group in rules for rule in group["rules"]}
            assert {"DeadLetterRecords", "OutboxStale", "ConsumerLagGrowing"} <= alerts
        text = demo.banner(system, stack, "http://lien", prometheus)
        assert f"Prometheus (4 services scraped): {prometheus.url}" in text
        assert f"{prometheus.url}/alerts" in text
    finally:
        processes.stop(prometheus.process)
    assert prometheus.process.poll() is not None  # stopped with the demo: nothing left behind
