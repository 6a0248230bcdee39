"""The responses service as a real process on the module's devstack, and invitations for it."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import asyncpg
import pytest

from contracts.envelope import CloudEvent, new_event_id, utc_now
from contracts.events import InvitationSent
from contracts.topics import INVITATION_SENT, SURVEY_INVITATION
from plumbing.services import ServiceProcess, System, start_system
from plumbing.testing import async_wait_for, produce

SITE_ID = "site-montreuil"
SITE_NAME = "Urssaf Île-de-France, accueil de Montreuil"
Invite = Callable[..., Awaitable[list[str]]]


def invitation_event(
    token: str, *, expires_in: timedelta, **overrides: object
) -> CloudEvent[InvitationSent]:
    now = utc_now()
    fields: dict[str, object] = {
        "invitation_id": f"inv-{uuid.uuid4().hex[:16]}",
        "contact_id": f"crm-{uuid.uuid4().hex[:12]}",
        "site_id": SITE_ID,
        "site_name": SITE_NAME,
        "network": "urssaf",
        "channel": "telephone",
        "motif": "declaration",
        "profile": "employeur",
        "request_nature": "information",
        "survey_channel": "sms",
        "user_pseudo_id": secrets.token_hex(16),
        "questionnaire_version": "urssaf-chaud-2024-v1",
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        "sent_at": now,
        "expires_at": now + expires_in,
    }
    fields.update(overrides)
    return CloudEvent[InvitationSent](
        id=new_event_id(),
        source="/test",
        type=INVITATION_SENT.type,
        time=now,
        subject=SITE_ID,
        data=InvitationSent.model_validate(fields),
    )


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    """Overridden by a module that needs other settings (e.g. no rate limit for fuzzing)."""
    return {}


@pytest.fixture(scope="module")
def system(stack, tmp_path_factory, service_env) -> Iterator[System]:
    running = start_system(
        stack.env(), tmp_path_factory.mktemp("logs"), only=("responses",), extra_env=service_env
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def service(system) -> ServiceProcess:
    return system["responses"]


@pytest.fixture
def invite(stack) -> Invite:
    """`await invite(n, expires_in=..., **fields)`: n fresh links, known to the service."""

    async def make(
        count: int = 1, *, expires_in: timedelta = timedelta(days=7), **fields: object
    ) -> list[str]:
        tokens = [secrets.token_urlsafe(12) for _ in range(count)]
        events = [invitation_event(token, expires_in=expires_in, **fields) for token in tokens]
        await produce(stack.kafka_bootstrap_servers, SURVEY_INVITATION.name, events)
        digests = [hashlib.sha256(token.encode()).hexdigest() for token in tokens]

        async def all_known() -> bool:  # the database, not GET: polling must not spend rate limits
            connection = await asyncpg.connect(stack.database_url)
            try:
                known = await connection.fetchval(
                    "SELECT count(*) FROM survey_responses.invitations"
                    " WHERE token_sha256 = ANY($1)",
                    digests,
                )
            finally:
                await connection.close()
            return known == count

        await async_wait_for(all_known, timeout=60, interval=0.1)
        return tokens

    return make


@pytest.fixture
async def db(stack):
    connection = await asyncpg.connect(
        stack.database_url, server_settings={"search_path": "survey_responses"}
    )
    yield connection
    await connection.close()
