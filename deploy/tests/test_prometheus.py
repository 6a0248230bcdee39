"""Alert rules checked and unit-tested by promtool, and every PromQL of the operations board run
by a real Prometheus (Debian package) scraping the four services while a survey goes through.

promtool and prometheus come from the Debian `prometheus` package, which `make test` installs
(scripts/ensure-system-packages.sh): a missing binary fails these tests, it never skips them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from contracts.events import SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED
from plumbing import processes
from plumbing.crm_simulator import SITES, CrmSimulator
from plumbing.testing import async_wait_for, produce, survey_tokens

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
INSTALL_HINT = "install the Debian package: apt-get install prometheus (make test does it)"
RATE_INTERVAL = "1m"  # what Grafana's $__rate_interval becomes for a 1 s scrape interval

# Series that exist only once something went wrong: their queries are checked for validity
# (Prometheus accepts them) but may rightly return nothing on a healthy run.
FAILURE_ONLY = {
    "consumer_dlq_events_total": "nothing was sent to a DLQ",
    'result=~"failed|retry"': "no send failed",
    'status=~"5.."': "no request failed",
    "background_task_restarts_total": "no background task crashed",
    "dispatch_provider_errors_total": "no provider failed",
}


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: {INSTALL_HINT}"
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip


def test_alert_rules_are_valid():
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_unit_tests_pass():
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_scrape_config_is_valid_and_labels_jobs_by_service():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"survey-dispatch", "responses", "scoring", "publication"}


def board_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every Prometheus query of every board."""
    path = ROOT / "deploy" / "grafana" / "build.py"
    spec = importlib.util.spec_from_file_location("grafana_build", path)
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", RATE_INTERVAL))
        for make in build.DASHBOARDS.values()
        for panel in make()["panels"]
        for target in panel["targets"]
        if "expr" in target
    ]


def is_failure_only(expr: str) -> bool:
    return any(marker in expr for marker in FAILURE_ONLY)


# --------------------------------------------------------------------------- real Prometheus


@pytest.fixture(scope="module")
def prometheus(system, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(PROMETHEUS_DIR / "rules.yml")],
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}]}
            for name, service in system.services.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = processes.free_port()
    process = processes.spawn(
        [
            binary("prometheus"),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log_path=workdir / "prometheus.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, workdir / "prometheus.log")
        yield url
    finally:
        processes.stop(process)


def wait_ready(url: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"prometheus not ready; see {log}")


async def run_one_survey(stack, system) -> None:
    """A contact closed, its invitation mailed, the survey answered: every hop emits metrics."""
    simulator = CrmSimulator(seed=3)
    contact = simulator.contact(site=SITES[0]).model_copy(
        update={"preferred_channel": SurveyChannel.EMAIL}
    )
    await produce(
        stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [simulator.event(contact)]
    )
    tokens = await async_wait_for(lambda: survey_tokens(stack.maildir), timeout=60)
    async with httpx.AsyncClient(base_url=system["responses"].url) as client:
        page = await async_wait_for(lambda: _known_page(client, tokens[-1]), timeout=30)
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        answer = await client.post(
            f"/s/{tokens[-1]}",
            data={"csrf": csrf, "satisfaction_globale": "9", "recommandation": "10",
                  "action": "submit"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text


async def _known_page(client: httpx.AsyncClient, token: str) -> httpx.Response | None:
    page = await client.get(f"/s/{token}")
    return page if page.status_code == 200 else None


async def query(client: httpx.AsyncClient, expr: str) -> dict[str, Any]:
    response = await client.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]


@pytest.mark.integration
async def test_every_board_promql_returns_data_from_the_running_services(stack, system, prometheus):
    await run_one_survey(stack, system)
    queries = board_queries()
    assert queries
    pending = {expr: title for title, expr in queries if not is_failure_only(expr)}
    async with httpx.AsyncClient(base_url=prometheus, timeout=5) as client:
        for _, expr in queries:  # every query, failure-only ones included, must be valid
            await query(client, expr)
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for expr in list(pending):
                if (await query(client, expr))["result"]:
                    del pending[expr]
            if pending:
                await asyncio.sleep(1)
    assert not pending, f"no data for: {pending}"


@pytest.mark.integration
async def test_real_prometheus_loads_the_alert_rules(prometheus):
    async with httpx.AsyncClient(base_url=prometheus, timeout=5) as client:
        body = (await client.get("/api/v1/rules")).json()
    names = {rule["name"] for group in body["data"]["groups"] for rule in group["rules"]}
    assert {"ConsumerLagGrowing", "DeadLetterRecords", "OutboxStale", "SendFailureRate",
            "IndicatorsNotUpdated"} <= names  # fmt: skip
