"""The thinnest survey, real in every hop, driven only through public interfaces:
a Kafka producer, the mail in the maildir, and HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from contracts.envelope import encode
from contracts.events import SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED
from plumbing.auth import NETWORK_ADMIN, bearer
from plumbing.crm_simulator import SITES, CrmSimulator
from plumbing.sinks import read_maildir
from plumbing.testing import LINK, async_wait_for, produce, read_topic, survey_tokens

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(admin_system):
    """The whole system, its admin routes trusting the test issuer (tests/e2e/conftest.py)."""
    return admin_system


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


async def test_a_network_on_the_short_questionnaire_end_to_end(stack, system, issuer):
    """Issue #15: the MSA chooses the three-item SMS questionnaire through the admin API; its
    invitation links to a three-item page; the site's figures are that version's only."""
    local, _ = issuer
    admin = bearer(local.mint(subject="admin-msa", roles=[NETWORK_ADMIN], network="msa"))
    async with httpx.AsyncClient(base_url=system["survey-dispatch"].url) as client:
        chosen = await client.put(
            "/admin/v1/networks/msa/rules",
            json={"questionnaire_version": "sms-court-2026-v1"},
            headers=admin,
        )
        assert chosen.status_code == 200, chosen.text
    site = ("msa-armorique-saint-brieuc", "MSA d'Armorique, accueil de Saint-Brieuc", "msa")
    simulator = CrmSimulator(seed=15)
    contact = simulator.contact(site=site).model_copy(
        update={"preferred_channel": SurveyChannel.EMAIL, "email": "msa.court@exemple.fr"}
    )
    await produce(
        stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [simulator.event(contact)]
    )

    def token_for_msa() -> str | None:
        mails = [m for m in read_maildir(stack.maildir) if m["To"] == "msa.court@exemple.fr"]
        links = [LINK.findall(m.get_body(preferencelist=("plain",)).get_content()) for m in mails]
        return next((found[0] for found in links if found), None)

    token = await async_wait_for(token_for_msa, timeout=60)
    async with httpx.AsyncClient(base_url=system["responses"].url) as client:
        page = await async_wait_for(lambda: _page_if_known(client, token), timeout=30)
        assert "Votre avis en trois questions" in page.text and "Étape 3 sur 3" in page.text
        assert "Recommanderiez-vous" not in page.text
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        answer = await client.post(
            f"/s/{token}",
            data={"csrf": csrf, "satisfaction_globale": "9", "effort": "6",
                  "plusieurs_contacts": "non", "action": "submit"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text

    async with httpx.AsyncClient(base_url=system["publication"].url) as client:

        async def published() -> dict | None:
            response = await client.get(f"/v1/sites/{site[0]}/indicators")
            if response.status_code != 200:
                return None
            figures = {f["id"]: f for f in response.json()["current"]["indicators"]}
            satisfaction = figures.get("satisfaction")
            return figures if satisfaction and satisfaction["published"] else None

        figures = await async_wait_for(published, timeout=60)
    assert set(figures) == {"satisfaction", "fcr_declared", "ces"}  # no NPS: not asked
    assert figures["satisfaction"]["value"] == 100.0
    assert figures["satisfaction"]["sample_size"] == 1
    assert figures["fcr_declared"]["value"] == figures["ces"]["value"] == 100.0


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
