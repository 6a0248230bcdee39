"""A small chaos run (issue #13) through the real system, two replicas of every service:
300 contacts over 3 sites, 3 `kill -9` of random replicas (each restarted), PostgreSQL killed
and restarted, the SMTP relay frozen 10 s right after storing a mail (dispatch's SMTP timeout
3 s: that mail is sent again), a responses replica drained with SIGTERM; screens (event streams)
watched on both publication replicas.

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
    # The relay froze right after storing a mail, longer than dispatch's SMTP timeout: that mail
    # was given up on and sent again, the same mail (Message-ID and link) as the first copy.
    assert figures["mails_resent"] >= 1
    assert figures["mails_resent_same_message_id_and_link"] == figures["mails_resent"]
    kinds = [d["kind"] for d in figures["disturbances"]]
    assert kinds.count("kill -9") == chaos.SMALL.kills
    assert {"postgres kill -9", "smtp frozen", "SIGTERM"} <= set(kinds)
    assert all(d["heal_seconds"] is not None for d in figures["disturbances"])
