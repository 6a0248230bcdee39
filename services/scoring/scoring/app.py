"""scoring: tallies answers, invitations and contacts; publishes indicators and detractor alerts."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.topics import (
    CRM_CALLBACK_COMPLETED,
    SURVEY_CONTACT,
    SURVEY_INVITATION,
    SURVEY_RESPONSE,
)
from plumbing.auth import AdminAuth, TokenVerifier
from plumbing.runtime import Runtime, service_app
from scoring import repository
from scoring.api import manager_router
from scoring.callbacks import (
    CallbacksHandler,
    OpenAlertGauges,
    RuleBook,
    by_topic,
    callbacks_router,
)
from scoring.collector import collect_periodically, tune_collector
from scoring.consumer import ScoringHandler
from scoring.managers import managers_router
from scoring.publisher import IndicatorsPublisher
from scoring.retention import Purger
from scoring.settings import ScoringSettings
from scoring.tagging import Retagger

SERVICE = "scoring"
CONSUMED = (SURVEY_RESPONSE, SURVEY_INVITATION, SURVEY_CONTACT, CRM_CALLBACK_COMPLETED)
"""Never crm.contact.closed.v1: only survey-dispatch reads contact points; scoring learns of
contacts from its pseudonymous survey.contact.v1."""
PARTITION_FETCH_BYTES = 12 * 1024 * 1024
"""A response is ~1 kB: 1 MiB per partition and fetch (the client's default) made batches of
~1,100 responses when behind, far from max_records."""
MAX_BATCH_RECORDS = 10_000
"""Records per fetch, shared by its partitions. A backlog's batch adds to one row per site and
day and one per cohort however many responses it holds: batches of ~3,600 responses instead of
~2,500 (max 5,000) cut PostgreSQL's CPU per response by 12-15 % on the 50,000-response backlog
(0.031-0.038 against 0.040-0.050 ms, 3 alternating runs); 20,000 gained nothing more."""


def create_app(settings: ScoringSettings) -> FastAPI:
    async def setup(runtime: Runtime, app: FastAPI) -> None:
        # The reporting views read the floor from this row: one number for every output.
        async with runtime.db_pool.acquire() as conn:
            await repository.write_reporting_settings(
                conn, anonymity_floor=settings.anonymity_floor
            )
        # Each network's detractor rule (admin API), reloaded on every change (scoring.callbacks).
        rules = RuleBook(runtime.db_pool)
        await rules.load()
        app.state.detractor_rules = rules  # the admin API reloads it on a change
        runtime.listen(
            "detractor-rules", {repository.DETRACTOR_RULES_CHANNEL: rules.reload_soon},
            on_listening=rules.reload_soon,
        )  # fmt: skip
        gauges = OpenAlertGauges(settings, runtime.db_pool, runtime.registry)
        runtime.spawn("open-alert-gauges", gauges.run)
        runtime.consume(
            list(CONSUMED),
            batch_handler=by_topic(
                {CRM_CALLBACK_COMPLETED.name: CallbacksHandler()},
                default=ScoringHandler(settings, rules=rules),
            ),
            # No inbox row per event: each response and invitation is claimed by its own id
            # (ScoringHandler.claim); reminders and erasures are idempotent. Contacts keep the
            # inbox: a contact redelivered after its user's erasure must not come back.
            claimed_by_handler={SURVEY_RESPONSE.name, SURVEY_INVITATION.name},
            max_records=MAX_BATCH_RECORDS,  # bigger transactions: fewer rows per response
            partition_fetch_bytes=PARTITION_FETCH_BYTES,
            concurrent_partitions=True,  # tallies are keyed by site, and so are the partitions
            # Fresh figures: Tansu holds a waiting fetch long after a record arrives (~115 ms at
            # the default 500 ms); 5 ms costs ~200 empty fetches a second when idle.
            fetch_max_wait_ms=5,
        )  # fmt: skip
        publisher = IndicatorsPublisher(
            settings=settings, pool=runtime.db_pool, registry=runtime.registry,
            producer=runtime.kafka_producer, tracing=runtime.tracing,
        )  # fmt: skip
        runtime.watch_listener(publisher.listener)
        runtime.spawn("publisher", publisher.run)
        purger = Purger(
            settings=settings, pool=runtime.db_pool, topics=CONSUMED, registry=runtime.registry
        )
        runtime.spawn("retention-purge", purger.run)
        # Issue #17: verbatims stored before tagging, or tagged by another lexicon, re-tagged.
        runtime.spawn("verbatim-tags", Retagger(runtime.db_pool).run)
        tune_collector()
        runtime.spawn("garbage-collector", collect_periodically)

    app = service_app(
        settings=settings, service=SERVICE, schema="scoring", title="scoring", setup=setup
    )
    auth = AdminAuth(TokenVerifier.from_settings(settings))
    app.include_router(manager_router(settings, auth))
    app.include_router(managers_router(settings, auth))
    app.include_router(callbacks_router(settings, auth))
    return app
