"""`make demo`: the whole system on embedded defaults, with a CRM simulator and simulated users.

Prints where to look, keeps running until Ctrl-C, then stops every process it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from pathlib import Path

import httpx

from contracts.topics import CRM_CONTACT_CLOSED
from plumbing import devstack
from plumbing.auth import LocalIssuer
from plumbing.crm_simulator import SITES, CrmSimulator
from plumbing.services import System, start_system
from plumbing.settings import ServiceSettings
from plumbing.testing import produce, survey_tokens

DEMO_DIR = Path(".devstack")
DEMO_RULES = '{"delay_minutes": 0, "email_uses_sms_window": false, "fatigue_days": 0}'


def banner(system: System, stack: devstack.DevStack, link: str) -> str:
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
        reserved: set[str] = set()
        simulation = asyncio.create_task(simulate(stack, system, stop, reserved))
        link = await _first_link(stack, system, stop, reserved)
        if link:
            token = issuer.mint(
                subject="demo-admin", roles=["network_admin"], network="urssaf", expires_in=8 * 3600
            )
            print(banner(system, stack, link), flush=True)
            print(f"  Admin token (network_admin, urssaf, 8 h): {token}\n", flush=True)
        await stop.wait()
        simulation.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await simulation
    finally:
        print("Stopping...")
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
