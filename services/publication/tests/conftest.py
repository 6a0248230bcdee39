"""Fixtures for publication's tests: events to send, a running service, tokens, an SSE reader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.envelope import CloudEvent, new_event_id
from contracts.events import IndicatorFigure, Interval, PeriodFigures, SiteIndicatorsUpdated
from contracts.topics import SITE_INDICATORS, SITE_INDICATORS_UPDATED
from plumbing.auth import LocalIssuer
from plumbing.services import ServiceProcess, start_system
from plumbing.settings import ServiceSettings
from plumbing.testing import async_wait_for, produce

LABELS = {
    "nps": ("Recommandation (NPS)", "score", "adjusted_wald"),
    "satisfaction": ("Satisfaction globale (8 à 10 sur 10)", "percent", "wilson"),
    "fcr_declared": ("Résolution dès le premier contact (déclarée)", "percent", "wilson"),
    "ces": ("Effort (part d'accord)", "percent", "wilson"),
    "satisfaction_mean": ("Satisfaction globale (moyenne sur 10)", "mean_1_10", "t"),
}


def figure(indicator: str, value: float | None, n: int) -> IndicatorFigure:
    label, unit, method = LABELS[indicator]
    interval = None if value is None else Interval(low=value - 2.5, high=value + 2.5, method=method)
    counts = {}
    if unit == "score" and value is not None:  # as scoring sends them: the change rule reads them
        promoters = round(n * (100 + value) / 200)
        counts = {"promoters": promoters, "passives": 0, "detractors": n - promoters}
    return IndicatorFigure(
        indicator=indicator,
        label=label,
        value=value,
        unit=unit,
        sample_size=n,
        interval=interval,
        counts=counts,
    )


def site_event(
    site_id: str,
    current: dict[str, tuple[float | None, int]],
    previous: dict[str, tuple[float | None, int]] | None = None,
    *,
    network: str = "urssaf",
    site_name: str | None = None,
) -> CloudEvent[SiteIndicatorsUpdated]:
    """An indicators event: `current` maps indicator id → (value, sample size)."""
    today = date.today()
    start = today - timedelta(days=89)
    periods = [
        PeriodFigures(
            period="rolling_90d",
            start=start,
            end=today,
            figures=[figure(i, v, n) for i, (v, n) in current.items()],
        ),
        PeriodFigures(
            period="previous_rolling_90d",
            start=start - timedelta(days=90),
            end=start - timedelta(days=1),
            figures=[figure(i, v, n) for i, (v, n) in (previous or {}).items()],
        ),
    ]
    now = datetime.now(UTC)
    data = SiteIndicatorsUpdated(
        site_id=site_id,
        site_name=site_name or f"Accueil de {site_id}",
        network=network,
        computed_at=now,
        periods=periods,
    )
    return CloudEvent[SiteIndicatorsUpdated](
        id=new_event_id(),
        source="/tests",
        type=SITE_INDICATORS_UPDATED.type,
        time=now,
        subject=site_id,
        data=data,
    )


@pytest.fixture(scope="module")
def send(stack) -> Callable[..., Any]:
    async def send_events(*events: CloudEvent[SiteIndicatorsUpdated]) -> None:
        await produce(stack.kafka_bootstrap_servers, SITE_INDICATORS.name, list(events))

    return send_events


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalIssuer, str]:
    """The dev identity provider: a key whose JWKS the service reads from a file."""
    local = LocalIssuer.from_settings(ServiceSettings())
    jwks_url = local.write_jwks(tmp_path_factory.mktemp("issuer") / "jwks.json")
    return local, jwks_url


@pytest.fixture(scope="module")
def publication(stack, issuer, tmp_path_factory) -> Iterator[ServiceProcess]:
    """The real service process on the module's broker and database."""
    _, jwks_url = issuer
    system = start_system(
        stack.env(),
        tmp_path_factory.mktemp("logs"),
        only=("publication",),
        extra_env={
            "ADMIN_JWKS_URL": jwks_url,
            "SSE_HEARTBEAT_SECONDS": "1",
            "SSE_RETRY_MS": "500",
            "PUBLIC_FLOOR": "30",
        },
    )
    try:
        yield system["publication"]
    finally:
        system.stop()


async def published_feed(
    base_url: str, site_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    """The site's feed, once `check` holds (the consumer group joins in ~5 s on Tansu)."""
    async with httpx.AsyncClient(base_url=base_url) as client:

        async def ready() -> dict[str, Any] | None:
            response = await client.get(f"/v1/sites/{site_id}/indicators")
            if response.status_code != 200:
                return None
            body: dict[str, Any] = response.json()
            return body if check(body) else None

        return await async_wait_for(ready, timeout=timeout, interval=0.1)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def feed_when() -> Callable[..., Any]:
    return published_feed


class SseClient:
    """Reads `event:`/`data:` blocks of a server-sent-events stream into a queue."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.raw: list[str] = []

    async def next_event(self, name: str, timeout: float = 10.0) -> Any:
        async def wanted() -> Any:
            while True:
                event, data = await self.events.get()
                if event == name:
                    return json.loads(data)

        return await asyncio.wait_for(wanted(), timeout)

    async def read(self, response: httpx.Response) -> None:
        event, data = "message", []
        async for line in response.aiter_lines():
            self.raw.append(line)
            if line == "":
                if data:
                    await self.events.put((event, "\n".join(data)))
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())


@pytest.fixture(scope="session")
def sse() -> Callable[[str, str], Any]:
    @asynccontextmanager
    async def open_stream(base_url: str, site_id: str) -> AsyncIterator[SseClient]:
        client = SseClient()
        timeout = httpx.Timeout(10.0, read=None)
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=timeout) as http,
            http.stream("GET", f"/v1/sites/{site_id}/events") as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = asyncio.ensure_future(client.read(response))
            try:
                yield client
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)

    return open_stream


@pytest.fixture(scope="session")
def publication_artifacts(artifacts_dir: Path) -> Path:
    folder = artifacts_dir / "publication"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def make_event() -> Callable[..., CloudEvent[SiteIndicatorsUpdated]]:
    return site_event
