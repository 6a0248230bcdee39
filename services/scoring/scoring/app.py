"""scoring: tallies answers, invitations and contacts; publishes indicators and detractor alerts."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.topics import CRM_CONTACT_CLOSED, SURVEY_INVITATION, SURVEY_RESPONSE
from plumbing.runtime import Runtime, service_app
from scoring.api import manager_router
from scoring.consumer import ScoringHandler
from scoring.publisher import IndicatorsPublisher
from scoring.settings import ScoringSettings

SERVICE = "scoring"


def create_app(settings: ScoringSettings) -> FastAPI:
    async def setup(runtime: Runtime, app: FastAPI) -> None:
        runtime.consume(
            [SURVEY_RESPONSE, SURVEY_INVITATION, CRM_CONTACT_CLOSED],
            batch_handler=ScoringHandler(settings),
            max_records=5000,  # bigger transactions: fewer commits per response
            concurrent_partitions=True,  # tallies are keyed by site, and so are the partitions
            # Fresh figures: Tansu holds a waiting fetch long after a record arrives (~115 ms at
            # the default 500 ms); 5 ms costs ~200 empty fetches a second when idle.
            fetch_max_wait_ms=5,
        )  # fmt: skip
        publisher = IndicatorsPublisher(
            settings=settings, pool=runtime.db_pool, registry=runtime.registry,
            producer=runtime.kafka_producer,
        )  # fmt: skip
        runtime.spawn("publisher", publisher.run)

    app = service_app(
        settings=settings, service=SERVICE, schema="scoring", title="scoring", setup=setup
    )
    app.include_router(manager_router(settings))
    return app
