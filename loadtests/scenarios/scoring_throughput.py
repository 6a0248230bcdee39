"""Scoring throughput, freshness and rebuild speed, and the naive way side by side.

Phases 1, 3b and 4 are measured in `ROUNDS` rounds, each comparing ours with the other way back
to back; the figures without a round are each one's median (a ratio: the median of the rounds'
own ratios), and every round is in `backlog_rounds`, `rebuild_rounds`, `side_by_side_rounds`.

1. Throughput, in each round: 50,000 new `response submitted` events wait in the topic before
   scoring starts (the producer is not timed); time until scoring's consumer group has committed
   them all (the real process, broker and database; the tables hold the rounds before). Progress
   is read from the group's committed offsets (which scoring commits only after the database
   transaction), not by polling the tallies: a poll scanning the tallies every 50 ms cost
   PostgreSQL as much CPU as scoring's own writes. The tallies are checked once at the end. CPU
   milliseconds per response of scoring, PostgreSQL and the broker are reported for this phase
   and the next, so the figures mean something on a shared machine (`machine_busy_cores` says
   how busy the cores were, all processes included).
2. Freshness, after the last round: with scoring running, 1,000 responses/s for 10 s; for each
   response, the time from its event time to the Kafka timestamp of the first `site indicators
   updated` record of its site that includes it (each site's count in the rolling 90 days tells
   which ones it includes). Scoring publishes each site at most once per
   `publish_interval_seconds` (0.5 s), so a busy site's answers wait up to that long and the p95
   cannot be much below 0.48 s.
3. Kill -9: another 50,000 responses wait in the topic; scoring is SIGKILLed 5 times while it
   folds them (each life once it has counted another sixth), and restarted; the tallies must
   count each exactly once (else the bench fails). Scoring keeps no inbox row per event: each
   response is claimed by its response id.
3b. Rebuild, in each round: `scoring.rebuild` replays the topics (every response of phases 1 to
   3, about 210,000) into fresh tables, which must equal the tallies the killed runs left.
5. Quix Streams peer (a dev dependency), on the same broker in the same run, fed the SAME
   `response submitted` records: a separate process (`_quix_peer`) folds them into its RocksDB
   state the same way (per site -- the record key -- and day, a count per value of every
   answered item, and the response count), after each backlog round (50,000 records of the
   topic, fresh group and state) and after each rebuild (every record of the topic, as the
   rebuild reads). Timed from its first record (so its group join is not counted, as scoring's
   is not) until the same poll as scoring's sees its offsets committed for every record: its
   checkpoint, which makes its state and offsets durable together, as scoring's transaction
   does (its first record to its last processed, without that: `..._processing_...`); its CPU
   ms per response too. `ratio_vs_quixstreams` = our rate / its.
4. Incremental against naive, in-process on the same events and the same database: both start
   from the same 40,000-response history; then, in each round, 2,000 more arrive in batches of
   100 and, after every batch, every figure of every changed site is recomputed for the 8
   periods. The incremental way adds to tallies and computes figures from them (scoring's own
   handler and publisher code); the naive way inserts raw answers (jsonb) and recomputes every
   figure with SQL over the raw answers. The naive SQL computes no interval: that only favours
   it. Each way handles one batch, not timed, before the rounds (warm, as a running service).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry
from scoring import domain, rebuild
from scoring.consumer import ScoringHandler
from scoring.publisher import IndicatorsPublisher
from scoring.settings import ScoringSettings

from contracts import questionnaire
from contracts.envelope import CloudEvent, decode, encode, new_event_id, utc_now
from contracts.events import ResponseSubmitted
from contracts.topics import (
    RESPONSE_SUBMITTED,
    SITE_INDICATORS,
    SITE_INDICATORS_UPDATED,
    SURVEY_RESPONSE,
)
from loadtests.cpu import Probe, process_tree
from loadtests.stats import latency_figures
from plumbing.services import start_system

NAME = "scoring_throughput"
DESCRIPTION = (
    "responses scored/s, p95 response → site indicators event at 1,000/s, rebuild responses/s, "
    "incremental tallies vs naive SQL over raw answers"
)
BACKLOG = 50_000
SITES = [f"site-{n:02d}" for n in range(20)]
STEADY_RATE, STEADY_SECONDS, TICK = 1_000, 10, 0.1
HISTORY, SIDE_BY_SIDE, UPDATE_BATCH = 40_000, 2_000, 100
KILLS = 5
ROUNDS = 3
"""Each comparison is measured this many times, ours and the other way's back to back in each
round, and its median reported with every round: this 2-core machine's speed swings up to 2x
from one minute to the next, so a single pair could land on either side of 1."""
PARIS = ZoneInfo("Europe/Paris")  # scoring's default reporting timezone
THEMES = [item.id for item in domain.theme_items(questionnaire.load())]


async def run(ctx: Any) -> dict[str, Any]:
    rng = random.Random(42)
    figures, first_backlog = await _backlog_rounds(ctx, rng)
    figures |= await _killed_backlog(ctx, rng)
    figures |= await _rebuild_rounds(ctx)
    return figures | await _side_by_side(ctx, first_backlog)


async def _backlog_rounds(
    ctx: Any, rng: random.Random
) -> tuple[dict[str, Any], list[CloudEvent[Any]]]:
    """Phases 1 and 5 in `ROUNDS` rounds, then phase 2 (freshness) after the last; returns the
    figures and the first round's backlog (the side by side's events)."""
    figures: dict[str, Any] = {"backlog_responses": BACKLOG, "rounds": ROUNDS}
    rounds, first_backlog = [], []
    for number in range(1, ROUNDS + 1):
        backlog = [_response(rng, days_back=60) for _ in range(BACKLOG)]
        first_backlog = first_backlog or backlog
        produced = await _produce_backlog(ctx, backlog)
        system = await asyncio.to_thread(_start_scoring, ctx, f"backlog-{number}")
        try:
            process = system["scoring"].process
            assert process is not None
            meter = CpuMeter(_probes(ctx, process.pid))
            timed = produced | await _time_backlog(ctx, meter, scored_before=len(rounds) * BACKLOG)
            await _sites_published(ctx)  # the publisher's backlog events out of the peer's way
            # The peer on 50,000 of the same records right after, scoring idle meanwhile.
            rounds.append(timed | await _quix_figures(
                ctx, f"backlog-{number}", BACKLOG, timed["responses_scored_per_second"]
            ))  # fmt: skip
            if number == ROUNDS:
                figures |= await _steady_latency(ctx, rng, meter)
        finally:
            system.stop()
    return figures | _medians(rounds) | {"backlog_rounds": rounds}, first_backlog


async def _rebuild_rounds(ctx: Any) -> dict[str, Any]:
    """Phase 3b and the peer on the same records, in `ROUNDS` rounds."""
    rounds = []
    for number in range(1, ROUNDS + 1):
        rebuilt = await _rebuild_speed(ctx)
        rounds.append(rebuilt | await _quix_figures(
            ctx, f"rebuild-{number}", rebuilt["rebuild_responses"],
            rebuilt["rebuild_responses_per_second"], prefix="rebuild_",
        ))  # fmt: skip
    return _medians(rounds) | {"rebuild_rounds": rounds}


def _medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (a ratio: the median of each round's own ratio, ours
    and the peer's measured back to back); True only when it held in every round."""
    figures: dict[str, Any] = {}
    for key, value in rounds[0].items():
        values = [one[key] for one in rounds]
        if isinstance(value, bool):
            figures[key] = all(values)
        elif isinstance(value, int | float):
            median = statistics.median(values)
            figures[key] = round(median, 3) if isinstance(median, float) else median
    return figures


# --------------------------------------------------------------------------- events


def _response(rng: random.Random, *, days_back: int, at: datetime | None = None) -> CloudEvent[Any]:
    moment = at or utc_now() - timedelta(minutes=rng.randrange(days_back * 24 * 60 + 1))
    site = rng.choice(SITES)
    channel = rng.choice(["telephone", "courriel", "accueil_physique"])
    answers: dict[str, int | str] = {
        "canal": channel, "recommandation": rng.randint(0, 10),
        "satisfaction_globale": rng.randint(1, 10),
    }  # fmt: skip
    if rng.random() < 0.6:
        answers["effort"] = rng.randint(1, 7)
    if rng.random() < 0.6:
        answers["plusieurs_contacts"] = rng.choice(["oui", "non"])
    for theme in THEMES:
        if rng.random() < 0.5:
            answers[theme] = rng.randint(1, 10)
    data = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:16]}", invitation_id=f"inv-{uuid.uuid4().hex[:16]}",
        contact_id=f"crm-{uuid.uuid4().hex[:16]}", site_id=site, network="urssaf",
        channel=channel, motif=rng.choice(["declaration", "paiement", "recouvrement"]),
        request_nature=rng.choice([None, "information", "reclamation", "suivi_dossier"]),
        profile=rng.choice([None, "employeur", "particulier"]),
        questionnaire_version="urssaf-chaud-2024-v1", answers=answers, answered_at=moment,
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/bench", type=RESPONSE_SUBMITTED.type, time=moment,
        subject=site, data=data,
    )  # fmt: skip


def _stamped(event: CloudEvent[Any], moment: datetime) -> CloudEvent[Any]:
    data = event.data.model_copy(update={"answered_at": moment})
    return event.model_copy(update={"time": moment, "data": data})


async def _producer(ctx: Any) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=ctx.stack.kafka_bootstrap_servers, acks="all", linger_ms=5,
        max_batch_size=256 * 1024,
    )  # fmt: skip
    await producer.start()
    return producer


async def _send(producer: AIOKafkaProducer, events: list[CloudEvent[Any]]) -> None:
    pending = [
        await producer.send(SURVEY_RESPONSE.name, encode(e), key=e.subject.encode()) for e in events
    ]
    await asyncio.gather(*pending)


# --------------------------------------------------------------------------- the real process


async def _produce_backlog(ctx: Any, backlog: list[CloudEvent[Any]]) -> dict[str, Any]:
    producer = await _producer(ctx)
    started = time.perf_counter()
    try:
        for start in range(0, len(backlog), 5_000):
            await _send(producer, backlog[start : start + 5_000])
    finally:
        await producer.stop()
    return {"backlog_produce_seconds": round(time.perf_counter() - started, 1)}


async def _counted(ctx: Any) -> int:
    connection = await asyncpg.connect(ctx.stack.database_url)
    try:
        value = await connection.fetchval(
            "SELECT coalesce(sum(count), 0) FROM scoring.tallies WHERE item = '__responses__'"
        )
        return int(value)
    finally:
        await connection.close()


class _Committed:
    """Records of the response topic a group (scoring's, or the peer's) has committed.

    A group-less view of the group's offsets: it never joins the group (no rebalance), it only
    asks the coordinator for the committed offsets (the admin client's request closes Tansu's
    connection; the consumer's does not)."""

    def __init__(self, ctx: Any, group: str = "scoring") -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=ctx.stack.kafka_bootstrap_servers, group_id=group,
            enable_auto_commit=False,
        )  # fmt: skip
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        numbers = self.consumer.partitions_for_topic(SURVEY_RESPONSE.name) or set()
        self.partitions = [TopicPartition(SURVEY_RESPONSE.name, n) for n in sorted(numbers)]

    async def count(self) -> int:
        offsets = [await self.consumer.committed(partition) for partition in self.partitions]
        return sum(offset for offset in offsets if offset is not None and offset > 0)

    async def stop(self) -> None:
        await self.consumer.stop()


async def _time_backlog(ctx: Any, meter: CpuMeter, *, scored_before: int) -> dict[str, Any]:
    """`scored_before`: the responses of the rounds before, in the topic and the tallies."""
    # Timed from readiness (the consumer has joined its group), not from the process start;
    # what was committed before the clock started is not counted.
    committed = _Committed(ctx)
    await committed.start()
    target = scored_before + BACKLOG
    try:
        meter.start()
        started = time.perf_counter()
        before = await committed.count() - scored_before
        while await committed.count() < target:
            if time.perf_counter() - started > 300:
                raise TimeoutError("the backlog was not scored in 300 s")
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        cpu = meter.ms_per_item(BACKLOG - before, "backlog")
    finally:
        await committed.stop()
    counted = await _counted(ctx)
    if counted != target:
        raise AssertionError(f"offsets committed for {target} responses, tallies count {counted}")
    return {
        "backlog_scored_seconds": round(seconds, 2),
        "responses_scored_per_second": round((BACKLOG - before) / seconds),
        "backlog_committed_before_clock": before,
        **cpu,
        **await _tally_size(ctx, counted),
    }


async def _sites_published(ctx: Any, timeout: float = 60) -> None:
    """Until the publisher has published every site the backlog changed (a site catching up is
    published 5 s after the backlog reached it: `publish_catching_up_seconds`)."""
    connection = await asyncpg.connect(ctx.stack.database_url)
    try:
        deadline = time.monotonic() + timeout
        while await connection.fetchval("SELECT count(*) FROM scoring.sites WHERE dirty"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"sites still dirty {timeout} s after the backlog")
            await asyncio.sleep(0.2)
    finally:
        await connection.close()


async def _tally_size(ctx: Any, responses: int) -> dict[str, Any]:
    """What the tallies of the backlogs so far hold: rows and bytes (table and index) per
    response. They grow with sites x days (20 x 61 here), not with responses: the breakdowns by
    channel, motif, nature and profile are read from the responses' facts (one row each, kept
    for the verbatims' retention, and the claim that counts a response once)."""
    connection = await asyncpg.connect(ctx.stack.database_url)
    try:
        row = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM scoring.site_day_vectors) AS site_day_rows, "
            "pg_total_relation_size('scoring.site_day_vectors') AS bytes, "
            "pg_total_relation_size('scoring.response_facts') AS fact_bytes"
        )
    finally:
        await connection.close()
    assert row is not None
    return {
        "backlog_tally_site_day_rows": int(row["site_day_rows"]),
        "backlog_tally_bytes_per_response": round(int(row["bytes"]) / responses),
        "backlog_fact_bytes_per_response": round(int(row["fact_bytes"]) / responses),
    }


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _probes(ctx: Any, scoring_pid: int) -> dict[str, Probe]:
    def child(name: str) -> int:
        return int(
            next(c.pid for c in ctx.stack._children if name in str(c.args[0]).rsplit("/")[-1])
        )

    return {
        "scoring": process_tree(scoring_pid),
        "postgres": process_tree(child("postgres")),
        "kafka": process_tree(child("tansu")),
    }


class CpuMeter:
    """CPU milliseconds per item of each process over a phase, and how busy the machine was."""

    def __init__(self, probes: dict[str, Probe]) -> None:
        self.probes = probes
        self.started: dict[str, float] = {}
        self.wall = 0.0

    def start(self) -> None:
        self.started = {name: probe() for name, probe in self.probes.items()}
        self.started["machine"] = _machine_busy()
        self.wall = time.perf_counter()

    def ms_per_item(self, items: int, prefix: str) -> dict[str, float]:
        figures = {
            f"{prefix}_cpu_ms_per_response_{name}": round(
                (probe() - self.started[name]) * 1000 / max(items, 1), 3
            )
            for name, probe in self.probes.items()
        }
        busy = (_machine_busy() - self.started["machine"]) / (time.perf_counter() - self.wall)
        return figures | {f"{prefix}_machine_busy_cores": round(busy, 2)}


async def _steady_latency(ctx: Any, rng: random.Random, meter: CpuMeter) -> dict[str, Any]:
    baseline = await _site_counts(ctx)
    producer = await _producer(ctx)
    sent: list[CloudEvent[Any]] = []
    per_tick = int(STEADY_RATE * TICK)
    ticks = int(STEADY_SECONDS / TICK)
    # Built before the clock, stamped when sent: building 100 events took ~8 ms, which the first
    # responses of each tick spent "submitted" but not yet handed to the producer.
    drafts = [_response(rng, days_back=0, at=utc_now()) for _ in range(per_tick * ticks)]
    meter.start()
    started = time.perf_counter()
    try:
        for tick in range(ticks):
            now = utc_now()
            batch = [_stamped(e, now) for e in drafts[tick * per_tick : (tick + 1) * per_tick]]
            await _send(producer, batch)
            sent += batch
            await asyncio.sleep(max(0.0, started + (tick + 1) * TICK - time.perf_counter()))
    finally:
        await producer.stop()
    achieved = len(sent) / (time.perf_counter() - started)
    await asyncio.sleep(1.5)  # the last responses' publishes (the bench producer is not counted)
    cpu = meter.ms_per_item(len(sent), "steady")
    latencies = await _latencies(ctx, baseline, sent)
    figures = latency_figures(latencies, "response_to_indicators_event")
    return figures | cpu | {"steady_offered_responses_per_second": round(achieved)}


async def _site_counts(ctx: Any) -> dict[str, int]:
    connection = await asyncpg.connect(ctx.stack.database_url)
    try:
        rows = await connection.fetch(
            "SELECT site_id, sum(count)::bigint AS n FROM scoring.tallies "
            "WHERE item = '__responses__' GROUP BY site_id"
        )
        return {row["site_id"]: int(row["n"]) for row in rows}
    finally:
        await connection.close()


async def _latencies(
    ctx: Any, baseline: dict[str, int], sent: list[CloudEvent[Any]]
) -> list[float]:
    """Per response: first indicators record of its site whose count includes it, minus the
    response's event time. A site's responses share a partition, so they are counted in order."""
    rank: list[tuple[str, int, float]] = []
    seen: dict[str, int] = dict(baseline)
    for event in sent:
        seen[event.subject] = seen.get(event.subject, 0) + 1
        rank.append((event.subject, seen[event.subject], event.data.answered_at.timestamp()))
    published = await _published_counts(ctx, targets=seen)
    latencies = []
    for site, position, answered in rank:
        first = next((at for at, count in published[site] if count >= position), None)
        if first is not None:
            latencies.append(first - answered)
    return latencies


async def _published_counts(
    ctx: Any, *, targets: dict[str, int], timeout: float = 60
) -> dict[str, list[tuple[float, int]]]:
    """site -> [(record timestamp in s, responses in the rolling 90 days)], in topic order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=ctx.stack.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    published: dict[str, list[tuple[float, int]]] = {site: [] for site in targets}
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(SITE_INDICATORS.name, p)
            for p in sorted(consumer.partitions_for_topic(SITE_INDICATORS.name) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not _all_published(published, targets):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    site, count = _site_count(record.value)
                    if site in published:
                        published[site].append((record.timestamp / 1000, count))
    finally:
        await consumer.stop()
    return published


def _site_count(value: bytes) -> tuple[str, int]:
    data = decode(SITE_INDICATORS_UPDATED.envelope, value).data
    period = next(p for p in data.periods if p.period == "rolling_90d")
    # Every generated response answers `recommandation`: the NPS's n counts them (the response
    # rate counts only answers to invitations scoring has seen, issue #18, and none is sent here).
    nps = next(f for f in period.figures if f.indicator == "nps")
    return data.site_id, nps.sample_size


def _all_published(published: dict[str, list[tuple[float, int]]], targets: dict[str, int]) -> bool:
    return all(
        published[site] and published[site][-1][1] >= target for site, target in targets.items()
    )


# --------------------------------------------------------------------------- kill -9


async def _killed_backlog(ctx: Any, rng: random.Random) -> dict[str, Any]:
    """Exactly once across crashes: another 50,000 responses wait in the topic; scoring is
    SIGKILLed `KILLS` times while it folds them (no drain, no offset commit): each life is killed
    once it has counted another sixth of them, so the next transactions are in flight, then a
    new one starts. At the end the tallies hold each response once: not one fewer, not one more
    (checked again after a pause, in case a late redelivery were still counting)."""
    before = await _counted(ctx)
    await _produce_backlog(ctx, [_response(rng, days_back=60) for _ in range(BACKLOG)])
    target, started = before + BACKLOG, time.perf_counter()
    step = BACKLOG // (KILLS + 1)
    for kills in range(KILLS):
        # Not waiting for readiness: a life can fold thousands of responses before /readyz says
        # so, and would then finish the backlog before its kill.
        life = _start_scoring(ctx, f"killed-{kills}", wait_ready=False)["scoring"]
        try:
            goal = before + (kills + 1) * step
            while await _counted(ctx) < goal:
                if life.process is not None and life.process.poll() is not None:
                    raise RuntimeError(f"scoring exited by itself; see {life.log_path}")
                if time.perf_counter() - started > 600:
                    raise TimeoutError(
                        f"{await _counted(ctx) - before} counted before kill {kills}"
                    )
                await asyncio.sleep(0.05)
        finally:
            life.kill()
        if await _counted(ctx) > target:
            raise AssertionError("responses counted twice after a kill")
    system = await asyncio.to_thread(_start_scoring, ctx, f"killed-{KILLS}")
    try:
        while (counted := await _counted(ctx)) < target:
            if time.perf_counter() - started > 600:
                raise TimeoutError(f"{counted - before} of {BACKLOG} counted after the kills")
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)
        counted = await _counted(ctx)
    finally:
        system.stop()
    if counted != target:
        raise AssertionError(f"{counted - before} counted for {BACKLOG} responses")
    return {
        "killed_backlog_responses": BACKLOG,
        "killed_backlog_kills": KILLS,
        "killed_backlog_counted": counted - before,
        "killed_backlog_counted_exactly_once": True,
        "killed_backlog_seconds": round(time.perf_counter() - started, 1),
    }


def _start_scoring(ctx: Any, name: str, *, wait_ready: bool = True) -> Any:
    folder = ctx.workdir / name
    folder.mkdir()
    return start_system(ctx.stack.env(), folder, only=("scoring",), wait_ready=wait_ready)


# --------------------------------------------------------------------------- rebuild


def _settings(ctx: Any) -> ScoringSettings:
    return ScoringSettings(
        database_url=ctx.stack.database_url,
        kafka_bootstrap_servers=ctx.stack.kafka_bootstrap_servers,
    )


async def _rebuild_speed(ctx: Any) -> dict[str, Any]:
    report = await rebuild.rebuild(_settings(ctx))
    return {
        "rebuild_responses": report["events_by_type"].get(RESPONSE_SUBMITTED.type, 0),
        "rebuild_seconds": report["seconds"],
        "rebuild_responses_per_second": report["responses_per_second"],
        "rebuild_equals_incremental": report["equal"],
    }


# --------------------------------------------------------------------------- Quix Streams peer


async def _quix_figures(
    ctx: Any, phase: str, expected: int, ours: float, *, prefix: str = ""
) -> dict[str, Any]:
    """Run the Quix Streams peer over the response topic from its start, `expected` records
    (a fresh group and state for each `phase`)."""
    out = ctx.workdir / f"quix-{phase}.json"
    command = [
        sys.executable, "-m", "loadtests.scenarios.scoring_throughput", "quix-peer",
        ctx.stack.kafka_bootstrap_servers, f"quix-peer-{phase}", str(ctx.workdir / f"quix-{phase}"),
        str(expected), str(out),
    ]  # fmt: skip
    log = (ctx.workdir / f"quix-{phase}.log").open("wb")
    committed = _Committed(ctx, f"quix-peer-{phase}")
    await committed.start()
    process = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=log)
    try:
        # Its end as scoring's: when the same poll sees its offsets committed for every record
        # (its state and offsets are durable at its checkpoint, not as it processes a record).
        committed_at = await asyncio.wait_for(_committed_at(committed, expected), timeout=300)
        await asyncio.wait_for(process.wait(), timeout=60)
    finally:
        await committed.stop()
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
    if not out.exists():
        raise RuntimeError(f"the Quix Streams peer failed: see {ctx.workdir}/quix-{phase}.log")
    peer = json.loads(out.read_text())
    if peer["responses"] != expected:
        raise AssertionError(f"the Quix peer counted {peer['responses']}, not {expected}")
    rate = peer["responses"] / (committed_at - peer["started_at"])
    return {
        f"{prefix}quixstreams_responses_per_second": round(rate),
        # Its first record to its last processed, without the checkpoint (the figure before).
        f"{prefix}quixstreams_processing_responses_per_second": round(
            peer["responses"] / peer["seconds"]
        ),
        f"{prefix}quixstreams_cpu_ms_per_response": round(peer["cpu_seconds"] * 1000 / expected, 3),
        f"{prefix}ratio_vs_quixstreams": round(ours / rate, 3),
        f"{prefix}load_average_1min": round(os.getloadavg()[0], 2),
    }


async def _committed_at(committed: _Committed, expected: int) -> float:
    """The wall time (`time.time`) when the group has committed `expected` records, polled
    every 50 ms as scoring's progress is (`_time_backlog`)."""
    while True:
        if await committed.count() >= expected:
            return time.time()
        await asyncio.sleep(0.05)


def _quix_peer(bootstrap: str, group: str, state_dir: str, expected: int, out: str) -> None:
    """The peer's process: Quix Streams' Application, RocksDB state, no changelog topic (our
    tallies have no second copy either). Each record adds +1 to the cells `item|value` and
    `__responses__|1` (scoring's tally_rows) of its site's (the record key) state entry for its
    day, the reporting day in Paris as scoring's. One entry per site and day holding its cells
    cost Quix half the CPU of one entry per cell (0.10 against 0.22 ms per response)."""
    from quixstreams import Application

    app = Application(
        broker_address=bootstrap, consumer_group=group, auto_offset_reset="earliest",
        state_dir=state_dir, use_changelog_topics=False, auto_create_topics=False,
        commit_interval=1.0, loglevel="WARNING",
    )  # fmt: skip
    topic = app.topic(SURVEY_RESPONSE.name, value_deserializer="json", key_deserializer="str")
    # Tansu describes no retention.ms, which Quix reads even with changelog topics off.
    topic.broker_config.extra_config.setdefault("retention.ms", str(SURVEY_RESPONSE.retention_ms))
    clock: dict[str, float] = {"responses": 0}

    def tally(value: dict[str, Any], state: Any) -> None:
        if not clock["responses"]:
            clock["started"], clock["cpu_started"] = time.perf_counter(), time.process_time()
            clock["started_at"] = time.time()  # the bench's clock, for its commit poll
        data = value["data"]
        day = datetime.fromisoformat(data["answered_at"]).astimezone(PARIS).date().isoformat()
        cells = state.get(day) or {}  # one state read and write per record, not per cell
        for item, answer in [(domain.RESPONSES_ITEM, "1"), *data["answers"].items()]:
            cell = f"{item}|{answer}"
            cells[cell] = cells.get(cell, 0) + 1
        state.set(day, cells)
        clock["responses"] += 1
        if clock["responses"] == expected:
            clock["seconds"] = time.perf_counter() - clock["started"]
            clock["cpu_seconds"] = time.process_time() - clock["cpu_started"]
            app.stop()

    app.dataframe(topic).update(tally, stateful=True)
    app.run()
    with open(out, "w", encoding="utf-8") as file:
        json.dump(clock, file)


# --------------------------------------------------------------------------- side by side


async def _side_by_side(ctx: Any, events: list[CloudEvent[Any]]) -> dict[str, Any]:
    """Both ways load the same history; then, in each round, the next `SIDE_BY_SIDE` events go
    through the incremental way, then through the naive one."""
    history = events[:HISTORY]
    connection = await asyncpg.connect(ctx.stack.database_url)
    rounds = []
    try:
        # The observed FCR recomputed at every publish, as the other figures: the publisher's
        # 10 s reuse (fcr_refresh_seconds) would only flatter the incremental way here.
        incremental = IncrementalWay(_settings(ctx).model_copy(update={"fcr_refresh_seconds": 0}),
                                     connection)  # fmt: skip
        naive = NaiveWay(connection)
        # One batch each, not timed, before the rounds: both ways are measured warm (the
        # publisher's first publish of a site reads all its days; a running one never does).
        warm_up = events[HISTORY + ROUNDS * SIDE_BY_SIDE :][:UPDATE_BATCH]
        for way in (incremental, naive):
            await way.prepare()
            await way.load(history)
            await way.update(warm_up)
        for number in range(ROUNDS):
            start = HISTORY + number * SIDE_BY_SIDE
            updates = events[start : start + SIDE_BY_SIDE]
            figures = {}
            for way in (incremental, naive):
                seconds = await _time_updates(way, updates)
                figures[f"{way.name}_responses_per_second"] = round(len(updates) / seconds)
            ratio = (figures["incremental_responses_per_second"]
                     / figures["naive_responses_per_second"])  # fmt: skip
            rounds.append(figures | {"incremental_over_naive_ratio": round(ratio, 1)})
    finally:
        await connection.close()
    return _medians(rounds) | {"side_by_side_rounds": rounds}


async def _time_updates(way: Any, updates: list[CloudEvent[Any]]) -> float:
    started = time.perf_counter()
    for start in range(0, len(updates), UPDATE_BATCH):
        await way.update(updates[start : start + UPDATE_BATCH])
    return time.perf_counter() - started


class IncrementalWay:
    """Scoring's own code: tallies upsert, then every figure of each changed site from tallies."""

    name = "incremental"
    schema = "bench_incremental"

    def __init__(self, settings: ScoringSettings, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.handler = ScoringHandler(settings, raise_alerts=False)
        self.publisher = IndicatorsPublisher(
            settings=settings,
            pool=None,
            registry=CollectorRegistry(),  # type: ignore[arg-type]
        )

    async def prepare(self) -> None:
        await _fresh_schema(self.connection, self.schema)
        for table in (*rebuild.REBUILT_TABLES, "tally_cells", "sites"):
            await self.connection.execute(
                f"CREATE TABLE {table} (LIKE scoring.{table} INCLUDING ALL)"
            )

    async def load(self, events: list[CloudEvent[Any]]) -> None:
        await self.connection.execute(f"SET search_path = {self.schema}")
        for start in range(0, len(events), 5_000):
            async with self.connection.transaction():
                await self.handler(
                    self.connection, SURVEY_RESPONSE.name, events[start : start + 5_000]
                )

    async def update(self, events: list[CloudEvent[Any]]) -> None:
        await self.connection.execute(f"SET search_path = {self.schema}")
        async with self.connection.transaction():
            await self.handler(self.connection, SURVEY_RESPONSE.name, events)
            now = utc_now()
            for site in sorted({event.subject for event in events}):
                await self.publisher.site_event(self.connection, site, "urssaf", None, now)


class NaiveWay:
    """Raw answers in jsonb; every figure recomputed by SQL over them after each update."""

    name = "naive"
    schema = "bench_naive"

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.figures_sql = _naive_figures_sql()

    async def prepare(self) -> None:
        await _fresh_schema(self.connection, self.schema)
        await self.connection.execute(
            "CREATE TABLE responses (event_id text PRIMARY KEY, site_id text NOT NULL, "
            "day date NOT NULL, channel text NOT NULL, motif text NOT NULL, answers jsonb NOT NULL)"
        )
        await self.connection.execute("CREATE INDEX ON responses (site_id, day)")

    async def load(self, events: list[CloudEvent[Any]]) -> None:
        await self._insert(events)
        await self.connection.execute("ANALYZE responses")

    async def update(self, events: list[CloudEvent[Any]]) -> None:
        async with self.connection.transaction():
            await self._insert(events)
            as_of = utc_now().date()
            for site in sorted({event.subject for event in events}):
                for period in domain.periods(as_of):
                    await self.connection.fetchrow(self.figures_sql, site, period.start, period.end)

    async def _insert(self, events: list[CloudEvent[Any]]) -> None:
        await self.connection.execute(f"SET search_path = {self.schema}")
        await self.connection.executemany(
            "INSERT INTO responses VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT DO NOTHING",
            [_raw_row(event) for event in events],
        )


def _raw_row(event: CloudEvent[Any]) -> tuple[Any, ...]:
    data = event.data
    day = data.answered_at.astimezone(PARIS).date()
    return (event.id, data.site_id, day, data.channel.value, data.motif, json.dumps(data.answers))


def _naive_figures_sql() -> str:
    def rating(item: str) -> str:
        return f"(answers->>'{item}')::int"

    columns = [
        "count(*) AS responses",
        f"count({rating('recommandation')}) AS nps_n",
        f"count(*) FILTER (WHERE {rating('recommandation')} >= 9) AS promoters",
        f"count(*) FILTER (WHERE {rating('recommandation')} <= 6) AS detractors",
        f"count({rating('effort')}) AS ces_n",
        f"count(*) FILTER (WHERE {rating('effort')} >= 5) AS ces_agree",
        f"avg({rating('effort')}) AS ces_mean, stddev({rating('effort')}) AS ces_sd",
        "count(answers->>'plusieurs_contacts') AS fcr_n",
        "count(*) FILTER (WHERE answers->>'plusieurs_contacts' = 'non') AS fcr_non",
    ]
    for item in ["satisfaction_globale", *THEMES]:
        columns += [
            f"count({rating(item)}) AS {item}_n",
            f"count(*) FILTER (WHERE {rating(item)} >= 8) AS {item}_ok",
            f"avg({rating(item)}) AS {item}_mean, stddev({rating(item)}) AS {item}_sd",
        ]
    return (
        f"SELECT {', '.join(columns)} FROM responses WHERE site_id = $1 AND day BETWEEN $2 AND $3"
    )


async def _fresh_schema(connection: asyncpg.Connection, schema: str) -> None:
    await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await connection.execute(f"CREATE SCHEMA {schema}")
    await connection.execute(f"SET search_path = {schema}")


if __name__ == "__main__" and sys.argv[1:2] == ["quix-peer"]:
    bootstrap, group, state_dir, expected, out = sys.argv[2:7]
    _quix_peer(bootstrap, group, state_dir, int(expected), out)
