"""locust for the survey page: each user answers surveys as a phone would, GET then POST.

Run by `loadtests/scenarios/responses_load.py` (RESPONSES_LOAD_GENERATOR=locust), or by hand:
    RESPONSES_TOKENS_FILE=tokens.txt uv run locust -f loadtests/locust_responses.py --host URL
with one survey token per line (links the service knows). Survey latency (GET + POST) is
reported as its own request type, SURVEY.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import ClassVar

from locust import events, task
from locust.contrib.fasthttp import FastHttpUser

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
ANSWERS = {
    "satisfaction_globale": "9", "recommandation": "10", "canal": "telephone", "effort": "6",
    "plusieurs_contacts": "non", "theme_clarte": "8", "theme_delais": "5", "theme_courtoisie": "10",
    "profil": "employeur", "nature_demande": "information", "suggestion": "Très bon accueil.",
    "action": "submit",
}  # fmt: skip
TOKENS = iter(Path(os.environ["RESPONSES_TOKENS_FILE"]).read_text(encoding="utf-8").split())
WARMUP = float(os.environ.get("RESPONSES_WARMUP_SECONDS", "0"))
SAMPLES: dict[str, list[float]] = {"gets": [], "posts": [], "surveys": []}
FAILURES: dict[str, int] = {}
STARTED = time.perf_counter()
LAST: list[float] = [STARTED]


class SurveyUser(FastHttpUser):
    headers: ClassVar[dict[str, str]] = {"Accept-Encoding": "gzip"}

    @task
    def answer(self) -> None:
        token = next(TOKENS, None)
        if token is None:
            FAILURES["out of links"] = 1
            self.stop()
            return
        started = time.perf_counter()
        page = self.client.get(f"/s/{token}", name="GET /s/[token]", headers=self.headers)
        got = time.perf_counter()
        match = CSRF.search(page.text or "")
        if page.status_code != 200 or not match:
            FAILURES[f"GET {page.status_code}"] = FAILURES.get(f"GET {page.status_code}", 0) + 1
            return
        thanks = self.client.post(
            f"/s/{token}", name="POST /s/[token]", data={**ANSWERS, "csrf": match.group(1)},
            headers=self.headers,
        )  # fmt: skip
        done = time.perf_counter()
        if thanks.status_code != 200 or "bien enregistr" not in (thanks.text or ""):
            FAILURES[f"POST {thanks.status_code}"] = (
                FAILURES.get(f"POST {thanks.status_code}", 0) + 1
            )
            return
        events.request.fire(
            request_type="SURVEY", name="GET + POST", response_time=(done - started) * 1000,
            response_length=0, exception=None, context={},
        )  # fmt: skip
        if started - STARTED >= WARMUP:
            SAMPLES["gets"].append(got - started)
            SAMPLES["posts"].append(done - got)
            SAMPLES["surveys"].append(done - started)
            LAST[0] = done


@events.quitting.add_listener
def write_report(environment, **_: object) -> None:
    report = os.environ.get("RESPONSES_REPORT_FILE")
    if report:
        measured = max(0.001, LAST[0] - STARTED - WARMUP)
        body = {**SAMPLES, "failures": FAILURES, "measured_seconds": measured}
        Path(report).write_text(json.dumps(body), encoding="utf-8")
