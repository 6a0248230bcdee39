"""`make demo`: the whole system on embedded defaults, with a CRM simulator and simulated users.

Prints where to look, keeps running until Ctrl-C, then stops every process it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from contracts.topics import CRM_CONTACT_CLOSED
from plumbing import devstack, processes
from plumbing.auth import LocalIssuer
from plumbing.crm_simulator import SITES, CrmSimulator
from plumbing.services import System, start_system
from plumbing.settings import ServiceSettings
from plumbing.testing import produce, survey_tokens

DEMO_DIR = Path(".devstack")
DEMO_RULES = '{"delay_minutes": 0, "email_uses_sms_window": false, "fatigue_days": 0}'
ALERT_RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "rules.yml"
PROMETHEUS_HINT = (
    "Debian's prometheus is missing (make setup installs it: apt-get install prometheus)"
)


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


def prometheus_config(system: System, rules: Path = ALERT_RULES) -> dict[str, Any]:
    """Every replica of every service scraped every 5 s, job = the service's name (what the
    alert rules and the boards group by), with the project's alert rules."""
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": name,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{replica.port}" for replica in replicas]}
                ],
            }
            for name, replicas in system.replicas.items()
        ],
    }


def start_prometheus(system: System, workdir: Path, *, timeout: float = 30) -> Prometheus | None:
    """Debian's Prometheus on a free local port, or None (and why) when it is not installed."""
    binary = shutil.which("prometheus")
    if binary is None:
        print(f"  {PROMETHEUS_HINT}: the demo runs without it.", flush=True)
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        json.dumps(prometheus_config(system), indent=2), encoding="utf-8"
    )  # JSON is YAML
    port = processes.free_port()
    log = workdir / "prometheus.log"
    process = processes.spawn(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log_path=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return Prometheus(process, url, log)
        time.sleep(0.2)
    processes.stop(process)
    raise TimeoutError(f"prometheus not ready after {timeout} s; see {log}")


def banner(
    system: System, stack: devstack.DevStack, link: str, prometheus: Prometheus | None = None
) -> str:
    site = SITES[0][0]
    lines = [
        "",
        "Enquêtes à chaud: the demo is running (Ctrl-C to stop).",
        f"  Survey link (latest invitation): {link}",
        f"  Display screen of a site:        {system['publication'].url}/display/{site}",
        f"  Figures feed:                    {system['publication'].url}/v1/sites/{site}/indicators",  # noqa: E501
        f"  Mail sink (maildir):             {stack.maildir.resolve()}",
    ]
    lines += [
        f"  Metrics of {name + ':':<17}{s.url}/metrics" for name, s in system.services.items()
    ]
    if prometheus is not None:
        lines += [
            f"  Prometheus (4 services scraped): {prometheus.url}",
            f"  Alert rules and their state:     {prometheus.url}/alerts",
        ]
    return "\n".join(lines) + "\n"


async def simulate(
    stack: devstack.DevStack, system: System, stop: asyncio.Event, reserved: set[str]
) -> None:
    """Contacts close at a steady pace; about a third of the surveyed users answer, a round
    after their mail arrived, so the link printed for the person running the demo stays open."""
    simulator = CrmSimulator(seed=int(time.time()))
    answered: set[str] = set()
    seen: set[str] = set()
    async with httpx.AsyncClient(base_url=system["responses"].url, timeout=5) as client:
        while not stop.is_set():
            events = [simulator.event(simulator.contact()) for _ in range(5)]
            await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, events)
            tokens = survey_tokens(stack.maildir)
            for token in tokens:
                if token in answered or token in reserved or token not in seen:
                    continue
                answered.add(token)
                if random.random() < 0.35:
                    with contextlib.suppress(httpx.HTTPError):
                        await client.post(
                            f"/v1/responses/{token}", json={"answers": simulator.answers()}
                        )
            seen.update(tokens)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)


async def main() -> None:
    DEMO_DIR.mkdir(exist_ok=True)
    stack = devstack.start(DEMO_DIR.resolve() / f"run-{int(time.time())}")
    system: System | None = None
    prometheus: Prometheus | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        print("Starting the broker, the database, the mail and SMS sinks, and four services...")
        defaults = ServiceSettings()
        issuer = LocalIssuer.load_or_create(
            DEMO_DIR.resolve() / "admin",
            issuer=defaults.admin_issuer,
            audience=defaults.admin_audience,
        )
        admin_env = {"ADMIN_JWKS_URL": (DEMO_DIR.resolve() / "admin" / "jwks.json").as_uri()}
        system = await asyncio.to_thread(
            start_system,
            stack.env(),
            stack.workdir,
            extra_env={"DEFAULT_RULES": DEMO_RULES, "PUBLIC_FLOOR": "5", **admin_env},
        )
        prometheus = await asyncio.to_thread(start_prometheus, system, stack.workdir / "prometheus")
        reserved: set[str] = set()
        simulation = asyncio.create_task(simulate(stack, system, stop, reserved))
        link = await _first_link(stack, system, stop, reserved)
        if link:
            token = issuer.mint(
                subject="demo-admin", roles=["network_admin"], network="urssaf", expires_in=8 * 3600
            )
            print(banner(system, stack, link, prometheus), flush=True)
            print(f"  Admin token (network_admin, urssaf, 8 h): {token}\n", flush=True)
        await stop.wait()
        simulation.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await simulation
    finally:
        print("Stopping...")
        if prometheus:
            processes.stop(prometheus.process)
        if system:
            system.stop()
        stack.stop()
        print("Stopped: no process left behind.")


async def _first_link(
    stack: devstack.DevStack, system: System, stop: asyncio.Event, reserved: set[str]
) -> str | None:
    while not stop.is_set():
        tokens = survey_tokens(stack.maildir)
        if tokens:
            reserved.add(tokens[-1])
            return f"{system['responses'].url}/s/{tokens[-1]}"
        await asyncio.sleep(0.5)
    return None


if __name__ == "__main__":
    asyncio.run(main())
