"""Schemathesis and Hypothesis against the live JSON API: no input, valid or not, makes a 5xx."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.questionnaire import load

pytestmark = pytest.mark.integration

ITEM_IDS = [item.id for item in load("urssaf-chaud-2024-v1").items]
FAST = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    return {"RATE_LIMIT_IP_PER_MINUTE": "0", "RATE_LIMIT_TOKEN_PER_MINUTE": "0"}


def fuzz_from_the_openapi_description(base_url: str, tokens: list[str]) -> Counter[int]:
    """Schemathesis cases, half on unknown links, half on real ones so validation runs too."""
    operation = schemathesis.openapi.from_url(f"{base_url}/openapi.json")["/v1/responses/{token}"][
        "POST"
    ]
    statuses: Counter[int] = Counter()
    session = requests.Session()
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
        cases = st.sampled_from([None, *tokens]).flatmap(
            lambda token, mode=mode: operation.as_strategy(
                mode, path_parameters={"token": token} if token else None
            )
        )

        @FAST
        @given(case=cases)
        def no_server_error(case) -> None:
            response = case.call(base_url=base_url, session=session, timeout=10)
            statuses[response.status_code] += 1
            assert response.status_code < 500, case.as_curl_command()

        no_server_error()
    return statuses


def fuzz_answers_by_question_id(base_url: str, tokens: list[str]) -> Counter[int]:
    """Real question ids with any value (huge numbers, NUL, lone surrogates, long text)."""
    statuses: Counter[int] = Counter()
    session = requests.Session()
    anything = st.dictionaries(
        st.sampled_from(ITEM_IDS),
        st.one_of(
            st.integers(),
            st.integers(-2, 12),
            st.text(),
            st.text(max_size=3000),
            st.sampled_from(["oui", "non", "telephone", "employeur", "autre"]),
        ),
    )
    complete = st.fixed_dictionaries(
        {"satisfaction_globale": st.integers(1, 10), "recommandation": st.integers(0, 10)},
        optional={"suggestion": st.text(max_size=1200), "canal": st.sampled_from(["sms", "visio"])},
    )
    answers = st.one_of(anything, complete)

    @FAST
    @given(token=st.sampled_from(tokens), answers=answers, partial=st.booleans())
    def no_server_error(token: str, answers: dict[str, object], partial: bool) -> None:
        body = {"answers": answers, "partial": partial}
        # json.dumps escapes lone surrogates (`\ud800`), as a careless client would send them.
        response = session.post(
            f"{base_url}/v1/responses/{token}",
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        statuses[response.status_code] += 1
        assert response.status_code < 500, body

    no_server_error()
    return statuses


async def test_no_input_makes_the_json_api_fail(service, invite):
    tokens = await invite(60)
    described = await asyncio.to_thread(fuzz_from_the_openapi_description, service.url, tokens[:30])
    targeted = await asyncio.to_thread(fuzz_answers_by_question_id, service.url, tokens[30:])
    print(f"schemathesis statuses: {dict(described)}; targeted: {dict(targeted)}")
    assert {404, 422} <= set(described)  # both the unknown links and the validation were reached
    assert {201, 409} <= set(targeted)  # and real submissions, then replays
