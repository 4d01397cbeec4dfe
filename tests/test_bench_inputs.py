"""The privacy bench's TC strings are read as their paths say (GRANTED, every entry walked), and
the report renders the hostile part only when a run has one: a parser that grows stricter, or a
report that changes shape, is found here rather than as a failed or silently wrong bench run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.consent_strings import (
    MOST_ENTRIES,
    SEED,
    distinct_strings,
    granted_string,
    most_entries_strings,
    reading_of,
)
from bench.report import HOSTILE_BOUND, hostile_lines, markdown
from tracker.privacy.tcf import MAX_RANGE_ENTRIES, Answer, Reading

COMMITTED = Path(__file__).resolve().parent.parent / "bench" / "results" / "latest.json"
HOSTILE_HEADING = "## Hostile requests: CPU per request against a typical pixel"


def test_the_generated_strings_are_distinct_and_granted() -> None:
    for ranges, seed in ((False, SEED + 1), (True, SEED + 2)):
        strings = distinct_strings(200, ranges=ranges, seed=seed)
        assert len(set(strings)) == 200
        assert {reading_of(tc).reading for tc in strings} == {Reading.GRANTED}
    assert reading_of(granted_string()).reading is Reading.GRANTED


def test_the_most_entries_strings_are_read_to_their_last_entry() -> None:
    strings = most_entries_strings(20)
    assert len(set(strings)) == 20
    assert MOST_ENTRIES == MAX_RANGE_ENTRIES
    # GRANTED, not IMPLAUSIBLE: each range section is no longer than its bit field.
    assert {reading_of(tc) for tc in strings} == {Answer(Reading.GRANTED, MAX_RANGE_ENTRIES)}


def hostile_part() -> dict[str, Any]:
    def shape(name: str, us: float, ratio: float) -> dict[str, Any]:
        observed = {"CONSENT_DENIED": 10.0, "IVT_NONE": 10.0}
        return {
            "shape": name,
            "requests": 10,
            "requests_per_second": 5.0,
            "cpu_us_per_request": us,
            "ratio_to_typical": ratio,
            "bad_answers": 0,
            "observed": observed,
        }

    worst = shape("a costly shape", 120.0, 3.0)
    return {
        "started": "2026-12-06 15:00:00 UTC",
        "machine": {"cpu": "test", "cores": 2, "python": "3.11"},
        "seconds_per_run": 1,
        "rounds": 1,
        "idle_cpu_us_per_second": 1.0,
        "commit": None,
        "concurrency": 32,
        "typical": shape("typical pixel", 40.0, 1.0),
        "worst": worst,
        "shapes": [shape("a cheap shape", 60.0, 1.5), worst],
    }


def test_the_report_has_a_hostile_section_only_with_the_part() -> None:
    report = json.loads(COMMITTED.read_text())
    report.pop("hostile", None)
    without = markdown(report).split("\n")
    assert HOSTILE_HEADING not in without
    part = hostile_part()
    added = hostile_lines(part)
    assert (
        f"worst: a costly shape (120.0 us per request) at 3.00x the typical pixel; "
        f"the bound is {HOSTILE_BOUND}x."
    ) in added
    assert "| a cheap shape | 60.0 | 1.50 | 5 | 0 | consent DENIED 10; ivt NONE 10 |" in added
    # The section is inserted whole (before the capacity part); nothing else changes.
    lines = markdown({**report, "hostile": part}).split("\n")
    at = lines.index(HOSTILE_HEADING) - 1
    assert lines[at : at + len(added)] == added
    assert lines[:at] + lines[at + len(added) :] == without
