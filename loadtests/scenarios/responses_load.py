"""Answered surveys per second on the survey page: each survey is a real user's two requests,
`GET /s/{token}` (the gzip'd page, whose CSRF field is read) then `POST /s/{token}` with every
answer, ending on the thank-you page. p50/p99 per request and per survey (GET + POST).

Two phases: the capacity (CONCURRENCY users answering back to back), then the latency when
surveys start at the target rate (open loop). CPU milliseconds per survey of each component are
reported too: on a shared machine they say what the throughput alone cannot.

Knobs (environment): RESPONSES_LOAD_GENERATOR=locust|asyncio (default locust),
RESPONSES_REPLICAS (service processes behind an even spread of connections, default 1),
RESPONSES_LOAD_CONCURRENCY (capacity users, default 32), RESPONSES_OPEN_LOOP_CONNECTIONS (users
or connections of the open loop, default 64).

The service, PostgreSQL, the broker (the outbox relays every response) and the load generator
share this machine's cores. The load comes from locust (`loadtests/locust_responses.py`,
FastHttpUser), in both models: closed for the capacity, open (a fixed schedule of starts, each
survey timed from its planned start) at the target. locust spends ~0.7-0.9 ms of CPU per survey,
taken from the 2 cores the service is measured on; `RESPONSES_LOAD_GENERATOR=asyncio` drives
the same path with a minimal keep-alive HTTP/1.1 client on asyncio streams (~0.2-0.4 ms).

One replica by default: measured on this machine, a second process costs ~40 % more service
CPU per survey at 500/s (each event loop wakes for fewer requests at a time, and runs its own
consumer and outbox relay), for no latency gain while one core is enough.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
import resource
import secrets
import sys
import time
import urllib.parse
import uuid
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import InvitationSent
from contracts.topics import INVITATION_SENT, SURVEY_INVITATION
from loadtests.stats import percentile
from plumbing.services import start_system
from plumbing.testing import produce

NAME = "responses_load"
DESCRIPTION = "answered surveys/s (GET page + POST answers), p50/p99 per request and per survey"
TARGET_PER_SECOND = 500
WARMUP_SECONDS = 3.0
SECONDS = 10.0
CONCURRENCY = int(os.environ.get("RESPONSES_LOAD_CONCURRENCY", "32"))
OPEN_LOOP_CONNECTIONS = int(os.environ.get("RESPONSES_OPEN_LOOP_CONNECTIONS", "64"))
# One Python process uses one core at most; on 2 cores, one replica leaves the other core to
# PostgreSQL, the broker and the load generator (RESPONSES_REPLICAS=2: two processes, as two pods).
REPLICAS = int(os.environ.get("RESPONSES_REPLICAS", "1"))
INVITATIONS = 32_000  # enough for both phases up to ~1,800 surveys/s of capacity
CSRF = re.compile(rb'name="csrf" value="([0-9a-f]+)"')
ANSWERS = {
    "satisfaction_globale": "9", "recommandation": "10", "canal": "telephone", "effort": "6",
    "plusieurs_contacts": "non", "theme_clarte": "8", "theme_delais": "5", "theme_courtoisie": "10",
    "profil": "employeur", "nature_demande": "information", "suggestion": "Très bon accueil.",
    "action": "submit",
}  # fmt: skip


async def run(ctx: Any) -> dict[str, Any]:
    systems = []
    try:
        for replica in range(REPLICAS):  # like a Kubernetes Service: connections spread evenly
            (ctx.workdir / f"replica-{replica}").mkdir()
            systems.append(await asyncio.to_thread(
                start_system, ctx.stack.env(), ctx.workdir / f"replica-{replica}",
                only=("responses",),
                extra_env={"LOG_LEVEL": "WARNING", "RATE_LIMIT_IP_PER_MINUTE": "0",
                           "RATE_LIMIT_TOKEN_PER_MINUTE": "0", "DATABASE_POOL_SIZE": "20"},
            ))  # fmt: skip
        tokens = iter(await _invitations(ctx, INVITATIONS))
        urls = [system["responses"].url for system in systems]
        cpu = CpuMeter(ctx.stack, [system["responses"].process for system in systems])
        figures: dict[str, Any] = {
            "machine_busy_percent_before": await _quiet_machine(),
            "cpu_speed_probe_ms": _cpu_speed_probe(),
        }
        generator = os.environ.get("RESPONSES_LOAD_GENERATOR", "locust")
        figures |= {"load_generator": generator, "service_replicas": REPLICAS}
        # 1. Capacity: CONCURRENCY users answering back to back, as fast as the service allows.
        cpu.start()
        if generator == "locust":
            capacity = await asyncio.to_thread(_locust, urls, tokens, ctx.workdir)
        else:
            capacity = await _closed_loop(urls, tokens)
        capacity |= cpu.stop(capacity.pop("surveys_completed"))
        figures |= {f"capacity_{key}": value for key, value in capacity.items()}
        # 2. Latency at the target: surveys start at TARGET_PER_SECOND whatever the answers'
        # speed (open loop), timed from their planned start, so a stall is never hidden.
        cpu.start()
        if generator == "locust":
            target = await asyncio.to_thread(
                _locust, urls, tokens, ctx.workdir, rate=TARGET_PER_SECOND
            )
        else:
            target = await _open_loop(urls, tokens, TARGET_PER_SECOND)
        target |= cpu.stop(target.pop("surveys_completed"))
        figures |= {f"at_target_{key}": value for key, value in target.items()}
        figures["target_surveys_per_second"] = TARGET_PER_SECOND
        return figures
    finally:
        for system in systems:
            system.stop()


async def _quiet_machine(limit: float = 15.0, patience: float = 120.0) -> float:
    """Wait (a while) until other work leaves the cores alone; return how busy they were."""
    deadline = time.monotonic() + patience
    while True:
        busy = await _busy_percent()
        if busy < limit or time.monotonic() > deadline:
            return round(busy, 1)
        print(f"[bench] machine {busy:.0f} % busy with other work: waiting", flush=True)


def _cpu_speed_probe() -> float:
    """A fixed Python loop, best of three: this VM's speed drifts by tens of per cent from one
    hour to the next, so runs compare only next to this number (lower is faster)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        total = 0
        for number in range(2_000_000):
            total += number
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


async def _busy_percent(seconds: float = 2.0) -> float:
    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total_before, idle_before = sample()
    await asyncio.sleep(seconds)
    total_after, idle_after = sample()
    return 100.0 * (1 - (idle_after - idle_before) / max(1, total_after - total_before))


class CpuMeter:
    """CPU seconds of each component over a phase, per answered survey, and the cores other
    processes of the machine took meanwhile: on a shared machine the throughput depends on the
    neighbours, and these say by how much."""

    def __init__(self, stack: Any, services: list[Any]) -> None:
        import psutil

        # DevStack keeps its children private; read-only use, to name the broker and database.
        broker, postgres = (psutil.Process(child.pid) for child in stack._children[:2])
        self.parts = {
            "service": [psutil.Process(s.pid) for s in services], "broker": [broker],
            "postgres": [postgres], "load_generator": [psutil.Process()],
        }  # fmt: skip
        self.before: dict[str, float] = {}

    def _seconds(self) -> dict[str, float]:
        import psutil

        totals = {"machine": psutil.cpu_times().user + psutil.cpu_times().system,
                  "wall": time.perf_counter()}  # fmt: skip
        for name, roots in self.parts.items():
            total = 0.0
            for root in roots:
                family = [root, *self._helpers(name, root)]
                for process in family:
                    try:
                        times = process.cpu_times()
                        total += times.user + times.system
                    except psutil.Error:
                        pass
            totals[name] = total
        # locust, when it generates the load, is a child process that has ended by now.
        ended = resource.getrusage(resource.RUSAGE_CHILDREN)
        totals["load_generator"] += ended.ru_utime + ended.ru_stime
        return totals

    @staticmethod
    def _helpers(name: str, root: Any) -> list[Any]:
        return list(root.children(recursive=True)) if name == "postgres" else []

    def start(self) -> None:
        self.before = self._seconds()

    def stop(self, surveys: int) -> dict[str, float]:
        spent = {name: value - self.before[name] for name, value in self._seconds().items()}
        figures = {
            f"cpu_ms_per_survey_{name}": round(spent[name] * 1000 / max(1, surveys), 2)
            for name in self.parts
        }
        figures["cpu_ms_per_survey_total"] = round(sum(figures.values()), 2)
        ours = sum(spent[name] for name in self.parts)
        figures["other_processes_cores"] = round((spent["machine"] - ours) / spent["wall"], 2)
        return figures


async def _invitations(ctx: Any, count: int) -> list[str]:
    """Links the service knows, through the real path: `invitation sent` events on the broker."""
    tokens = [secrets.token_urlsafe(12) for _ in range(count)]
    now = utc_now()
    events = [
        CloudEvent[InvitationSent](
            id=new_event_id(), source="/bench", type=INVITATION_SENT.type, time=now,
            subject=f"bench-site-{index % 20:02d}",
            data=InvitationSent(
                invitation_id=f"inv-{uuid.uuid4().hex[:16]}", contact_id=f"crm-{index}",
                site_id=f"bench-site-{index % 20:02d}", site_name="Accueil de Montreuil",
                network="urssaf", channel="telephone", motif="declaration", profile="employeur",
                survey_channel="sms", user_pseudo_id=secrets.token_hex(16),
                questionnaire_version="urssaf-chaud-2024-v1",
                token_sha256=hashlib.sha256(token.encode()).hexdigest(), sent_at=now,
                expires_at=now + timedelta(days=7),
            ),
        )
        for index, token in enumerate(tokens)
    ]  # fmt: skip
    bootstrap = ctx.stack.kafka_bootstrap_servers
    for start in range(0, count, 5000):
        await produce(bootstrap, SURVEY_INVITATION.name, events[start : start + 5000])
    connection = await asyncpg.connect(ctx.stack.database_url)
    try:
        deadline = time.monotonic() + 180
        known = "SELECT count(*) FROM survey_responses.invitations"
        while await connection.fetchval(known) < count:
            if time.monotonic() > deadline:
                raise TimeoutError("invitations not all known to the service")
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
    return tokens


class Http:
    """One keep-alive HTTP/1.1 connection; just enough protocol for this scenario."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Accept-Encoding: gzip\r\nUser-Agent: responses-bench\r\n")  # fmt: skip
        if body:
            head += "Content-Type: application/x-www-form-urlencoded\r\n"
            head += f"Content-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line, _, rest = (await self.reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
        headers = {}
        for line in rest.split(b"\r\n"):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        payload = await self.reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"content-encoding") == b"gzip":
            payload = zlib.decompress(payload, 16 + zlib.MAX_WBITS)
        return int(status_line.split()[1]), payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _survey(http: Http, token: str, started: float, samples: dict[str, list[float]],
                  failures: dict[str, int], measured: bool) -> None:  # fmt: skip
    """One user: the page (its CSRF field read), then every answer posted, thanks expected."""
    status, page = await http.request("GET", f"/s/{token}")
    got = time.perf_counter()
    match = CSRF.search(page)
    if status != 200 or not match:
        failures[f"GET {status}"] = failures.get(f"GET {status}", 0) + 1
        return
    form = urllib.parse.urlencode({**ANSWERS, "csrf": match.group(1).decode()}).encode()
    status, page = await http.request("POST", f"/s/{token}", form)
    done = time.perf_counter()
    if status != 200 or b"bien enregistr" not in page:
        failures[f"POST {status}"] = failures.get(f"POST {status}", 0) + 1
        return
    samples["completed"].append(done - started)
    if measured:
        samples["gets"].append(got - started)
        samples["posts"].append(done - got)
        samples["surveys"].append(done - started)


def _endpoint(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


async def _closed_loop(urls: list[str], tokens: Iterator[str]) -> dict[str, Any]:
    measuring_from = time.perf_counter() + WARMUP_SECONDS
    stop_at = measuring_from + SECONDS
    samples: dict[str, list[float]] = {"gets": [], "posts": [], "surveys": [], "completed": []}
    failures: dict[str, int] = {}

    async def user(url: str) -> None:
        http = Http(*_endpoint(url))
        try:
            while (now := time.perf_counter()) < stop_at:
                token = next(tokens, None)
                if token is None:  # every link answered: more invitations needed for this rate
                    failures["out of links"] = 1
                    return
                await _survey(http, token, now, samples, failures, measured=now >= measuring_from)
        finally:
            http.close()

    await asyncio.gather(*(user(urls[index % len(urls)]) for index in range(CONCURRENCY)))
    # Surveys that started in the window and ended after it are counted: a small overestimate
    # (under CONCURRENCY surveys) that keeps the latency samples free of any cut-off bias.
    return _figures(len(samples["surveys"]) / SECONDS, samples, failures) | {
        "concurrency": CONCURRENCY
    }


async def _open_loop(urls: list[str], tokens: Iterator[str], rate: int) -> dict[str, Any]:
    """Surveys start on a fixed schedule over OPEN_LOOP_CONNECTIONS keep-alive connections (as
    wrk2 does); a survey waiting for a free connection is late, and its lateness is counted."""
    pool: asyncio.Queue[Http] = asyncio.Queue()
    for index in range(OPEN_LOOP_CONNECTIONS):
        pool.put_nowait(Http(*_endpoint(urls[index % len(urls)])))
    samples: dict[str, list[float]] = {"gets": [], "posts": [], "surveys": [], "completed": []}
    failures: dict[str, int] = {}
    started = time.perf_counter()
    measuring_from = started + WARMUP_SECONDS
    total = int(rate * (WARMUP_SECONDS + SECONDS))

    async def one(token: str, planned: float) -> None:
        http = await pool.get()
        try:
            await _survey(http, token, planned, samples, failures, planned >= measuring_from)
        except (OSError, asyncio.IncompleteReadError):
            http.close()
            http = Http(http.host, http.port)
            failures["connection"] = failures.get("connection", 0) + 1
        pool.put_nowait(http)

    running = []
    for index in range(total):
        planned = started + index / rate
        if (delay := planned - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        token = next(tokens, None)
        if token is None:
            failures["out of links"] = 1
            break
        running.append(asyncio.create_task(one(token, planned)))
    await asyncio.gather(*running)
    ended = time.perf_counter()
    while not pool.empty():
        pool.get_nowait().close()
    figures = _figures(len(samples["surveys"]) / (ended - measuring_from), samples, failures)
    return figures | {"connections": OPEN_LOOP_CONNECTIONS}


def _figures(
    rate: float, samples: dict[str, list[float]], failures: dict[str, int]
) -> dict[str, Any]:
    def ms(kind: str, fraction: float) -> float:
        return round(percentile(samples[kind], fraction) * 1000, 1)

    return {
        "surveys_per_second": round(rate, 1),
        "survey_p50_ms": ms("surveys", 0.5), "survey_p99_ms": ms("surveys", 0.99),
        "get_p50_ms": ms("gets", 0.5), "get_p99_ms": ms("gets", 0.99),
        "post_p50_ms": ms("posts", 0.5), "post_p99_ms": ms("posts", 0.99),
        "surveys_measured": len(samples["surveys"]), "failures": failures,
        "surveys_completed": len(samples.get("completed", samples["surveys"])),
    }  # fmt: skip


def _locust(urls: list[str], tokens: Iterator[str], workdir: Path, rate: int = 0) -> dict[str, Any]:
    """The same path driven by locust (FastHttpUser), headless, in a child process: closed model
    with CONCURRENCY users, or open model at `rate` surveys/s over OPEN_LOOP_CONNECTIONS users.
    Users are spread over the replicas as the asyncio generator's connections are."""
    import subprocess

    users = OPEN_LOOP_CONNECTIONS if rate else CONCURRENCY
    seconds = int(WARMUP_SECONDS + SECONDS)
    tokens_file = workdir / f"tokens-{rate}.txt"
    needed = int((rate or 1500) * (seconds + 2))
    tokens_file.write_text("\n".join(itertools.islice(tokens, needed)), encoding="utf-8")
    locustfile = Path(__file__).resolve().parents[1] / "locust_responses.py"
    report = workdir / f"locust-report-{rate}.json"
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", urls[0],
         "-u", str(users), "-r", str(users), "-t", f"{seconds + (1 if rate else 0)}s",
         "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "5"],
        env={**os.environ, "RESPONSES_TOKENS_FILE": str(tokens_file),
             "RESPONSES_REPORT_FILE": str(report), "RESPONSES_WARMUP_SECONDS": str(WARMUP_SECONDS),
             "RESPONSES_HOSTS": ",".join(urls), "RESPONSES_RATE": str(rate)},
        check=True, timeout=seconds + 60, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    samples = json.loads(report.read_text(encoding="utf-8"))
    measured_rate = len(samples["surveys"]) / samples["measured_seconds"]
    figures = _figures(measured_rate, samples, samples["failures"])
    return figures | ({"users": users, "rate": rate} if rate else {"concurrency": users})
