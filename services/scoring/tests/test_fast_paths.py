"""The hot paths that skip a pydantic step must produce exactly what the slow way produces."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from scoring import domain
from scoring.consumer import ScoringHandler, _alert_event
from scoring.publisher import encode_fast
from scoring.settings import ScoringSettings

from contracts import questionnaire
from contracts.envelope import CloudEvent, decode, encode, new_event_id
from contracts.events import ResponseSubmitted, SiteIndicatorsUpdated
from contracts.topics import DETRACTOR_ALERT, SITE_INDICATORS_UPDATED

pytestmark = pytest.mark.unit

FORM = questionnaire.load()
NOW = datetime(2026, 3, 18, 9, 30, tzinfo=UTC)


def indicators_event(rng: random.Random, site_name: str | None) -> CloudEvent[Any]:
    tally: dict[str, dict[str, int]] = {}
    if rng.random() < 0.8:  # sometimes nobody answered: null values and intervals
        tally["__responses__"] = {"1": rng.randint(1, 5000)}
        for item in ("recommandation", "satisfaction_globale", "effort"):
            tally[item] = {str(v): rng.randint(0, 90) for v in range(0, 11)}
        tally["plusieurs_contacts"] = {"oui": rng.randint(0, 9), "non": rng.randint(0, 9)}
    periods = [
        domain.period_figures(p, tally, invitations=rng.randint(0, 9000), questionnaire=FORM,
                              fcr=(rng.randint(0, 9), rng.randint(0, 9), rng.randint(0, 9)))
        for p in domain.periods(NOW.date())
    ]  # fmt: skip
    data = SiteIndicatorsUpdated(
        site_id="site-42", site_name=site_name, network="urssaf", computed_at=NOW, periods=periods
    )
    return CloudEvent[SiteIndicatorsUpdated](
        id=new_event_id(), source="/scoring", type=SITE_INDICATORS_UPDATED.type, time=NOW,
        subject="site-42", data=data,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_the_fast_indicators_encoding_is_the_envelope_encoding(seed: int) -> None:
    rng = random.Random(seed)
    event = indicators_event(rng, rng.choice([None, "Agence de Besançon « centre »"]))
    assert json.loads(encode_fast(event)) == json.loads(encode(event))  # same document
    assert decode(SITE_INDICATORS_UPDATED.envelope, encode_fast(event)) == event


def test_tiny_floats_are_only_spelled_differently() -> None:
    event = indicators_event(random.Random(3), None)
    figure = event.data.periods[0].figures[0].model_copy(update={"value": 3.4e-06})
    period = event.data.periods[0].model_copy(update={"figures": [figure]})
    data = event.data.model_copy(update={"periods": [period]})
    tiny = event.model_copy(update={"data": data})
    assert json.loads(encode_fast(tiny)) == json.loads(encode(tiny))


def test_an_alert_built_without_revalidation_encodes_as_a_validated_one() -> None:
    response = ResponseSubmitted(
        response_id="rsp-1", invitation_id="inv-1", contact_id="crm-1", site_id="site-1",
        network="urssaf", channel="telephone", motif="declaration",
        questionnaire_version="urssaf-chaud-2024-v1", answered_at=NOW,
        answers={"recommandation": 2, "satisfaction_globale": 3, "plusieurs_contacts": "oui",
                 "recontact": "oui", "suggestion": "Rappelez-moi au 06 12 34 56 78"},
    )  # fmt: skip
    handler = ScoringHandler(ScoringSettings())
    alert = handler._alert_for(response)
    assert alert is not None
    assert "suggestion" not in alert.answers  # free text never travels on scoring.alert.v1
    event = _alert_event(alert)
    decoded = decode(DETRACTOR_ALERT.envelope, encode(event))  # validated on the way back
    assert decoded.data.model_dump() == alert.model_dump()
    assert decoded.model_dump(exclude={"data"}) == event.model_dump(exclude={"data"})
    assert {reason.value for reason in decoded.data.reasons} == {
        "low_recommendation", "low_satisfaction", "repeat_contact_with_suggestion",
    }  # fmt: skip
