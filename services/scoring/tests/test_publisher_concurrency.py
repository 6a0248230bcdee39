"""A publish never stalls the consumers, and loses no mark (chaos bench, issue #13: with the
publish interval at 0.5 s, consumers waited behind publishes that held the sites row for the
whole computation and the broker's ack; answer -> screen p95 went from 24 s to 154 s).

The real publisher and the consumers' real handler on one real database (a schema of the
module's own, migrated here), on two connections: the publisher is paused inside its publish
transaction, once the site's event is computed, while a consumer's batch touches the site.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from scoring import repository
from scoring.consumer import ScoringHandler
from scoring.publisher import IndicatorsPublisher
from scoring.settings import ScoringSettings

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import ResponseSubmitted
from contracts.topics import RESPONSE_SUBMITTED, SITE_INDICATORS, SURVEY_RESPONSE
from plumbing.kafka import ensure_topics, new_producer
from plumbing.testing import read_topic

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")


def settings_of(stack: Any, **values: Any) -> ScoringSettings:
    return ScoringSettings(database_url=stack.database_url, **values)


class HeldPublisher(IndicatorsPublisher):
    """The real publisher, paused in its publish transaction once it has computed the site's
    event, until `release` (the same place in the old and the new publish)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.computed, self.release = asyncio.Event(), asyncio.Event()

    async def site_event(self, *args: Any, **kwargs: Any) -> Any:
        event = await super().site_event(*args, **kwargs)
        self.computed.set()
        await self.release.wait()
        return event


def response(site_id: str) -> CloudEvent[ResponseSubmitted]:
    moment = utc_now()
    data = ResponseSubmitted(
        response_id=f"rsp-{uuid.uuid4().hex[:12]}", invitation_id=f"inv-{uuid.uuid4().hex[:12]}",
        contact_id=f"crm-{uuid.uuid4().hex[:12]}", site_id=site_id, network="urssaf",
        channel="telephone", motif="declaration", questionnaire_version="urssaf-chaud-2024-v1",
        answers={"recommandation": 9}, answered_at=moment,
    )  # fmt: skip
    return CloudEvent[ResponseSubmitted](
        id=new_event_id(), source="/test", type=RESPONSE_SUBMITTED.type, time=moment,
        subject=site_id, data=data,
    )  # fmt: skip


async def consume(
    pool: asyncpg.Pool, settings: ScoringSettings, site_id: str, *, age: timedelta | None = None
) -> None:
    """One consumer batch (the handler every scoring consumer runs) with one response of the
    site (answered `age` ago), which gives up after 1 s waiting for a lock rather than hang
    behind a publish."""
    event = response(site_id)
    if age is not None:
        answered_at = event.data.answered_at - age
        event = event.model_copy(update={
            "time": answered_at, "data": event.data.model_copy(update={"answered_at": answered_at})
        })  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '1s'")
        handler = ScoringHandler(settings, raise_alerts=False)
        await handler(conn, SURVEY_RESPONSE.name, [event])


async def published_nps_samples(pool: asyncpg.Pool, site_id: str) -> list[int]:
    """The NPS sample size of the last 30 days in each indicators event of the site, in order."""
    async with pool.acquire() as conn:
        values = await conn.fetch(
            "SELECT value FROM outbox WHERE key = $1 ORDER BY id", site_id.encode()
        )
    return [figure_of(json.loads(row["value"]), "rolling_30d", "nps")["sample_size"]
            for row in values]  # fmt: skip


def figure_of(event: dict[str, Any], period_id: str, indicator: str) -> dict[str, Any]:
    (period,) = [p for p in event["data"]["periods"] if p["period"] == period_id]
    (figure,) = [f for f in period["figures"] if f["indicator"] == indicator]
    return figure


async def site_row(pool: asyncpg.Pool, site_id: str) -> asyncpg.Record:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM sites WHERE site_id = $1", site_id)
    assert row is not None
    return row


async def test_a_consumer_marks_a_site_dirty_at_once_while_it_is_being_published(stack, pool):
    settings = settings_of(stack, publish_interval_seconds=0.001)
    site = f"site-{uuid.uuid4().hex[:8]}"
    await consume(pool, settings, site)
    publisher = HeldPublisher(settings=settings, pool=pool, registry=CollectorRegistry())
    publishing = asyncio.create_task(publisher.publish_site(site))
    try:
        await asyncio.wait_for(publisher.computed.wait(), 10)
        # The row-locking publisher made this wait until its commit: lock_timeout (1 s) here.
        await consume(pool, settings, site)
    finally:
        publisher.release.set()
        published = await publishing
    assert published


async def test_a_mark_committed_during_a_publish_leaves_the_site_dirty_for_the_next_round(
    stack, pool
):
    settings = settings_of(stack, publish_interval_seconds=0.001)
    site = f"site-{uuid.uuid4().hex[:8]}"
    await consume(pool, settings, site)
    publisher = HeldPublisher(settings=settings, pool=pool, registry=CollectorRegistry())
    publishing = asyncio.create_task(publisher.publish_site(site))
    try:
        await asyncio.wait_for(publisher.computed.wait(), 10)
        await consume(pool, settings, site)  # committed after the publish's snapshot
    finally:
        publisher.release.set()
        assert await publishing
    row = await site_row(pool, site)
    assert row["dirty"], "the second response's mark was lost"
    assert row["last_published_at"] is not None and row["pending_since"] is not None
    # Not the first response's time, which is published: the publish's own (a close bound for
    # the answers marked meanwhile), or it would stick under a steady flow of answers.
    assert row["pending_since"] == row["last_published_at"]
    assert await published_nps_samples(pool, site) == [1]

    assert await publisher.publish_site(site)  # the next round
    assert await published_nps_samples(pool, site) == [1, 2]
    row = await site_row(pool, site)
    assert not row["dirty"] and row["pending_since"] is None and row["traceparent"] is None


async def test_two_publishers_never_publish_a_site_at_the_same_time_nor_twice_in_an_interval(
    stack, pool
):
    settings = settings_of(stack, publish_interval_seconds=60)
    site = f"site-{uuid.uuid4().hex[:8]}"
    await consume(pool, settings, site)
    first = HeldPublisher(settings=settings, pool=pool, registry=CollectorRegistry())
    second = IndicatorsPublisher(settings=settings, pool=pool, registry=CollectorRegistry())
    publishing = asyncio.create_task(first.publish_site(site))
    try:
        await asyncio.wait_for(first.computed.wait(), 10)
        assert not await second.publish_site(site)  # being published by the first
    finally:
        first.release.set()
        assert await publishing
    await consume(pool, settings, site)  # dirty again, but published less than 60 s ago
    assert not await second.publish_site(site)
    assert await published_nps_samples(pool, site) == [1]
    assert (await site_row(pool, site))["dirty"]


async def test_a_send_the_broker_client_refuses_leaves_the_site_dirty_and_the_next_is_sent(
    stack, pool
):
    settings = settings_of(
        stack, publish_interval_seconds=0.001, kafka_bootstrap_servers=stack.kafka_bootstrap_servers
    )
    await ensure_topics(settings, (SITE_INDICATORS,))
    site = f"site-{uuid.uuid4().hex[:8]}"
    await consume(pool, settings, site)
    marked = await site_row(pool, site)
    # A real producer whose requests cannot hold a site's event (tens of kB): send() fails.
    refusing = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap_servers, max_request_size=1024
    )
    producer = new_producer(settings, client_id="publisher-test")
    await refusing.start()
    await producer.start()
    try:
        failing = IndicatorsPublisher(
            settings=settings, pool=pool, registry=CollectorRegistry(), producer=refusing
        )
        assert not await failing.publish_site(site)
        row = await site_row(pool, site)
        assert row["dirty"] and row["last_published_at"] is None
        assert row["dirty_seq"] == marked["dirty_seq"]
        sending = IndicatorsPublisher(
            settings=settings, pool=pool, registry=CollectorRegistry(), producer=producer
        )
        assert await sending.publish_site(site)
    finally:
        await refusing.stop()
        await producer.stop()
    assert not (await site_row(pool, site))["dirty"]
    await read_topic(
        stack.kafka_bootstrap_servers, SITE_INDICATORS.name,
        until=lambda records: any(record.key == site.encode() for record in records),
    )  # fmt: skip


async def add_contact(pool: asyncpg.Pool, site_id: str, user: str, closed_at: datetime) -> None:
    async with pool.acquire() as conn:
        await repository.add_contacts(conn, rows=[(
            f"crm-{uuid.uuid4().hex[:12]}", site_id, "urssaf", f"pseudo_{user}".ljust(24, "0"),
            "telephone", "declaration", closed_at, None,
        )])  # fmt: skip


async def test_the_observed_fcr_is_reused_until_its_refresh_or_a_new_day(stack, pool):
    """The FCR query runs at most every fcr_refresh_seconds per site, and again when the
    site's periods change (midnight on its clock); the other figures are always fresh."""
    publisher = IndicatorsPublisher(
        settings=settings_of(stack, fcr_refresh_seconds=10), pool=pool,
        registry=CollectorRegistry(),
    )  # fmt: skip
    site = f"site-{uuid.uuid4().hex[:8]}"
    midnight = datetime.combine(utc_now().astimezone(PARIS).date() + timedelta(days=1), time(),
                                PARIS)  # fmt: skip
    now = midnight - timedelta(seconds=2)

    async def fcr_at(moment: datetime) -> dict[str, int]:
        async with pool.acquire() as conn:
            event = await publisher.site_event(conn, site, "urssaf", None, moment)
        (period,) = [p for p in event.data.periods if p.period == "rolling_90d"]
        (figure,) = [f for f in period.figures if f.indicator == "fcr_observed"]
        return figure.counts

    await add_contact(pool, site, "anne", now - timedelta(days=9))
    assert await fcr_at(now) == {"resolved": 1, "repeated": 0, "pending": 0}
    await add_contact(pool, site, "anne", now - timedelta(days=8))  # anne's first one repeated
    assert await fcr_at(now + timedelta(seconds=1)) == {"resolved": 1, "repeated": 0, "pending": 0}
    tomorrow = now + timedelta(seconds=3)  # new periods: computed again
    assert await fcr_at(tomorrow) == {"resolved": 1, "repeated": 1, "pending": 0}
    await add_contact(pool, site, "bruno", now - timedelta(days=9))
    assert await fcr_at(tomorrow + timedelta(seconds=9.9)) == {
        "resolved": 1, "repeated": 1, "pending": 0,
    }  # fmt: skip
    assert await fcr_at(tomorrow + timedelta(seconds=10)) == {
        "resolved": 2, "repeated": 1, "pending": 0,
    }  # fmt: skip


async def test_a_site_catching_up_on_old_answers_is_published_every_few_seconds(stack, pool):
    """Issue #14: in a backlog of old answers (after an outage, a replay), a site is published
    every `publish_catching_up_seconds`, not every interval: each event would be one more
    snapshot of a count still climbing. A site with fresh answers keeps the interval."""
    # Every 1 ms; every 5 s (the default) while the oldest waiting answer is over 60 s old.
    settings = settings_of(stack, publish_interval_seconds=0.001)
    backlog, fresh = (f"site-{uuid.uuid4().hex[:8]}" for _ in range(2))
    publisher = IndicatorsPublisher(settings=settings, pool=pool, registry=CollectorRegistry())
    for round_number in range(2):
        await consume(pool, settings, backlog, age=timedelta(hours=2))
        await consume(pool, settings, fresh)
        if round_number == 0:  # never published: both at once
            assert await publisher.publish_site(backlog) and await publisher.publish_site(fresh)

    async def due_at(seconds: float) -> tuple[set[str], datetime | None]:
        async with pool.acquire() as conn:
            due, next_due = await repository.sites_due(
                conn, now=since + timedelta(seconds=seconds), pace=publisher.pace, limit=100
            )
        return set(due) & {backlog, fresh}, next_due

    published = (await site_row(pool, backlog))["last_published_at"]
    assert (await site_row(pool, fresh))["last_published_at"] >= published
    # Its pace counts from its last publish, or from its mark when later (marked since).
    since = max(published, (await site_row(pool, backlog))["dirty_since"])
    assert (await due_at(1))[0] == {fresh}
    _, next_due = await due_at(1)
    assert await publisher.publish_site(fresh)
    assert not await publisher.publish_site(backlog)  # the claim checks the same pace
    assert (await due_at(4.9))[0] == set()
    assert (await due_at(5))[0] == {backlog}
    assert next_due is not None and next_due <= since + timedelta(seconds=5)


async def test_a_site_catching_up_is_first_published_a_few_seconds_after_it_became_dirty(
    stack, pool
):
    """The first batch of a backlog (an outage, a replay) does not publish its sites at once:
    a site last published long ago waits `publish_catching_up_seconds` from the moment the
    backlog marked it dirty, and the backlog's next batches meanwhile only add to its figures.
    A site with fresh answers is published at once, as before."""
    settings = settings_of(stack, publish_interval_seconds=0.5)
    backlog, fresh = (f"site-{uuid.uuid4().hex[:8]}" for _ in range(2))
    publisher = IndicatorsPublisher(settings=settings, pool=pool, registry=CollectorRegistry())
    for site in (backlog, fresh):
        await consume(pool, settings, site)
        assert await publisher.publish_site(site)
    async with pool.acquire() as conn:  # published an hour ago, clean since
        await conn.execute(
            "UPDATE sites SET last_published_at = last_published_at - interval '1 hour' "
            "WHERE site_id = ANY($1::text[])", [backlog, fresh],
        )  # fmt: skip
    await consume(pool, settings, backlog, age=timedelta(days=3))
    await consume(pool, settings, fresh)
    marked = (await site_row(pool, backlog))["dirty_since"]
    await consume(pool, settings, backlog, age=timedelta(days=2))  # the backlog's next batch
    assert (await site_row(pool, backlog))["dirty_since"] == marked

    async def due_at(moment: datetime) -> tuple[set[str], datetime | None]:
        async with pool.acquire() as conn:
            due, next_due = await repository.sites_due(
                conn, now=moment, pace=publisher.pace, limit=100
            )
        return set(due) & {backlog, fresh}, next_due

    assert (await due_at(marked + timedelta(seconds=0.1)))[0] == {fresh}
    assert await publisher.publish_site(fresh)
    assert not await publisher.publish_site(backlog)  # the claim checks the same pace
    waiting, next_due = await due_at(marked + timedelta(seconds=4.9))
    assert waiting == set() and next_due is not None
    assert next_due <= marked + timedelta(seconds=5)  # the soonest of the schema's dirty sites
    assert (await due_at(marked + timedelta(seconds=5)))[0] == {backlog}


async def test_an_older_answer_marked_during_a_publish_keeps_its_own_time(stack, pool):
    """The answers marked during a publish are waiting for the next one: their oldest time is
    kept when older than what the publish claimed (a late answer)."""
    settings = settings_of(stack, publish_interval_seconds=0.001)
    site = f"site-{uuid.uuid4().hex[:8]}"
    await consume(pool, settings, site)
    publisher = HeldPublisher(settings=settings, pool=pool, registry=CollectorRegistry())
    publishing = asyncio.create_task(publisher.publish_site(site))
    try:
        await asyncio.wait_for(publisher.computed.wait(), 10)
        await consume(pool, settings, site, age=timedelta(minutes=10))
    finally:
        publisher.release.set()
        assert await publishing
    row = await site_row(pool, site)
    assert row["dirty"]
    assert row["last_published_at"] - row["pending_since"] > timedelta(minutes=9)
