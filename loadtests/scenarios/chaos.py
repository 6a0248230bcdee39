"""Chaos (issue #13): two replicas of every service while things fail together, and nothing lost.

Contacts close at a steady pace over several sites; simulated users answer through the JSON API
(`POST /v1/responses/{token}`), spread over the responses replicas, retrying on connection
errors, 503 and a link not known yet, as a phone would. Meanwhile: `kill -9` of random replicas
(each restarted), PostgreSQL killed with `kill -9` and restarted on the same data, the SMTP relay
frozen (connections accepted, no reply), and one responses replica stopped with SIGTERM.

At the end it checks, and returns in its figures (`violations` lists what failed):
- every contact got exactly one distinct survey link; a resent mail has the same link and
  Message-ID (`mails_resent` counts them: only those in flight when something broke);
- every acknowledged answer is counted exactly once in the published figures of every
  publication replica, and those figures equal a recomputation from the answers;
- no HTTP 500 ever (503 with Retry-After allowed), `/readyz` not ready while the database is away;
- every replica ready again within 30 s of the database's return (LISTEN connections included:
  `/readyz` reports a listener down);
- the SIGTERM drain: in-flight requests answered, exit code 0, no answer lost;
- how long each disturbance took to heal, and answer → screen p50/p95 during and outside them.

`make chaos` runs the default plan (50,000 contacts, 20 kills, SMTP frozen 60 s);
`tests/e2e/test_chaos.py` runs a small one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import os
import random
import re
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from contracts.envelope import encode
from contracts.events import SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED
from loadtests.stats import latency_figures, percentile
from plumbing import devstack
from plumbing.crm_simulator import CrmSimulator
from plumbing.services import ServiceProcess, System, start_system
from plumbing.testing import LINK

NAME = "chaos"
DESCRIPTION = (
    "two replicas of everything; kill -9s, a PostgreSQL kill and restart, a frozen SMTP relay, "
    "a SIGTERM drain: nothing lost, nothing counted twice, no 500"
)
DEFAULT_RUN = False  # minutes long: `make chaos` (python -m loadtests.bench chaos)

READY_AFTER_DATABASE_S = 30.0
INDICATORS = ("satisfaction", "nps", "fcr_declared", "ces")


@dataclass(frozen=True)
class Plan:
    contacts: int = 50_000
    sites: int = 6
    seconds: float = 300.0  # contacts close at a steady pace over this long
    answer_share: float = 0.2  # of the contacts, how many users answer
    kills: int = 20
    postgres_down_seconds: float = 5.0
    smtp_freeze_seconds: float = 60.0
    # survey-dispatch's SMTP_TIMEOUT_SECONDS in the run (its default): shorter than the freeze,
    # so the mail in flight when the relay hangs is given up on, stored by the relay all the
    # same, and sent again after the thaw (`mails_resent`)
    smtp_timeout_seconds: float = 10.0
    sigterm: bool = True
    replicas: int = 2
    users: int = 24  # users answering at the same time
    feed_poll_seconds: float = 0.5
    answer_patience_seconds: float = 240.0  # a user gives up after this long
    settle_seconds: float = 900.0  # after the last contact, to let everything arrive
    restart_delay_seconds: float = 1.0  # a killed replica comes back after this long
    # No kill starts later than this after the start: on a machine so busy that a replica takes
    # a minute to restart, the remaining kills are skipped (and counted) so the run still ends
    # and writes its results. The database restart and the SIGTERM drain are never skipped.
    kills_until_seconds: float = 900.0
    # The whole run stops at this cap (a machine too busy to finish): it then returns what it
    # measured so far, with a violation naming the stage it was in, and the results file says so.
    time_cap_seconds: float = 4800.0
    seed: int = 13


SMALL = Plan(
    contacts=300,
    sites=3,
    seconds=50.0,
    answer_share=0.5,
    kills=3,
    postgres_down_seconds=3.0,
    smtp_freeze_seconds=10.0,
    smtp_timeout_seconds=3.0,
    users=8,
    feed_poll_seconds=0.25,
    answer_patience_seconds=120.0,
    settle_seconds=120.0,
    time_cap_seconds=900.0,
)

SYSTEM_ENV = {
    "DEFAULT_RULES": '{"delay_minutes": 0, "email_uses_sms_window": false, "fatigue_days": 0}',
    "PUBLIC_FLOOR": "1",
    # every simulated user posts from 127.0.0.1: the limits would measure themselves
    "RATE_LIMIT_IP_PER_MINUTE": "0",
    "RATE_LIMIT_TOKEN_PER_MINUTE": "0",
    # every screen watched (each site on each publication replica) streams from 127.0.0.1 too
    "SSE_MAX_CLIENTS_PER_ADDRESS": "1000",
    "SENDER_POLL_SECONDS": "0.05",
    # a send that failed during the SMTP freeze is tried again within seconds, not minutes
    "RETRY_BASE_SECONDS": "2",
    "RETRY_MAX_SECONDS": "20",
}


async def run(ctx: Any) -> dict[str, Any]:
    return await chaos(ctx.stack, ctx.workdir, Plan())


# --------------------------------------------------------------------------- what is observed


@dataclass
class Mail:
    token: str | None
    message_id: str | None


@dataclass
class Disturbance:
    kind: str
    target: str
    started: float
    healed: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "heal_seconds": round(self.healed - self.started, 2) if self.healed else None,
            **self.detail,
        }


@dataclass
class Observed:
    started: float = field(default_factory=time.monotonic)
    statuses: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    mails: dict[str, list[Mail]] = field(default_factory=lambda: defaultdict(list))
    acks: dict[str, list[tuple[float, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    acked_after_retry: int = 0
    abandoned: int = 0
    reached: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    disturbances: list[Disturbance] = field(default_factory=list)
    inflight: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    watched: dict[int, str] = field(default_factory=dict)  # request id → outcome (drain)
    slow_ids: set[int] = field(default_factory=set)  # the answers being received at SIGTERM
    request_ids: itertools.count[int] = field(default_factory=itertools.count)
    mail_files: set[str] = field(default_factory=set)
    kills_skipped: int = 0
    contacts_closed: int = 0
    stage: str = "starting"  # the last step logged
    # (publication replica, site) → the figures its event stream pushed last, and how many
    screens: dict[tuple[str, str], dict[str, tuple[int, float | None]]] = field(
        default_factory=dict
    )
    screen_pushes: Counter[tuple[str, str]] = field(default_factory=Counter)
    screen_reconnects: int = 0
    held: set[int] = field(default_factory=set)  # contacts kept to answer during the drain
    held_mailed: dict[int, str] = field(default_factory=dict)

    def status(self, target: str, response: httpx.Response, *, probe: bool = False) -> None:
        """Count a status; a 5xx other than 503 is a violation, and so is a 503 without
        Retry-After (except from /readyz, a probe: its 503 only means not ready)."""
        self.statuses[str(response.status_code)] += 1
        if response.status_code >= 500 and response.status_code != 503:
            self.violation(f"HTTP {response.status_code} from {target} {response.request.url.path}")
        if response.status_code == 503 and not probe and "retry-after" not in response.headers:
            self.violation(f"503 without Retry-After from {target} {response.request.url.path}")

    def violation(self, text: str) -> None:
        self.violations.append(text)
        print(f"[chaos] VIOLATION {text}", flush=True)

    def windows(self) -> list[tuple[float, float]]:
        now = time.monotonic()
        return [(d.started, d.healed or now) for d in self.disturbances]


def log(text: str, observed: Observed) -> None:
    observed.stage = text
    clock = time.strftime("%H:%M:%S")
    print(f"[chaos {clock} {time.monotonic() - observed.started:6.1f}s] {text}", flush=True)


# --------------------------------------------------------------------------- the run


async def chaos(stack: devstack.DevStack, workdir: Path, plan: Plan) -> dict[str, Any]:
    if stack.smtp_sink is None:
        raise RuntimeError("the chaos run needs the devstack's own SMTP sink (SMTP_URL unset)")
    if plan.smtp_freeze_seconds <= plan.smtp_timeout_seconds:
        raise ValueError("the SMTP freeze must outlast dispatch's SMTP timeout, or no mail resends")
    system = await asyncio.to_thread(
        start_system,
        stack.env(),
        workdir,
        extra_env={**SYSTEM_ENV, "SMTP_TIMEOUT_SECONDS": str(plan.smtp_timeout_seconds)},
        replicas=plan.replicas,
        ready_timeout=240.0,  # eight processes importing at once on a shared machine
    )
    observed = Observed()
    try:
        async with asyncio.timeout(plan.time_cap_seconds):
            return await _run(stack, system, plan, observed)
    except TimeoutError:
        observed.violation(
            f"run stopped at its time cap ({plan.time_cap_seconds:.0f} s), after: {observed.stage}"
        )
        return _partial(plan, observed)
    finally:
        system.stop()


def _partial(plan: Plan, observed: Observed) -> dict[str, Any]:
    """What a run stopped at its time cap had measured."""
    return {
        "contacts": plan.contacts,
        "stopped_at_time_cap_seconds": plan.time_cap_seconds,
        "last_stage": observed.stage,
        "contacts_closed": observed.contacts_closed,
        "contacts_mailed": len(observed.mails),
        "mails_stored": sum(map(len, observed.mails.values())),
        "answers_acknowledged": sum(map(len, observed.acks.values())),
        "answers_abandoned": observed.abandoned,
        "http_statuses": dict(sorted(observed.statuses.items())),
        "kills_skipped_for_time": observed.kills_skipped,
        "disturbances": [d.as_json() for d in observed.disturbances],
        "violations": observed.violations,
        "ok": False,
    }


async def _run(
    stack: devstack.DevStack, system: System, plan: Plan, observed: Observed
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    sites = [
        (f"chaos-{run_id}-site-{n}", f"Accueil chaos {n}", "urssaf") for n in range(plan.sites)
    ]
    choose = random.Random(plan.seed)
    answering = {n for n in range(plan.contacts) if choose.random() < plan.answer_share}
    address_of = [f"chaos-{run_id}-{n}@exemple.fr" for n in range(plan.contacts)]
    number_of = {address: n for n, address in enumerate(address_of)}
    site_of = {address_of[n]: sites[n % plan.sites][0] for n in range(plan.contacts)}
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    if plan.sigterm:  # three users who will be sending their answer when SIGTERM comes
        observed.held = set(sorted(n for n in answering if n >= plan.contacts * 0.3)[:3])
    limits = httpx.Limits(max_connections=plan.users * 2 + 16, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        all_mailed = asyncio.Event()
        stop_feed = asyncio.Event()
        mail_task = asyncio.create_task(
            _watch_mail(stack, observed, number_of, answering, queue, all_mailed)
        )
        users = [
            asyncio.create_task(_user(client, system, plan, observed, queue, site_of, number_of))
            for _ in range(plan.users)
        ]
        feed_task = asyncio.create_task(
            _watch_feeds(client, system, plan, observed, [s[0] for s in sites], stop_feed)
        )
        screen_client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=60.0))
        screens = [
            asyncio.create_task(_screen(screen_client, replica, site, observed))
            for replica in system.replicas["publication"]
            for site, _, _ in sites
        ]
        chaos_task = asyncio.create_task(
            _disturb(stack, system, client, plan, observed, choose, site_of)
        )
        await _close_contacts(stack, plan, sites, address_of, run_id, observed)
        log("every contact closed", observed)
        await chaos_task
        log("every disturbance over", observed)
        try:
            await asyncio.wait_for(all_mailed.wait(), plan.settle_seconds)
        except TimeoutError:
            observed.violation(
                f"{plan.contacts - len(observed.mails)} contacts never got a mail "
                f"within {plan.settle_seconds:.0f} s"
            )
        log("every contact mailed", observed)
        for _ in users:
            queue.put_nowait(None)
        await asyncio.gather(*users)
        log(f"every user done ({sum(map(len, observed.acks.values()))} answers)", observed)
        await _wait_published(client, system, observed, plan.settle_seconds)
        stop_feed.set()
        await feed_task
        await asyncio.sleep(3.0)  # a double (mail or count) would show now
        mail_task.cancel()
        _scan_maildir(stack.maildir, observed, number_of, answering, queue)
        await _wait_screens(system, observed, plan.settle_seconds)
        for screen in screens:
            screen.cancel()
        await asyncio.gather(*screens, return_exceptions=True)
        await screen_client.aclose()
        figures = await _final_checks(client, system, plan, observed, address_of)
    return figures


async def _close_contacts(
    stack: devstack.DevStack,
    plan: Plan,
    sites: list[tuple[str, str, str]],
    address_of: list[str],
    run_id: str,
    observed: Observed,
) -> None:
    """`plan.contacts` contacts at a steady pace over `plan.seconds`, ten batches a second."""
    simulator = CrmSimulator(seed=plan.seed)
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap_servers, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        batches = max(1, int(plan.seconds * 10))
        started = time.monotonic()
        sent = 0
        for batch in range(batches):
            upto = plan.contacts * (batch + 1) // batches
            pending = []
            for n in range(sent, upto):
                address = address_of[n]
                contact = simulator.contact(site=sites[n % plan.sites]).model_copy(
                    update={
                        "contact_id": f"crm-{run_id}-{n}",
                        "user_ref": f"chaos-{run_id}-{n}",
                        "email": address,
                        "opted_out": False,
                        "preferred_channel": SurveyChannel.EMAIL,
                    }
                )
                event = CrmSimulator.event(contact)
                key = (event.subject or "k").encode()
                pending.append(await producer.send(CRM_CONTACT_CLOSED.name, encode(event), key=key))
            await asyncio.gather(*pending)
            sent = observed.contacts_closed = upto
            await asyncio.sleep(max(0.0, started + (batch + 1) / 10 - time.monotonic()))
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- the mail


_TO = re.compile(rb"^X-Envelope-To: (.+?)\r?$", re.MULTILINE)
_MESSAGE_ID = re.compile(rb"^Message-ID: (.+?)\r?$", re.MULTILINE | re.IGNORECASE)
_PLAIN = re.compile(rb"Content-Type: text/plain[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n(.*?)\r\n--", re.S)


def parse_mail(raw: bytes) -> tuple[str, Mail]:
    """The recipient, survey link token and Message-ID of a stored mail, without a full MIME
    parse (tens of thousands of them): the plain part is base64 (survey-dispatch's templates)."""
    to = _TO.search(raw)
    message_id = _MESSAGE_ID.search(raw)
    token = None
    plain = _PLAIN.search(raw)
    if plain:
        try:
            text = base64.b64decode(plain.group(1)).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            text = plain.group(1).decode("utf-8", "replace")
        found = LINK.findall(text)
        token = found[0] if found else None
    return (
        to.group(1).decode().strip() if to else "",
        Mail(token, message_id.group(1).decode().strip() if message_id else None),
    )


def _scan_maildir(
    maildir: Path,
    observed: Observed,
    number_of: dict[str, int],
    answering: set[int],
    queue: asyncio.Queue[str | None],
) -> None:
    folder = maildir / "new"
    names = sorted(set(os.listdir(folder)) - observed.mail_files) if folder.exists() else []
    for name in names:
        observed.mail_files.add(name)
        address, mail = parse_mail((folder / name).read_bytes())
        if address not in number_of:
            continue
        first = address not in observed.mails
        observed.mails[address].append(mail)
        if first and number_of[address] in observed.held:
            observed.held_mailed[number_of[address]] = address
        elif first and number_of[address] in answering:
            queue.put_nowait(address)


async def _watch_mail(
    stack: devstack.DevStack,
    observed: Observed,
    number_of: dict[str, int],
    answering: set[int],
    queue: asyncio.Queue[str | None],
    all_mailed: asyncio.Event,
) -> None:
    while True:
        _scan_maildir(stack.maildir, observed, number_of, answering, queue)
        if len(observed.mails) == len(number_of):
            all_mailed.set()
        await asyncio.sleep(0.3)


# --------------------------------------------------------------------------- the users


async def _user(
    client: httpx.AsyncClient,
    system: System,
    plan: Plan,
    observed: Observed,
    queue: asyncio.Queue[str | None],
    site_of: dict[str, str],
    number_of: dict[str, int],
) -> None:
    while (address := await queue.get()) is not None:
        n = number_of[address]
        token = observed.mails[address][0].token
        if token is None:
            observed.violation(f"no survey link in the mail of contact {n}")
            continue
        answers = CrmSimulator(seed=plan.seed * 1_000_003 + n).answers()
        await _answer(client, system, plan, observed, n, token, site_of[address], answers)


async def _answer(
    client: httpx.AsyncClient,
    system: System,
    plan: Plan,
    observed: Observed,
    n: int,
    token: str,
    site: str,
    answers: dict[str, Any],
    *,
    uncertain: bool = False,  # an earlier attempt may have been stored without our hearing it
) -> None:
    """One user's answer, as a phone sends it: again after a connection error, a 503 or a link
    not known yet (the invitation may still be on its way to responses), on either replica."""
    replicas = system.replicas["responses"]
    deadline = time.monotonic() + plan.answer_patience_seconds
    for attempt in itertools.count():
        if time.monotonic() > deadline:
            observed.abandoned += 1
            observed.violation(f"contact {n}: answer not acknowledged after retries")
            return
        replica = replicas[(n + attempt) % len(replicas)]
        request_id = next(observed.request_ids)
        observed.inflight[replica.name].add(request_id)
        try:
            response = await client.post(
                f"{replica.url}/v1/responses/{token}", json={"answers": answers}
            )
        except httpx.TransportError as error:
            if request_id in observed.watched:
                observed.watched[request_id] = type(error).__name__
            uncertain = uncertain or not isinstance(error, httpx.ConnectError)
            await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
            continue
        finally:
            observed.inflight[replica.name].discard(request_id)
        if request_id in observed.watched:
            observed.watched[request_id] = str(response.status_code)
        observed.status(replica.name, response)
        if response.status_code == 201 or (response.status_code == 409 and uncertain):
            observed.acks[site].append((time.monotonic(), answers))
            observed.acked_after_retry += response.status_code == 409
            return
        if response.status_code in (404, 429, 503) or response.status_code >= 500:
            uncertain = uncertain or response.status_code not in (404, 429, 503)
            retry_after = float(response.headers.get("retry-after", "0.5") or 0.5)
            await asyncio.sleep(min(retry_after, 5.0))
            continue
        observed.violation(f"contact {n}: answer refused with {response.status_code}")
        return


# --------------------------------------------------------------------------- the screens


def _figures(body: dict[str, Any]) -> dict[str, tuple[int, float | None]]:
    """(n, value) of each published indicator of the current period."""
    return {
        figure["id"]: (int(figure["sample_size"]), figure["value"])
        for figure in body["current"]["indicators"]
        if figure["published"]
    }


async def _feed(
    client: httpx.AsyncClient, replica: ServiceProcess, site: str, observed: Observed
) -> dict[str, tuple[int, float | None]] | None:
    try:
        response = await client.get(f"{replica.url}/v1/sites/{site}/indicators")
    except httpx.TransportError:
        return None
    observed.status(replica.name, response)
    return _figures(response.json()) if response.status_code == 200 else None


async def _watch_feeds(
    client: httpx.AsyncClient,
    system: System,
    plan: Plan,
    observed: Observed,
    sites: list[str],
    stop: asyncio.Event,
) -> None:
    """When each site's screen first showed its k-th answer (satisfaction's n)."""
    replicas = system.replicas["publication"]
    for round_number in itertools.count():
        replica = replicas[round_number % len(replicas)]
        for site in sites:
            figures = await _feed(client, replica, site, observed)
            shown = figures.get("satisfaction", (0, None))[0] if figures else 0
            now = time.monotonic()
            reached = observed.reached[site]
            reached.extend([now] * (shown - len(reached)))
        if stop.is_set():
            return
        await asyncio.sleep(plan.feed_poll_seconds)


async def _screen(
    client: httpx.AsyncClient, replica: ServiceProcess, site: str, observed: Observed
) -> None:
    """A reception-hall screen of `site` on one publication replica, as its EventSource: the
    figures of each `indicators` event pushed; after a cut (a kill, a drain, a 503) it comes
    back to the same replica with `Last-Event-ID`, until cancelled."""
    last_id: str | None = None
    while True:
        headers = {"last-event-id": last_id} if last_id else {}
        try:
            url = f"{replica.url}/v1/sites/{site}/events"
            async with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 200:
                    kind, event_id, data = "", None, ""
                    async for line in response.aiter_lines():
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("id: "):
                            event_id = line[4:]
                        elif line.startswith("data: "):
                            data = line[6:]
                        elif not line and kind == "indicators":
                            observed.screens[replica.name, site] = _figures(json.loads(data))
                            observed.screen_pushes[replica.name, site] += 1
                            last_id, kind = event_id, ""
                        elif not line:
                            kind = ""
                else:
                    observed.status(replica.name, response)
        except (httpx.TransportError, httpx.StreamError):
            pass
        observed.screen_reconnects += 1
        await asyncio.sleep(0.5)


async def _wait_screens(system: System, observed: Observed, timeout: float) -> None:
    """Until every screen shows what a recomputation from the acknowledged answers gives."""
    deadline = time.monotonic() + timeout
    expected = {site: recompute([a for _, a in acks]) for site, acks in observed.acks.items()}
    while time.monotonic() < deadline:
        if all(
            _same_figures(observed.screens.get((replica.name, site), {}), figures)
            for replica in system.replicas["publication"]
            for site, figures in expected.items()
        ):
            return
        await asyncio.sleep(0.5)


def _same_figures(
    published: dict[str, tuple[int, float | None]],
    expected: dict[str, tuple[int, float | None]],
) -> bool:
    return all(
        _same(published.get(indicator, (0, None)), expected[indicator]) for indicator in INDICATORS
    )


async def _wait_published(
    client: httpx.AsyncClient, system: System, observed: Observed, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        behind = 0
        for replica in system.replicas["publication"]:
            for site, acks in observed.acks.items():
                figures = await _feed(client, replica, site, observed)
                shown = figures.get("satisfaction", (0, None))[0] if figures else 0
                behind += shown < len(acks)
        if not behind:
            return
        await asyncio.sleep(1.0)
    observed.violation(f"figures still behind the answers after {timeout:.0f} s")


# --------------------------------------------------------------------------- the disturbances


async def _disturb(
    stack: devstack.DevStack,
    system: System,
    client: httpx.AsyncClient,
    plan: Plan,
    observed: Observed,
    choose: random.Random,
    site_of: dict[str, str],
) -> None:
    """The plan's disturbances at their times, one after the other (a kill waits for the
    database to be back); the SMTP freeze runs beside them."""
    schedule: list[tuple[float, str]] = [
        ((0.1 + 0.8 * (k + 0.5) / plan.kills) * plan.seconds, "kill") for k in range(plan.kills)
    ]
    schedule.append((0.5 * plan.seconds, "postgres"))
    if plan.sigterm:
        schedule.append((0.7 * plan.seconds, "sigterm"))
    freeze = asyncio.create_task(_freeze_smtp(stack, plan, observed, 0.2 * plan.seconds))
    for at, kind in sorted(schedule):
        await asyncio.sleep(max(0.0, observed.started + at - time.monotonic()))
        if kind == "kill" and time.monotonic() - observed.started > plan.kills_until_seconds:
            observed.kills_skipped += 1
        elif kind == "kill":
            await _kill(system, plan, observed, _victim(system, observed, choose))
        elif kind == "postgres":
            await _postgres(stack, system, client, plan, observed)
        else:
            target = system.replicas["responses"][-1]
            await _sigterm(system, client, plan, observed, target, site_of)
    await freeze


def _victim(system: System, observed: Observed, choose: random.Random) -> ServiceProcess:
    """A random replica of a service killed least so far: three kills hit three services."""
    killed = Counter(
        name
        for name, group in system.replicas.items()
        for d in observed.disturbances
        if d.kind == "kill -9" and d.target in {r.name for r in group}
    )
    fewest = min(killed[name] for name in system.replicas)
    services = sorted(name for name in system.replicas if killed[name] == fewest)
    return choose.choice(system.replicas[choose.choice(services)])


async def _kill(system: System, plan: Plan, observed: Observed, target: ServiceProcess) -> None:
    disturbance = Disturbance("kill -9", target.name, time.monotonic())
    observed.disturbances.append(disturbance)
    log(f"kill -9 {target.name}", observed)
    await asyncio.to_thread(target.kill)
    await asyncio.sleep(plan.restart_delay_seconds)
    target.start()
    try:
        await asyncio.to_thread(target.wait_ready, 120.0)
    except (RuntimeError, TimeoutError) as error:
        observed.violation(f"{target.name} did not come back after kill -9: {error}")
        return
    disturbance.healed = time.monotonic()
    log(f"{target.name} ready again", observed)


async def _ready(client: httpx.AsyncClient, replica: ServiceProcess, observed: Observed) -> bool:
    try:
        response = await client.get(f"{replica.url}/readyz", timeout=2.0)
    except httpx.TransportError:
        return False
    observed.status(replica.name, response, probe=True)
    return response.status_code == 200


async def _postgres(
    stack: devstack.DevStack,
    system: System,
    client: httpx.AsyncClient,
    plan: Plan,
    observed: Observed,
) -> None:
    disturbance = Disturbance("postgres kill -9", "postgres", time.monotonic())
    observed.disturbances.append(disturbance)
    log("kill -9 postgres", observed)
    await asyncio.to_thread(stack.kill_postgres)
    replicas = system.all()
    seen_not_ready: set[str] = set()
    down_until = time.monotonic() + plan.postgres_down_seconds
    while time.monotonic() < down_until:
        for replica in replicas:
            if not await _ready(client, replica, observed):
                seen_not_ready.add(replica.name)
        await asyncio.sleep(0.2)
    for replica in replicas:
        if replica.name not in seen_not_ready:
            observed.violation(f"{replica.name}: /readyz said ready while PostgreSQL was down")
    await asyncio.to_thread(stack.restart_postgres)
    back = time.monotonic()
    log("postgres restarted", observed)
    ready_after: dict[str, float] = {}
    while len(ready_after) < len(replicas) and time.monotonic() - back < 120:
        for replica in replicas:
            if replica.name not in ready_after and await _ready(client, replica, observed):
                ready_after[replica.name] = round(time.monotonic() - back, 2)
        await asyncio.sleep(0.1)
    disturbance.healed = time.monotonic()
    disturbance.detail = {"ready_after_restart_seconds": ready_after}
    late = {
        r.name: ready_after.get(r.name)
        for r in replicas
        if ready_after.get(r.name, 1e9) > READY_AFTER_DATABASE_S
    }
    if late:
        observed.violation(f"not ready within {READY_AFTER_DATABASE_S:.0f} s of PostgreSQL: {late}")
    log(f"every replica ready again (slowest {max(ready_after.values(), default=0)} s)", observed)


async def _freeze_smtp(stack: devstack.DevStack, plan: Plan, observed: Observed, at: float) -> None:
    sink = stack.smtp_sink
    assert sink is not None
    await asyncio.sleep(max(0.0, observed.started + at - time.monotonic()))
    # The relay hangs right after storing a message, before its 250: a mail certainly in flight,
    # which dispatch gives up on after its SMTP timeout and must send again, the same mail.
    sink.freeze(plan.smtp_freeze_seconds, after_next_message=True)
    for _ in range(3000):  # the next mail, within 30 s
        if not sink.freeze_armed:
            break
        await asyncio.sleep(0.01)
    on_a_message = not sink.freeze_armed
    if not on_a_message:  # nothing sent for 30 s: hang now all the same
        sink.freeze(plan.smtp_freeze_seconds)
    disturbance = Disturbance("smtp frozen", "smtp", time.monotonic())
    observed.disturbances.append(disturbance)
    log(f"SMTP frozen for {plan.smtp_freeze_seconds:.0f} s", observed)
    await asyncio.sleep(max(0.0, sink.frozen_until - time.monotonic()))
    thawed, stored = time.monotonic(), sink.stored
    log("SMTP answering again", observed)
    for _ in range(2400):  # the first new mail, within 120 s
        if sink.stored != stored:
            break
        await asyncio.sleep(0.05)
    disturbance.healed = time.monotonic()
    disturbance.detail = {
        "froze_with_a_mail_in_flight": on_a_message,
        "first_mail_after_thaw_seconds": round(disturbance.healed - thawed, 2),
    }


async def _slow_answer(
    client: httpx.AsyncClient,
    system: System,
    plan: Plan,
    observed: Observed,
    n: int,
    address: str,
    site: str,
    target: ServiceProcess,
    first_half_sent: asyncio.Event,
) -> None:
    """An answer whose body arrives in two halves a second apart (a phone on a poor network):
    certainly in flight when the SIGTERM comes. Then, if it failed, answered again as usual."""
    token = observed.mails[address][0].token or ""
    answers = CrmSimulator(seed=plan.seed * 1_000_003 + n).answers()
    body = json.dumps({"answers": answers}).encode()

    async def halves() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        first_half_sent.set()  # asked for the next chunk: the first one is written
        await asyncio.sleep(1.0)
        yield body[len(body) // 2 :]

    request_id = next(observed.request_ids)
    observed.watched[request_id] = "pending"
    observed.slow_ids.add(request_id)
    uncertain = False
    try:
        response = await client.post(
            f"{target.url}/v1/responses/{token}",
            content=halves(),
            headers={"content-type": "application/json"},
        )
    except httpx.TransportError as error:
        observed.watched[request_id] = type(error).__name__
        uncertain = not isinstance(error, httpx.ConnectError)
    else:
        observed.watched[request_id] = str(response.status_code)
        observed.status(target.name, response)
        if response.status_code == 201:
            observed.acks[site].append((time.monotonic(), answers))
            return
    await _answer(client, system, plan, observed, n, token, site, answers, uncertain=uncertain)


async def _sigterm(
    system: System,
    client: httpx.AsyncClient,
    plan: Plan,
    observed: Observed,
    target: ServiceProcess,
    site_of: dict[str, str],
) -> None:
    """SIGTERM to a responses replica while users post to it: what was in flight is answered."""
    disturbance = Disturbance("SIGTERM", target.name, time.monotonic())
    observed.disturbances.append(disturbance)
    held, observed.held = sorted(observed.held_mailed.items()), set()  # the rest: as others
    first_halves = [asyncio.Event() for _ in held]
    slow = [
        asyncio.create_task(
            _slow_answer(client, system, plan, observed, n, address, site_of[address], target, sent)
        )
        for (n, address), sent in zip(held, first_halves, strict=True)
    ]
    # Their first halves are read: written, then a request sent after them answered by the same
    # server (a fixed pause was not enough on a loaded machine, where the server had not yet
    # read a slow request's headers when SIGTERM came, and rightly closed it as idle).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10.0):
            await asyncio.gather(*(sent.wait() for sent in first_halves))
    with contextlib.suppress(httpx.TransportError):
        await client.get(f"{target.url}/healthz", timeout=10.0)
    for request_id in observed.inflight[target.name]:
        observed.watched[request_id] = "pending"
    log(f"SIGTERM {target.name} ({len(observed.watched)} requests in flight)", observed)
    log_size = target.log_path.stat().st_size
    started = time.monotonic()
    try:
        code = await asyncio.to_thread(target.terminate, 30.0)
    except Exception as error:  # a drain that hangs is a finding, not a crash
        observed.violation(f"{target.name} did not exit within 30 s of SIGTERM: {error!r}")
        await asyncio.to_thread(target.kill)
        code = -9
    drained = round(time.monotonic() - started, 2)
    await asyncio.sleep(0.5)  # the answers to the last requests reach the client
    await asyncio.gather(*slow)
    cut = {  # no answer at all, or an error instead of one: 404/409 are answers
        rid: outcome
        for rid, outcome in observed.watched.items()
        if not outcome.isdigit() or outcome.startswith("5")
    }
    # The answers whose bodies the server was reading must all be stored (201). A user request
    # that had only just left the client may be cut: written on a keep-alive connection uvicorn
    # closes as idle because it has not read it yet, or queued in the listen backlog. That is
    # the client's race, not a lost answer: the phone tries again (on the other replica), and
    # the final checks count every answer. In Kubernetes a preStop pause keeps new requests
    # away from a stopping pod.
    receiving = {rid: observed.watched[rid] for rid in observed.slow_ids}
    unread = {rid: outcome for rid, outcome in cut.items() if rid not in observed.slow_ids}
    completed = b"Application shutdown complete." in target.log_path.read_bytes()[log_size:]
    # uvicorn ends a graceful shutdown by raising the signal again: -15 is a clean exit too
    if code not in (0, -signal.SIGTERM) or not completed:
        observed.violation(
            f"{target.name} did not shut down cleanly on SIGTERM (exit {code}, "
            f"lifespan shutdown {'complete' if completed else 'missing'})"
        )
    if any(outcome != "201" for outcome in receiving.values()):
        observed.violation(f"answers being received at SIGTERM not stored: {receiving}")
    if unread:
        log(f"requests sent as SIGTERM came, cut before being read: {unread}", observed)
    await asyncio.sleep(plan.restart_delay_seconds)
    target.start()
    try:
        await asyncio.to_thread(target.wait_ready, 120.0)
    except (RuntimeError, TimeoutError) as error:
        observed.violation(f"{target.name} did not come back after SIGTERM: {error}")
    disturbance.healed = time.monotonic()
    disturbance.detail = {
        "drain_seconds": drained,
        "exit_code": code,
        "shutdown_complete": completed,
        "answers_being_received": len(receiving),
        "answers_being_received_stored": sum(o == "201" for o in receiving.values()),
        "requests_just_sent": len(observed.watched) - len(receiving),
        "requests_just_sent_cut_then_retried": len(unread),
    }
    log(f"{target.name} drained in {drained} s (exit {code}), back", observed)


# --------------------------------------------------------------------------- the verdict


def recompute(answers: list[dict[str, Any]]) -> dict[str, tuple[int, float | None]]:
    """The documented definitions, from the acknowledged answers themselves."""

    def share(values: list[bool]) -> tuple[int, float | None]:
        return len(values), (sum(values) / len(values) * 100 if values else None)

    satisfaction = [a["satisfaction_globale"] for a in answers if "satisfaction_globale" in a]
    ratings = [a["recommandation"] for a in answers if "recommandation" in a]
    nps = (
        (sum(r >= 9 for r in ratings) - sum(r <= 6 for r in ratings)) / len(ratings) * 100
        if ratings
        else None
    )
    return {
        "satisfaction": share([s >= 8 for s in satisfaction]),
        "nps": (len(ratings), nps),
        "fcr_declared": share(
            [a["plusieurs_contacts"] == "non" for a in answers if "plusieurs_contacts" in a]
        ),
        "ces": share([a["effort"] >= 5 for a in answers if "effort" in a]),
    }


def _same(published: tuple[int, float | None], expected: tuple[int, float | None]) -> bool:
    (n, value), (m, other) = published, expected
    if n != m:
        return False
    if value is None or other is None:
        return value is other
    return abs(value - other) < 1e-6


async def _final_checks(
    client: httpx.AsyncClient,
    system: System,
    plan: Plan,
    observed: Observed,
    address_of: list[str],
) -> dict[str, Any]:
    # Mails: one distinct link per contact; a resent mail is the same mail.
    tokens: Counter[str] = Counter()
    resent = resent_same = 0
    for number, address in enumerate(address_of):
        mails = observed.mails.get(address, [])
        resent += max(0, len(mails) - 1)
        if any(m.token is None or m.message_id is None for m in mails):
            observed.violation(f"contact {number}: a mail without a survey link or Message-ID")
        elif len({(m.token, m.message_id) for m in mails}) > 1:
            observed.violation(f"contact {number} got two different mails")
        else:
            resent_same += max(0, len(mails) - 1)
        if mails:
            tokens[mails[0].token or ""] += 1
    shared = [token for token, count in tokens.items() if count > 1]
    if shared:
        observed.violation(f"{len(shared)} survey links sent to more than one contact")

    # Answers: counted once, equal to the recomputation, the same on every publication replica.
    acknowledged = sum(map(len, observed.acks.values()))
    counted = 0
    for replica in system.replicas["publication"]:
        for site, acks in sorted(observed.acks.items()):
            published = await _feed(client, replica, site, observed) or {}
            expected = recompute([answers for _, answers in acks])
            counted += published.get("satisfaction", (0, None))[0]
            for indicator in INDICATORS:
                got = published.get(indicator, (0, None))
                if not _same(got, expected[indicator]):
                    observed.violation(
                        f"{replica.name} {site} {indicator}: published {got}, "
                        f"recomputed {expected[indicator]}"
                    )
    counted //= len(system.replicas["publication"])

    # Screens: what each publication replica pushed last over its event stream, for each site,
    # is the same on every replica and equals the recomputation.
    screens_equal = 0
    for site, acks in sorted(observed.acks.items()):
        expected = recompute([answers for _, answers in acks])
        shown = {
            replica.name: observed.screens.get((replica.name, site), {})
            for replica in system.replicas["publication"]
        }
        for name, pushed in shown.items():
            if _same_figures(pushed, expected):
                screens_equal += 1
            else:
                observed.violation(
                    f"{name} {site}: the screen's last push {pushed}, recomputed {expected}"
                )

    # Answer → screen: the k-th acknowledged answer of a site against the k-th shown.
    during: list[float] = []
    calm: list[float] = []
    windows = observed.windows()
    for site, acks in observed.acks.items():
        reached = observed.reached.get(site, [])
        for k, (acked_at, _) in enumerate(sorted(acks, key=lambda ack: ack[0])):
            if k < len(reached):
                seconds = max(0.0, reached[k] - acked_at)
                disturbed = any(start <= acked_at <= end for start, end in windows)
                (during if disturbed else calm).append(seconds)

    kill_heals = [
        d.healed - d.started for d in observed.disturbances if d.kind == "kill -9" and d.healed
    ]
    figures: dict[str, Any] = {
        "contacts": plan.contacts,
        "sites": plan.sites,
        "replicas_per_service": plan.replicas,
        "contacts_mailed": sum(1 for a in address_of if observed.mails.get(a)),
        "mails_stored": sum(len(observed.mails.get(a, [])) for a in address_of),
        "mails_resent": resent,
        "mails_resent_same_message_id_and_link": resent_same,
        "answers_acknowledged": acknowledged,
        "answers_acknowledged_by_409_after_a_lost_reply": observed.acked_after_retry,
        "answers_abandoned": observed.abandoned,
        "answers_counted_in_published_figures": counted,
        "screens_watched": len(system.replicas["publication"]) * len(observed.acks),
        "screens_showing_the_recomputation": screens_equal,
        "screen_pushes": sum(observed.screen_pushes.values()),
        "screen_reconnects": observed.screen_reconnects,
        "http_statuses": dict(sorted(observed.statuses.items())),
        "http_500": sum(
            count
            for code, count in observed.statuses.items()
            if code.startswith("5") and code != "503"
        ),
        "http_503": observed.statuses.get("503", 0),
        "kills_done": len(kill_heals),
        "kills_skipped_for_time": observed.kills_skipped,
        "kill_heal_p95_s": round(percentile(kill_heals, 0.95), 2) if kill_heals else None,
        "disturbances": [d.as_json() for d in observed.disturbances],
        **latency_figures(during, "answer_to_screen_during_disturbance"),
        **latency_figures(calm, "answer_to_screen_calm"),
    }
    if acknowledged != counted:
        observed.violation(f"{acknowledged} answers acknowledged, {counted} counted")
    figures["violations"] = observed.violations
    figures["ok"] = not observed.violations
    return figures
