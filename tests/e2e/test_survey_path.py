"""The thinnest survey, real in every hop, driven only through public interfaces:
a Kafka producer, the mail in the maildir, and HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from contracts.envelope import encode
from contracts.events import SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED
from plumbing.crm_simulator import SITES, CrmSimulator
from plumbing.sinks import read_maildir
from plumbing.testing import async_wait_for, produce, read_topic, survey_tokens

pytestmark = pytest.mark.e2e


async def test_contact_closed_to_published_figure(stack, system):
    simulator = CrmSimulator(seed=1)
    site = SITES[0]
    contact = simulator.contact(site=site).model_copy(
        update={"preferred_channel": SurveyChannel.EMAIL, "email": "marie.dupont@exemple.fr"}
    )
    # DEFAULT_RULES above: no delay and no sending window, so the mail leaves at once.
    await produce(
        stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [simulator.event(contact)]
    )

    tokens = await async_wait_for(lambda: survey_tokens(stack.maildir), timeout=60)
    token = tokens[-1]
    async with httpx.AsyncClient(base_url=system["responses"].url) as client:
        page = await async_wait_for(lambda: _page_if_known(client, token), timeout=30)
        assert "Recommanderiez-vous ce service à un proche ?" in page.text
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        answer = await client.post(
            f"/s/{token}",
            data={
                "csrf": csrf,
                "satisfaction_globale": "9",
                "recommandation": "10",
                "action": "submit",
            },
        )
        assert answer.status_code == 200, answer.text
        assert "vos réponses sont bien enregistrées" in answer.text
        again = await client.post(f"/s/{token}", data={"csrf": csrf, "recommandation": "0"})
        assert again.status_code == 409

    async with httpx.AsyncClient(base_url=system["publication"].url) as client:

        async def nps_published():
            response = await client.get(f"/v1/sites/{site[0]}/indicators")
            if response.status_code != 200:
                return None
            figures = {f["id"]: f for f in response.json()["current"]["indicators"]}
            nps = figures.get("nps")
            return nps if nps and nps["published"] else None

        nps = await async_wait_for(nps_published, timeout=60)
        assert nps["value"] == 100.0
        assert nps["sample_size"] == 1
        display = await client.get(f"/display/{site[0]}")
        assert display.status_code == 200
        assert "Recommandation" in display.text


async def _page_if_known(client: httpx.AsyncClient, token: str):
    response = await client.get(f"/s/{token}")
    return response if response.status_code == 200 else None


async def test_invalid_contact_closed_goes_to_the_dlq_and_the_next_one_is_handled(stack, system):
    simulator = CrmSimulator(seed=2)
    valid = simulator.contact(site=SITES[1]).model_copy(
        update={"preferred_channel": SurveyChannel.EMAIL, "email": "apres.dlq@exemple.fr"}
    )
    bad_channel = simulator.event(simulator.contact()).model_dump(mode="json")
    bad_channel["data"]["channel"] = "pigeon voyageur"
    await produce(
        stack.kafka_bootstrap_servers,
        CRM_CONTACT_CLOSED.name,
        [b"{not json", json.dumps(bad_channel).encode(), encode(simulator.event(valid))],
    )

    dead = await read_topic(
        stack.kafka_bootstrap_servers,
        CRM_CONTACT_CLOSED.dlq_name,
        until=lambda records: len(records) >= 2,
        timeout=60,
    )
    reasons = [dict(record.headers)["dlq-error"].decode() for record in dead]
    assert any("not a JSON object" in reason for reason in reasons)
    assert any("channel" in reason for reason in reasons)
    assert all(
        dict(record.headers)["dlq-original-topic"] == CRM_CONTACT_CLOSED.name.encode()
        for record in dead
    )

    def mail_for_valid_contact():
        return [m for m in read_maildir(stack.maildir) if m["To"] == "apres.dlq@exemple.fr"]

    await async_wait_for(mail_for_valid_contact, timeout=60)
