"""The in-memory feeds: one build for concurrent misses, and no stale entry after a change."""

from __future__ import annotations

import asyncio

import pytest
from publication.feeds import RenderedCache, render_json

pytestmark = pytest.mark.unit


async def test_concurrent_misses_share_one_build():
    cache = RenderedCache(max_entries=100)
    builds = 0

    async def build():
        nonlocal builds
        builds += 1
        await asyncio.sleep(0.01)
        return render_json({"n": builds})

    results = await asyncio.gather(*(cache.get("s", build) for _ in range(50)))
    assert builds == 1
    assert {r.tag for r in results} == {results[0].tag}
    assert cache.peek("s") is results[0]


async def test_a_build_started_before_a_change_never_overwrites_the_newer_entry():
    cache = RenderedCache(max_entries=100)
    release = asyncio.Event()

    async def slow_old_build():
        await release.wait()
        return render_json({"version": "old"})

    pending = asyncio.ensure_future(cache.get("s", slow_old_build))
    await asyncio.sleep(0)
    new = render_json({"version": "new"})
    cache.put("s", new)  # the change notification arrives while the old build runs
    release.set()
    await pending
    assert cache.peek("s") is new


async def test_a_failed_build_caches_nothing_and_the_next_call_retries():
    cache = RenderedCache(max_entries=100)

    async def failing():
        raise ConnectionError("database away")

    with pytest.raises(ConnectionError):
        await cache.get("s", failing)

    async def working():
        return render_json({"ok": True})

    assert (await cache.get("s", working)).view == {"ok": True}


async def test_an_unknown_site_is_not_cached():
    cache = RenderedCache(max_entries=100)

    async def nothing():
        return None

    assert await cache.get("nope", nothing) is None
    assert cache.peek("nope") is None


def test_gzip_and_identity_bytes_share_the_tag_of_the_content():
    one, two = render_json({"a": "é"}), render_json({"a": "é"})
    assert one.tag == two.tag
    assert one.gzipped == two.gzipped  # mtime=0: same bytes every time, on every replica
    assert one.body == '{"a":"é"}'.encode()


async def test_the_cache_keeps_at_most_max_entries_the_least_recently_used_going_first():
    """Keys come from requests: 100,000 distinct ones must not keep 100,000 feeds in memory."""
    cache = RenderedCache(max_entries=3)

    async def build(key):
        return render_json({"key": key})

    for key in ("a", "b", "c"):
        await cache.get(key, lambda key=key: build(key))
    assert cache.peek("a") is not None  # used: "b" is now the oldest
    await cache.get("d", lambda: build("d"))
    assert len(cache) == 3
    assert cache.peek("b") is None
    assert {k for k in "acd" if cache.peek(k) is not None} == {"a", "c", "d"}
    for n in range(1000):
        await cache.get(f"k{n}", lambda n=n: build(n))
        cache.invalidate(f"v{n}")  # change stamps are bounded too
    assert len(cache) == 3
    assert len(cache._versions) <= 3


async def test_a_build_in_flight_when_the_stamps_start_afresh_is_not_kept():
    cache = RenderedCache(max_entries=2)
    release = asyncio.Event()

    async def slow_old_build():
        await release.wait()
        return render_json({"version": "old"})

    pending = asyncio.ensure_future(cache.get("s", slow_old_build))
    await asyncio.sleep(0)
    cache.invalidate("s")  # a change while it builds...
    for n in range(5):  # ...then enough other changes to start the stamps afresh
        cache.invalidate(f"other{n}")
    release.set()
    await pending
    assert cache.peek("s") is None
