"""When a rebuild has read a partition to its end (the broker's marks can each fall short)."""

from scoring.rebuild import caught_up


def test_a_stale_highwater_does_not_end_the_rebuild_before_the_end_it_began_with():
    # CI: the last fetch's highwater said 1309 while record 1309 existed; the rebuild stopped
    # there and missed it (the start's end offset, 1310, was never compared).
    assert not caught_up(position=1309, highwater=1309, end_at_start=1310)
    assert caught_up(position=1310, highwater=1309, end_at_start=1310)


def test_records_appended_during_the_rebuild_are_read_too():
    assert not caught_up(position=1310, highwater=1400, end_at_start=1310)
    assert caught_up(position=1400, highwater=1400, end_at_start=1310)


def test_a_partition_not_fetched_yet_waits_for_the_end_it_began_with():
    assert not caught_up(position=0, highwater=None, end_at_start=5)
    assert caught_up(position=0, highwater=None, end_at_start=0)  # empty: nothing to wait for
