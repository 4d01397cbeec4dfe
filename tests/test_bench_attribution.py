"""The attribution part of the bench runs at a tiny size against moto, and its counts are those
the issue asks for: at most one DynamoDB read and two writes per conversion on the common path.
Counts of calls and units only: no timing is checked but that one was taken."""

from __future__ import annotations

from typing import Any

import pytest

from bench import attribution_cost
from bench.attribution_cost import Amounts, Feed
from tracker.schema.tracking.v1 import tracking_pb2 as pb

# What one conversion of each path costs on the stream: attribution table reads and writes,
# and writes in all (its own item's write counted); every item under 1 KB.
STREAM_PATHS = {
    "attributed": {"reads": 1.0, "attribution_writes": 1.0, "writes": 2.0},
    "duplicate": {"reads": 1.0, "attribution_writes": 1.0, "writes": 2.0},
    "no_click_id": {"reads": 0.0, "attribution_writes": 0.0, "writes": 1.0},
}


@pytest.fixture(scope="module")
def part() -> dict[str, Any]:
    return attribution_cost.measure(attribution_cost.TINY)


@pytest.mark.timeout(120)
def test_the_common_path_stays_within_one_read_and_two_writes(part: dict[str, Any]) -> None:
    requirement = part["requirement"]
    assert requirement["holds"]
    assert requirement["reads_max"] <= 1
    assert requirement["writes_max"] <= 2
    assert requirement["copy_check_reads"] == 1.0  # the events table's, reported apart
    common = part["per_conversion"]["common_path"]
    assert common["count"] > 0
    assert common["attribution_table"]["read_units"] <= 1
    # The click's read and the marker's write, a WRU and an RRU: $1.50 per million.
    assert common["dollars_per_million"]["attribution_table"] <= 1.5
    assert "holds" in attribution_cost.summary(part)


@pytest.mark.timeout(120)
def test_each_path_is_charged_what_it_calls(part: dict[str, Any]) -> None:
    for path, expected in STREAM_PATHS.items():
        row = part["per_conversion"][path]
        if row["count"] == 0:  # a tiny run may draw none of the rarer paths
            continue
        assert row["reads"]["max"] == expected["reads"]
        assert row["attribution_table"]["writes"] == expected["attribution_writes"]
        assert row["writes"] == {"mean": expected["writes"], "max": expected["writes"]}
        assert row["events_table_item"]["write_units"] == 1.0
    assert part["conversions"]["attributed"] > 0
    click = part["per_click"]
    assert click["attribution_table"]["write_units"] == 1.0
    assert click["attribution_table"]["reads"] == 0.0
    assert click["dollars_per_million"]["attribution_table"] == 0.625


@pytest.mark.timeout(120)
def test_the_parked_path_counts_the_stream_and_the_matcher(part: dict[str, Any]) -> None:
    parked = part["parked"]
    assert parked["stream"]["count"] == attribution_cost.TINY.parked
    # Its click looked up (not found), its parked record and its PENDING item written.
    assert parked["stream"]["reads"]["max"] == 1.0
    assert parked["stream"]["writes"]["max"] == 2.0
    matcher = parked["matcher"]
    # Its item and row read, its click (a BatchGetItem key) and its parked record (still there?);
    # its claim, the row, the item's update, the parked record's delete.
    assert matcher["attribution"]["reads"] == 2.0
    assert matcher["attribution"]["writes"] == 2.0
    assert (matcher["events"]["reads"], matcher["events"]["writes"]) == (1.0, 1.0)
    assert matcher["rollups"]["writes"] == 1.0
    assert matcher["rollups"]["write_units"] >= 3  # the row and its index entry, out and in
    assert (
        parked["dollars_per_million"]
        > part["per_conversion"]["common_path"]["dollars_per_million"]["with_item_write"]
    )
    assert part["looks"]["queries_per_look"] == 8
    assert part["rollup_row"]["notes_last"] == attribution_cost.TINY.parked


@pytest.mark.timeout(120)
def test_the_cpu_is_taken_with_and_without_attribution(part: dict[str, Any]) -> None:
    cpu = part["cpu_us"]
    for name in ("per_click", "per_conversion"):
        assert len(cpu[name]["rounds_with"]) == attribution_cost.TINY.pairs
        assert len(cpu[name]["rounds_without"]) == attribution_cost.TINY.pairs
        assert cpu[name]["with_attribution"] > 0
        assert cpu[name]["without_attribution"] > 0
    assert cpu["parked"]["matcher_per_conversion"] > 0
    assert cpu["conditional_put_alone"] > 0


def test_the_feed_names_recorded_clicks_and_earlier_orders() -> None:
    feed = Feed()
    made = feed.round(Amounts(pairs=1, batch=200, batches=3, parked=0))
    clicks = {m for batch in made.clicks for m in batch.paths}
    assert len(clicks) == 600
    seen_orders: set[tuple[str, str]] = set()
    paths: dict[str, int] = {}
    for batch in made.conversions:
        orders = set()
        for record in batch.records:
            event = pb.TrackingEvent.FromString(record.data)
            path = batch.paths[event.message_id]
            paths[path] = paths.get(path, 0) + 1
            assert (event.click_id in clicks) == (path != "no_click_id")
            if path == "duplicate":  # an order attributed in an earlier batch
                assert (event.click_id, event.order_id) in seen_orders
            elif event.order_id and path == "attributed":
                orders.add((event.click_id, event.order_id))
        seen_orders |= orders
    assert set(paths) == {"attributed", "duplicate", "no_click_id"}
    assert paths["attributed"] > 0.9 * 600
