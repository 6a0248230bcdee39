"""The publication feed under load: conditional and full requests per second, p99 latency, the
feed's throughput next to a bare endpoint of the same server, and indicators event → SSE push.

Load comes from Debian's `wrk` when it is installed (a Python client saturates long before the
service does); otherwise from an httpx loop, whose figures are then the client's ceiling, not the
service's. This scenario installs nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from contracts.envelope import CloudEvent, encode, new_event_id
from contracts.events import IndicatorFigure, Interval, PeriodFigures, SiteIndicatorsUpdated
from contracts.topics import SITE_INDICATORS, SITE_INDICATORS_UPDATED
from loadtests.stats import latency_figures, percentile
from plumbing.services import start_system

NAME = "publication_feed"
DESCRIPTION = "feed req/s with and without If-None-Match, p99, ratio to /healthz, event → SSE push"
SITES = 50
DURATION_SECONDS = 5
ROUNDS = 3
CONNECTIONS = 64  # wrk
HTTPX_CLIENTS = 4  # the fallback
SSE_CLIENTS = 20
SSE_EVENTS = 20


async def run(ctx: Any) -> dict[str, Any]:
    system = await asyncio.to_thread(
        start_system,
        ctx.stack.env(),
        ctx.workdir,
        only=("publication",),
        extra_env={"LOG_LEVEL": "WARNING", "SSE_HEARTBEAT_SECONDS": "5"},
    )
    url = system["publication"].url
    producer = AIOKafkaProducer(bootstrap_servers=ctx.stack.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for index in range(SITES):
            await _send(producer, _event(f"bench-site-{index:03d}", value=80.0))
        site_path = "/v1/sites/bench-site-000/indicators"
        tag = await _wait_for_feed(url, site_path)
        network_url = url + "/v1/indicators?network=bench"
        await _wait_for_feed(url, f"/v1/sites/bench-site-{SITES - 1:03d}/indicators")
        network_tag = await _wait_for_feed(url, "/v1/indicators?network=bench")
        figures: dict[str, Any] = {}
        if shutil.which("wrk"):
            figures["load_generator"] = "wrk"
            load = _wrk
        else:
            print("[bench] wrk not installed (apt-get install wrk): httpx load, client-bound")
            figures["load_generator"] = "httpx (client-bound)"
            load = _httpx_load
        # The machine is shared: endpoints take turns, round after round, and each figure is the
        # median of its rounds, so a neighbour's burst does not decide the ratio.
        targets = {
            "bare": (url + "/healthz", {"Accept-Encoding": "gzip"}),
            "conditional": (
                url + site_path,
                {"If-None-Match": f'"{tag}-gzip"', "Accept-Encoding": "gzip"},
            ),
            "full": (url + site_path, {"Accept-Encoding": "gzip"}),
            # The network feed goes through FastAPI's routing (no in-memory shortcut): what a
            # cached feed costs without it.
            "network_conditional": (
                network_url,
                {"If-None-Match": f'"{network_tag}-gzip"', "Accept-Encoding": "gzip"},
            ),
        }
        async with httpx.AsyncClient() as client:  # the conditional loads really are 304s
            for label in ("conditional", "network_conditional"):
                target, headers = targets[label]
                status = (await client.get(target, headers=headers)).status_code
                assert status == 304, f"{label}: expected 304, got {status}"
        rounds: dict[str, list[dict[str, float]]] = {label: [] for label in targets}
        for _ in range(ROUNDS):
            for label, (target, headers) in targets.items():
                rounds[label].append(await load(target, headers))
        for label, results in rounds.items():
            figures[f"{label}_per_second"] = statistics.median(r["per_second"] for r in results)
            figures[f"{label}_p99_ms"] = statistics.median(r["p99_ms"] for r in results)
        for label in ("conditional", "full", "network_conditional"):
            figures[f"{label}_to_bare_ratio"] = round(
                figures[f"{label}_per_second"] / figures["bare_per_second"], 2
            )
        figures |= await _event_to_push(url, producer)
        return figures
    finally:
        await producer.stop()
        system.stop()


def _event(site_id: str, *, value: float, n: int = 400) -> CloudEvent[SiteIndicatorsUpdated]:
    today = date.today()
    share = Interval(low=value - 3, high=min(100.0, value + 3), method="wilson")
    nps = Interval(low=value - 47, high=value - 33, method="adjusted_wald")
    figures = [
        IndicatorFigure(
            indicator="satisfaction",
            label="Satisfaction globale (8 à 10 sur 10)",
            value=value,
            unit="percent",
            sample_size=n,
            interval=share,
        ),
        IndicatorFigure(
            indicator="fcr_declared",
            unit="percent",
            sample_size=n,
            interval=share,
            label="Résolution dès le premier contact (déclarée)",
            value=value,
        ),
        IndicatorFigure(
            indicator="nps",
            label="Recommandation (NPS)",
            value=value - 40,
            unit="score",
            sample_size=n,
            interval=nps,
        ),
    ]
    now = datetime.now(UTC)
    data = SiteIndicatorsUpdated(
        site_id=site_id,
        site_name=f"Accueil {site_id}",
        network="bench",
        computed_at=now,
        periods=[
            PeriodFigures(
                period="rolling_90d", start=today - timedelta(days=89), end=today, figures=figures
            )
        ],
    )
    return CloudEvent[SiteIndicatorsUpdated](
        id=new_event_id(),
        source="/bench",
        type=SITE_INDICATORS_UPDATED.type,
        time=now,
        subject=site_id,
        data=data,
    )


async def _send(producer: AIOKafkaProducer, event: CloudEvent[SiteIndicatorsUpdated]) -> None:
    assert event.subject is not None
    await producer.send_and_wait(SITE_INDICATORS.name, encode(event), key=event.subject.encode())


async def _wait_for_feed(url: str, path: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url) as client:
        while time.monotonic() < deadline:
            response = await client.get(path)
            if response.status_code == 200:
                return response.headers["etag"].strip('"').removesuffix("-gzip")
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{path} not published after {timeout}s")


async def _wrk(url: str, headers: dict[str, str]) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION_SECONDS}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = await asyncio.to_thread(
        subprocess.run, [*command, url], capture_output=True, text=True, check=True
    )
    text = output.stdout
    per_second = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    assert p99 is not None, text
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} failed responses\n{text}")
    return {"per_second": round(per_second), "p99_ms": round(float(p99.group(1)) * scale, 2)}


async def _httpx_load(url: str, headers: dict[str, str]) -> dict[str, float]:
    """A few keep-alive clients of their own: httpx's shared pool slows down as concurrency
    grows, so more connections would measure the client, not the server."""
    latencies: list[float] = []
    deadline = time.monotonic() + DURATION_SECONDS

    async def worker() -> None:
        async with httpx.AsyncClient(headers=headers) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await client.get(url)
                if response.status_code >= 400:
                    raise RuntimeError(f"{url}: HTTP {response.status_code}")
                latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(HTTPX_CLIENTS)))
    elapsed = time.monotonic() - started
    return {
        "per_second": round(len(latencies) / elapsed),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


async def _event_to_push(url: str, producer: AIOKafkaProducer) -> dict[str, float]:
    """SSE_CLIENTS screens on one site; each event's time from send to every screen's receipt."""
    site_id = "bench-site-001"
    sent_at: dict[float, float] = {}
    received: list[float] = []
    connected: list[int] = []
    all_connected = asyncio.Event()
    done = asyncio.Event()

    async def screen() -> None:
        timeout = httpx.Timeout(10.0, read=None)
        async with (
            httpx.AsyncClient(base_url=url, timeout=timeout) as client,
            client.stream("GET", f"/v1/sites/{site_id}/events") as stream,
        ):
            connected.append(1)
            if len(connected) == SSE_CLIENTS:
                all_connected.set()
            async for line in stream.aiter_lines():
                if not line.startswith("data: {") or '"site_id"' not in line:
                    continue
                value = json.loads(line[6:])["current"]["indicators"][0]["value"]
                if value in sent_at:
                    received.append(time.perf_counter() - sent_at[value])
                if done.is_set():
                    return

    screens = [asyncio.ensure_future(screen()) for _ in range(SSE_CLIENTS)]
    await asyncio.wait_for(all_connected.wait(), timeout=30)
    await asyncio.sleep(0.5)  # past the initial snapshot each stream sends
    for index in range(SSE_EVENTS):
        value = 50.0 + index
        sent_at[value] = time.perf_counter()
        await _send(producer, _event(site_id, value=value))
        await asyncio.sleep(0.3)
    await asyncio.sleep(2.0)
    done.set()
    for task in screens:
        task.cancel()
    await asyncio.gather(*screens, return_exceptions=True)
    figures = latency_figures(received, "event_to_sse_push")
    figures["event_to_sse_push_max_ms"] = round(max(received, default=float("nan")) * 1000, 1)
    figures["event_to_sse_push_expected"] = SSE_CLIENTS * SSE_EVENTS
    return figures
