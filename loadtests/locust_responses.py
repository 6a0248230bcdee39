"""locust for the survey page: each user answers surveys as a phone would, GET then POST.

Run by `loadtests/scenarios/responses_load.py` (RESPONSES_LOAD_GENERATOR=locust), or by hand:
    RESPONSES_TOKENS_FILE=tokens.txt uv run locust -f loadtests/locust_responses.py --host URL
with one survey token per line (links the service knows). Survey latency (GET + POST) is
reported as its own request type, SURVEY.

Two models:
- closed (default): each user answers back to back, as fast as the service allows (capacity);
- open, when RESPONSES_RATE (surveys/s, all users together) is set: surveys start on a fixed
  schedule, user k of U starting surveys k, k + U, k + 2U, ... at `T0 + n / RATE` (as wrk2 does
  per connection). A survey that starts late because the previous one was slow is timed from
  its planned start, so a stall is never hidden (no coordinated omission).

RESPONSES_HOSTS (comma-separated base URLs) spreads the users over service replicas, as a
Kubernetes Service spreads connections; otherwise every user speaks to `--host`.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import re
import time
from pathlib import Path
from typing import Any, ClassVar

import gevent
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser

CSRF = re.compile(rb'name="csrf" value="([0-9a-f]+)"')
ANSWERS = {
    "satisfaction_globale": "9", "recommandation": "10", "canal": "telephone", "effort": "6",
    "plusieurs_contacts": "non", "theme_clarte": "8", "theme_delais": "5", "theme_courtoisie": "10",
    "profil": "employeur", "nature_demande": "information", "suggestion": "Très bon accueil.",
    "action": "submit",
}  # fmt: skip
TOKENS = iter(Path(os.environ["RESPONSES_TOKENS_FILE"]).read_text(encoding="utf-8").split())
WARMUP = float(os.environ.get("RESPONSES_WARMUP_SECONDS", "0"))
RATE = float(os.environ.get("RESPONSES_RATE", "0"))  # 0: closed model
HOSTS = [host for host in os.environ.get("RESPONSES_HOSTS", "").split(",") if host]
SAMPLES: dict[str, list[float]] = {"gets": [], "posts": [], "surveys": [], "completed": []}
FAILURES: dict[str, int] = {}
STARTED = time.perf_counter()
T0 = STARTED + 1.0  # the open model's schedule starts once the users are spawned
LAST: list[float] = [STARTED]
_numbers = itertools.count()


class SurveyUser(FastHttpUser):
    headers: ClassVar[dict[str, str]] = {"Accept-Encoding": "gzip"}

    def __init__(self, environment: Any) -> None:
        self.number = next(_numbers)
        if HOSTS:
            self.host = HOSTS[self.number % len(HOSTS)]
        super().__init__(environment)
        self.users = max(1, environment.parsed_options.num_users if environment.parsed_options
                         else 1)  # fmt: skip
        self.next_planned = T0 + self.number / RATE if RATE else 0.0

    def wait_time(self) -> float:
        return max(0.0, self.next_planned - time.perf_counter()) if RATE else 0.0

    @task
    def answer(self) -> None:
        token = next(TOKENS, None)
        if token is None:
            FAILURES["out of links"] = 1
            self.stop()
            return
        if RATE:  # timed from the planned start, late or not
            started = self.next_planned
            self.next_planned += self.users / RATE
            if started > time.perf_counter():  # the first one: wait_time runs after a task
                gevent.sleep(started - time.perf_counter())
        else:
            started = time.perf_counter()
        page = self.client.get(f"/s/{token}", name="GET /s/[token]", headers=self.headers)
        got = time.perf_counter()
        match = CSRF.search(page.content or b"")  # bytes: no decoding of the 29 KB page
        if page.status_code != 200 or not match:
            FAILURES[f"GET {page.status_code}"] = FAILURES.get(f"GET {page.status_code}", 0) + 1
            return
        form = {**ANSWERS, "csrf": match.group(1).decode()}
        thanks = self.client.post(
            f"/s/{token}", name="POST /s/[token]", data=form, headers=self.headers
        )
        done = time.perf_counter()
        if thanks.status_code != 200 or b"bien enregistr" not in (thanks.content or b""):
            FAILURES[f"POST {thanks.status_code}"] = (
                FAILURES.get(f"POST {thanks.status_code}", 0) + 1
            )
            return
        events.request.fire(
            request_type="SURVEY", name="GET + POST", response_time=(done - started) * 1000,
            response_length=0, exception=None, context={},
        )  # fmt: skip
        SAMPLES["completed"].append(done - started)  # warm-up included: for CPU per survey
        if started - (T0 if RATE else STARTED) >= WARMUP:
            SAMPLES["gets"].append(got - started)
            SAMPLES["posts"].append(done - got)
            SAMPLES["surveys"].append(done - started)
            LAST[0] = max(LAST[0], done)


@events.init.add_listener
def out_of_the_collector(**_: object) -> None:
    """locust's own objects, loaded by now, out of the collector's sight: a full collection in
    the generator would pause every user and be measured as the service's latency."""
    gc.collect()
    gc.freeze()


@events.quitting.add_listener
def write_report(environment: Any, **_: object) -> None:
    report = os.environ.get("RESPONSES_REPORT_FILE")
    if report:
        origin = T0 if RATE else STARTED
        measured = max(0.001, LAST[0] - origin - WARMUP)
        body = {**SAMPLES, "failures": FAILURES, "measured_seconds": measured}
        Path(report).write_text(json.dumps(body), encoding="utf-8")
