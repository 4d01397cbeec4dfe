"""The reporting part of the bench runs, at a tiny size, and reports every field its section of
latest.md and docs/benchmarks.md reads: a harness that breaks, or a result that changes shape, is
found here rather than after a long `make bench`. No figure is checked: they are timings."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report_latency, rollup_cost, rollup_freshness
from bench.report import markdown

UNITS = {
    "events",
    "rollup_writes",
    "events_per_write",
    "item_bytes_median",
    "write_units_per_event",
    "read_units_per_event",
}


@pytest.mark.timeout(120)
def test_the_rollup_cost_is_measured_with_and_without_rollups() -> None:
    part = rollup_cost.measure(rollup_cost.TINY)
    base = rollup_cost.BASE_BATCH  # a tip wait of one shard at a billion events a month
    assert [row["events_per_batch"] for row in part["sizes"]] == [base, 10 * base]
    for row in part["sizes"]:
        cpu = row["cpu_us_per_event"]
        assert len(cpu["rounds_with"]) == len(cpu["rounds_without"]) == rollup_cost.TINY.pairs
        assert cpu["with_rollups"] > 0
        assert cpu["without_rollups"] > 0
        assert row["units"].keys() >= UNITS
        # One program, one bucket: one item write per batch, two shards' positions in it.
        assert row["units"]["events_per_write"] == row["events_per_batch"]
        assert {"rollup_calls", "fold", "add_and_item"} == row["breakdown_us_per_event"].keys()
        assert row["conflicts"] == 0
    assert {"write_units_per_event", "cpu_us_per_event"} == part["bars"].keys()
    assert "bar write_units_per_event" in rollup_cost.summary(part)


def test_the_mix_has_visitors_messages_and_kinds_as_the_tracker_makes_them() -> None:
    feed = rollup_cost.Feed()
    (shard, records), (other, _) = feed.round(rollup_cost.Size("one", 1, 1))
    assert (shard, other) == rollup_cost.SHARDS
    assert len(records) == rollup_cost.BASE_BATCH
    assert len({r.partition_key for r in records}) == len(records)
    assert all(len(r.sequence_number) == 56 for r in records)
    assert len(rollup_cost.visitor_id(12345)) == 32
    assert rollup_cost.visitor_id(1) != rollup_cost.visitor_id(2)


@pytest.mark.timeout(120)
def test_the_report_latency_is_measured_on_moto_and_replayed() -> None:
    part = report_latency.measure(report_latency.TINY)
    assert part["items"] == 96
    for name in ("hourly_moto", "hourly", "daily_366"):
        row = part[name]
        assert row["requests"] >= 1
        assert row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["total_impressions"] == 96 * report_latency.COUNTS["impressions"]
    assert part["hourly"]["rows"] == 24
    assert part["daily_366"]["rows"] == 366
    assert {"query_client_cpu", "summarize", "json"} == part["profile_ms"].keys()
    assert "bar p99" in report_latency.summary(part)


@pytest.mark.timeout(180)
def test_the_freshness_is_measured_through_the_consumer_and_the_api() -> None:
    part = rollup_freshness.measure(1)
    assert len(part["seconds"]) == 1
    assert part["bar"]["holds"] in (True, False)
    assert "put to visible" in rollup_freshness.summary(part)


def test_the_report_renders_the_reporting_section() -> None:
    row = {
        "size": "1x",
        "events_per_batch": 190,
        "cpu_us_per_event": {"with_rollups": 90, "without_rollups": 65, "added": 25},
        "breakdown_us_per_event": {"rollup_calls": 12, "fold": 4, "add_and_item": 0.5},
        "units": {
            "write_units_per_event": 0.0158,
            "read_units_per_event": 1.005,
            "item_bytes_median": 2452,
        },
    }
    timing = {
        "requests": 100,
        "p50_ms": 1,
        "p99_ms": 2,
        "max_ms": 3,
        "reports_cpu_ms_per_request": 1,
        "moto_cpu_ms_per_request": 0,
    }
    bar: dict[str, Any] = {"measured": 1, "bar": 2, "holds": True}
    part = {
        "started": "now",
        "cost": {"sizes": [row], "bars": {"write_units_per_event": bar, "cpu_us_per_event": bar}},
        "latency": {
            "items": 2976,
            "days": 31,
            "hourly_moto": timing,
            "hourly": timing,
            "daily_366": timing,
            "profile_ms": {"query_client_cpu": 1, "summarize": 2, "json": 3},
            "bar": {"p99_ms_moto": 5, "p99_ms_replayed": 2, "bar_ms": 100, "holds": True},
        },
        "freshness": {
            "median_seconds": 0.5,
            "max_seconds": 0.7,
            "tries": 5,
            "consumer_poll_ms": 1000,
            "bar": {"bar_seconds": 10, "holds": True},
        },
    }
    text = markdown({"rollups": part})
    assert "## Reporting" in text
    assert "| 1x | 190 | 90 | 65 | 25 |" in text
