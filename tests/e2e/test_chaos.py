"""A small chaos run (issue #13) through the real system, two replicas of every service:
300 contacts over 3 sites, 3 `kill -9` of random replicas (each restarted), PostgreSQL killed
and restarted, the SMTP relay frozen 10 s, a responses replica drained with SIGTERM.

`loadtests/scenarios/chaos.py` checks what the issue lists (one link per contact, every
acknowledged answer counted once and figures equal to a recomputation, no 500, ready within 30 s
of the database's return, a clean drain) and returns what failed in `violations`."""

from __future__ import annotations

import json

import pytest

from loadtests.scenarios import chaos

pytestmark = pytest.mark.e2e


async def test_a_small_chaos_run_loses_nothing_counts_nothing_twice_and_never_answers_500(
    stack, tmp_path
):
    figures = await chaos.chaos(stack, tmp_path, chaos.SMALL)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    assert figures["violations"] == []
    assert figures["contacts_mailed"] == chaos.SMALL.contacts
    assert figures["answers_acknowledged"] > 0
    assert figures["answers_counted_in_published_figures"] == figures["answers_acknowledged"]
    assert figures["http_500"] == 0
    kinds = [d["kind"] for d in figures["disturbances"]]
    assert kinds.count("kill -9") == chaos.SMALL.kills
    assert {"postgres kill -9", "smtp frozen", "SIGTERM"} <= set(kinds)
    assert all(d["heal_seconds"] is not None for d in figures["disturbances"])
