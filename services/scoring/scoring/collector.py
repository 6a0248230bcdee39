"""Garbage collector settings for scoring's processes (the service and the rebuild)."""

from __future__ import annotations

import asyncio
import gc

COLLECT_EVERY_SECONDS = 30.0


def tune_collector() -> None:
    """Once the service is built: what lives as long as the process (modules, schemas, pools)
    leaves the collector's generations, and the collector no longer runs on its own: the
    service collects every `COLLECT_EVERY_SECONDS` (`collect_periodically`), the rebuild, a
    one-shot process, not at all.

    Why: a batch of thousands of decoded events is alive while it is handled, and an automatic
    collection scans it all. Even every 100,000 allocations (not 700), a 50,000-response
    backlog met 4 collections of 33-54 ms (6 % of scoring's CPU) that freed nothing: scoring
    makes little cyclic garbage (a rebuild of 50,000 responses, 15 objects), which the
    periodic collection frees."""
    gc.freeze()
    gc.disable()


async def collect_periodically(every: float = COLLECT_EVERY_SECONDS) -> None:
    """The service's collections, with the collector off (`tune_collector`): the cyclic
    garbage of `every` seconds at most is kept, and a collection scans the batches in flight
    at most once per `every`."""
    while True:
        await asyncio.sleep(every)
        gc.collect()
