"""The rollups' pure parts: what an event counts, its bucket, and positions that make a batch
delivered again (whole or split another way) count once."""

from __future__ import annotations

import random

import datasketches
from hypothesis import given
from hypothesis import strategies as st

from consumers.rollups.state import RollupState, added, from_item, to_item, unseen
from consumers.rollups.tally import (
    UNKNOWN_PROGRAM,
    Counted,
    RollupKey,
    bucket_name,
    counted,
    fold,
    padded,
)
from tracker.schema.tracking.v1 import tracking_pb2 as pb

SHARD = "shardId-000000000001"
T0 = 1_774_742_400_000  # 2026-03-29T00:00Z


def event(**fields: object) -> pb.TrackingEvent:
    base: dict[str, object] = {
        "programid": "shoes",
        "message_id": random.randbytes(16).hex(),
        "timestamp_ms": T0,
        "event_type": pb.IMPRESSION,
        "validation": pb.OK,
        "billable": True,
        "visitor_id": random.randbytes(16).hex(),
    }
    base.update(fields)
    return pb.TrackingEvent(**base)  # type: ignore[arg-type]


def test_buckets_are_utc_quarter_hours() -> None:
    assert bucket_name(T0) == "2026-03-29T00:00Z"
    assert bucket_name(T0 + 14 * 60_000 + 59_999) == "2026-03-29T00:00Z"
    assert bucket_name(T0 + 15 * 60_000) == "2026-03-29T00:15Z"
    assert bucket_name(T0 - 1) == "2026-03-28T23:45Z"


def test_what_each_event_counts() -> None:
    assert counted(event(), "7").names == ("validation.OK", "impressions", "billable_impressions")
    click = counted(event(event_type=pb.CLICK, billable=False, ivt=pb.IVT_DUPLICATE_CLICK), "7")
    assert click.names == ("validation.OK", "clicks", "ivt.IVT_DUPLICATE_CLICK")
    assert click.visitor is None  # uniques count billable impressions and clicks only
    other = counted(event(event_type=pb.EVENT), "7")
    assert other.names == ("validation.OK", "events")
    assert other.visitor is None
    newer = counted(event(ivt=42, billable=False), "7")
    assert "ivt.UNKNOWN_42" in newer.names


def test_unknown_programs_share_one_row_per_bucket() -> None:
    events = [
        (event(programid=f"nobody-{n}", validation=pb.UNKNOWN_PROGRAM, billable=False), "1")
        for n in range(50)
    ]
    groups = fold(events)
    assert list(groups) == [RollupKey(UNKNOWN_PROGRAM, "2026-03-29T00:00Z")]
    assert len(groups[RollupKey(UNKNOWN_PROGRAM, "2026-03-29T00:00Z")]) == 50


def test_positions_compare_as_numbers_whatever_their_length() -> None:
    assert (
        padded("9")
        < padded("10")
        < padded("49590338271490256608559692538361571095921575989136588898")
    )


def _apply_in_pieces(state: RollupState, events: list[Counted], cuts: list[int]) -> RollupState:
    start = 0
    for end in [*sorted(cuts), len(events)]:
        fresh = unseen(state, SHARD, events[start:end])
        if fresh:
            state = added(state, SHARD, fresh)
        start = min(end, len(events))
    return state


@given(
    st.lists(st.integers(0, 40), max_size=5),
    st.lists(st.integers(0, 40), max_size=5),
    st.integers(0, 40),
)
def test_a_batch_delivered_again_split_otherwise_counts_once(
    first_cuts: list[int], second_cuts: list[int], replay_from: int
) -> None:
    events = [counted(event(), str(1000 + n)) for n in range(40)]
    once = _apply_in_pieces(RollupState(), events, first_cuts)
    # Delivered again from any earlier record, cut into other pieces (Lambda's bisect).
    again = _apply_in_pieces(once, events[replay_from:], second_cuts)
    assert (
        again.counts
        == once.counts
        == {
            "validation.OK": 40,
            "impressions": 40,
            "billable_impressions": 40,
        }
    )


def test_shards_keep_their_own_positions() -> None:
    state = added(RollupState(), "shard-a", [counted(event(), "500")])
    other = [counted(event(), "100")]  # lower, but another shard's sequence
    assert unseen(state, "shard-b", other) == other
    assert unseen(state, "shard-a", other) == []


def test_uniques_merge_and_never_add() -> None:
    visitors = [random.randbytes(16).hex() for _ in range(3000)]
    first = [counted(event(visitor_id=v), str(n)) for n, v in enumerate(visitors[:2000])]
    second = [counted(event(visitor_id=v), str(5000 + n)) for n, v in enumerate(visitors[1000:])]
    state = added(added(RollupState(), SHARD, first), SHARD, second)
    assert state.sketch is not None
    estimate = datasketches.hll_sketch.deserialize(state.sketch).get_estimate()
    assert abs(estimate - 3000) / 3000 < 0.05  # 3,000 distinct, not 4,000


def test_an_item_reads_back_as_it_was_written() -> None:
    state = added(RollupState(), SHARD, [counted(event(), "17")])
    item = to_item(RollupKey("shoes", "2026-03-29T00:00Z"), state)
    # What a DynamoDB client gives back: binary values as bytes, the same shapes otherwise.
    back = from_item(item)
    assert back.counts == state.counts
    assert back.positions == state.positions
    assert back.sketch == state.sketch
    assert back.version == 1
