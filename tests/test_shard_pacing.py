"""GetRecords pacing: at most 5 calls per second per shard, as Kinesis allows."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from consumers.get_records import (
    GET_RECORDS_INTERVAL,
    LAKE_GET_RECORDS_INTERVAL,
    LAKE_GET_RECORDS_LIMIT,
    CallPacer,
)


def test_the_first_call_goes_at_once() -> None:
    assert CallPacer(0.2).wait_before_call(100.0) == 0.0


def test_a_call_right_after_another_waits_out_the_interval() -> None:
    pacer = CallPacer(0.2)
    pacer.wait_before_call(100.0)
    assert abs(pacer.wait_before_call(100.05) - 0.15) < 1e-9


def test_waits_count_from_when_the_last_call_really_started() -> None:
    pacer = CallPacer(0.2)
    pacer.wait_before_call(10.0)
    assert abs(pacer.wait_before_call(10.0) - 0.2) < 1e-9  # starts at 10.2
    assert abs(pacer.wait_before_call(10.25) - 0.15) < 1e-9  # 10.2 + 0.2 = 10.4


def test_a_call_after_a_long_pause_goes_at_once() -> None:
    pacer = CallPacer(0.2)
    pacer.wait_before_call(10.0)
    assert pacer.wait_before_call(11.0) == 0.0


def test_the_interval_keeps_to_kinesis_five_calls_per_second() -> None:
    assert GET_RECORDS_INTERVAL >= 1 / 5


def test_the_events_and_lake_readers_of_a_shard_keep_to_five_calls_together() -> None:
    assert 1 / GET_RECORDS_INTERVAL + 1 / LAKE_GET_RECORDS_INTERVAL <= 5
    assert LAKE_GET_RECORDS_LIMIT / LAKE_GET_RECORDS_INTERVAL >= 2 * 1000  # catches up a backlog


@given(st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=200))
def test_no_two_calls_start_closer_than_the_interval(gaps: list[float]) -> None:
    pacer = CallPacer(0.2)
    now = 0.0
    starts: list[float] = []
    for gap in gaps:
        now += gap  # the caller comes back after processing for `gap` seconds
        start = now + pacer.wait_before_call(now)
        # never closer than the interval, and never a wait longer than that needs
        expected = now if not starts else max(now, starts[-1] + 0.2)
        assert abs(start - expected) < 1e-9
        starts.append(start)
        now = start
    assert all(b - a >= 0.2 - 1e-9 for a, b in itertools.pairwise(starts))
