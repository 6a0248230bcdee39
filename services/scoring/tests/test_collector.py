"""Scoring's garbage collection: off on its own, done periodically, and nothing cyclic kept."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from scoring.collector import collect_periodically, tune_collector

pytestmark = pytest.mark.unit


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def collector_restored() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()


def cycle() -> weakref.ref[Node]:
    """A reference cycle nobody holds: only the cyclic collector frees it."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


async def test_the_collector_no_longer_runs_on_its_own_but_every_few_seconds(
    collector_restored: None,
) -> None:
    tune_collector()
    assert not gc.isenabled()
    garbage = cycle()
    kept = [[] for _ in range(300_000)]  # far past any automatic threshold: nothing collects it
    assert garbage() is not None
    del kept

    collecting = asyncio.create_task(collect_periodically(every=0.01))
    try:
        for _ in range(200):
            if garbage() is None:
                break
            await asyncio.sleep(0.01)
    finally:
        collecting.cancel()
    assert garbage() is None, "the periodic collection freed the cycle"
