"""The event lake's part of the bench runs, at a tiny size, and reports every field its section
of docs/benchmarks.md reads: a harness that breaks, or a result that changes shape, is found
here rather than after a long `make bench`. No figure is checked against a bar: they are
timings; only what must hold whatever the machine (counts, sums, the canned stream's shape)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from bench import lake_cost, lake_events, lake_freshness, lake_memory
from bench.rollup_cost import SHARDS
from bench.run import PARTS
from consumers.lake.rows import EventRows

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_the_canned_stream_is_the_mix_at_its_rate_with_realistic_fields() -> None:
    stream = lake_events.CannedStream(rate=2_000)
    batches = list(stream.batches(3_000))
    # A second of each shard's half of the rate, the shards alternating.
    assert [shard for shard, _ in batches] == [SHARDS[0], SHARDS[1], SHARDS[0]]
    rows = EventRows()
    for _, records in batches:
        assert len(records) < 100  # KPL-aggregated: many events a record
        sequences = [int(record.sequence_number) for record in records]
        assert sequences == sorted(set(sequences))
        before = len(rows)
        rows.add_records(records)
        assert len(rows) - before == 1_000
    assert len(rows) == 3_000
    assert rows.skipped == 0
    ids = rows.values("message_id")
    assert len(set(ids)) == len(ids)
    assert all(HEX32.fullmatch(message_id) for message_id in ids)
    visitors = [v for v in rows.values("visitor_id") if v is not None]
    assert 0.8 * len(ids) < len(visitors) < len(ids)  # GPC events have none
    assert all(HEX32.fullmatch(visitor) for visitor in visitors)
    assert 0 < sum(key is not None for key in rows.values("user_key")) < len(ids) / 2
    assert 1 < len(set(rows.values("programid"))) <= lake_events.PROGRAMS
    assert 1 < len(set(rows.values("user_agent"))) <= lake_events.USER_AGENTS + 1
    kinds = Counter(rows.values("event_type"))
    assert kinds["IMPRESSION"] > 50 * kinds["CLICK"]
    times = rows.values("timestamp_ms")
    assert max(times) - min(times) < 2_000  # two seconds of the stream
    assert stream.events == 3_000


def test_a_visitor_keeps_their_pseudonym_address_and_browser() -> None:
    visitors = lake_events.Visitors(audience=1_000)
    assert visitors.visitor_id(7, 100_001) == visitors.visitor_id(7, 100_001)
    assert visitors.visitor_id(7, 100_001) != visitors.visitor_id(8, 100_001)
    assert visitors.visitor_id(7, 100_001) != visitors.visitor_id(7, 100_002)
    assert visitors.address(7).endswith(".0")
    assert visitors.agent(7) == visitors.agent(7)
    assert len(set(visitors.agents)) == lake_events.USER_AGENTS
    assert len({p.programid for p in lake_events.programs()}) == lake_events.PROGRAMS


@pytest.mark.timeout(120)
def test_the_cost_bytes_and_copies_check_are_measured_on_a_real_table() -> None:
    tiny = lake_cost.TINY
    part = lake_cost.measure_in_process(tiny)
    cpu = part["cpu"]
    assert cpu["events"] == tiny.events
    assert cpu["commits"] == tiny.events // tiny.commit_rows
    assert len(cpu["per_commit_us_per_event"]) == cpu["commits"]
    assert cpu["decode_us_per_event"] > 0
    assert cpu["commit_us_per_event"] > 0
    parts = cpu["commit_parts_us_per_event"]
    assert set(parts) == {*lake_cost.COMMIT_PARTS, "metadata"}
    assert all(parts[name] > 0 for name in lake_cost.COMMIT_PARTS)
    assert cpu["us_per_event"] == pytest.approx(
        cpu["decode_us_per_event"] + cpu["commit_us_per_event"], abs=0.02
    )
    size = part["bytes"]
    assert size["rows"] == tiny.events  # the timed commits' files only, not the warm-up's
    assert size["files"] == cpu["commits"]  # one hour partition: one file a commit
    columns = size["columns_bytes_per_event"]
    assert {"message_id", "visitor_id", "params.key_value.value", "event_time"} <= set(columns)
    assert sum(columns.values()) + size["footers_and_headers_bytes_per_event"] == pytest.approx(
        size["bytes_per_event"], abs=0.5
    )
    probe = part["dedupe_later_in_hour"]
    assert probe["ids_in_table"] > tiny.events
    assert probe["held_ids_added"] == tiny.held_ids
    assert probe["bytes_per_id"] > 0
    assert probe["projected_us_per_event"]["hour_end"] >= probe["warm_us_per_event"]
    snapshots = part["snapshots"]
    assert snapshots["commits"] == tiny.snapshots
    assert list(snapshots["commit_ms_at_snapshots"]) == ["10"]
    assert snapshots["snapshots_kept_at_rate"] >= 360  # an hour's at 20,000 a second
    assert set(snapshots["added_us_per_event"]) == {"snapshots_kept", "a_day_of_snapshots"}


@pytest.mark.timeout(120)
def test_the_memory_runs_report_each_backlog_with_and_without_the_known_ids() -> None:
    backlogs = lake_cost.TINY.backlogs
    part = lake_cost.memory_part(lake_memory.measure(backlogs))
    assert part["backlogs"] == list(backlogs)
    assert len(part["runs"]) == 4
    for run in part["runs"]:
        assert run["commits"] >= 1
        assert run["peak_rss_mib"] >= run["start_rss_mib"] > 0
        assert len(run["rss_after_commits_mib"]) == run["commits"]
        if run["known_ids"]:
            assert run["known_ids_kept"] >= run["events"]
        else:
            assert run["known_id_bytes"] == 0
    assert part["bar"]["holds"] in (True, False)


@pytest.mark.timeout(180)
def test_the_freshness_is_measured_through_a_lake_worker() -> None:
    part = lake_freshness.measure(1, commit_seconds=1.0)
    assert len(part["seconds"]) == 1
    assert part["bar"]["bar_seconds"] == 1.0 + lake_freshness.SLACK_SECONDS
    assert "put to queryable" in lake_freshness.summary(part)


def test_the_summary_reads_every_field_and_the_bench_runs_the_part() -> None:
    assert "lake" in PARTS
    part = {
        **lake_cost.measure_in_process(lake_cost.TINY),
        "memory": {
            "backlogs": [1, 2],
            "peak_growth_mib": {"with_known_ids": [1.0, 2.0], "without": [1.0, 1.0]},
            "known_ids_mib": [0.1, 0.2],
        },
        "freshness": lake_freshness.result([1.0, 2.0], 5.0),
    }
    part["bars"] = {"freshness_seconds": part["freshness"]["bar"]}
    text = lake_cost.summary(part)
    assert "decode" in text
    assert "bar freshness_seconds: holds" in text
