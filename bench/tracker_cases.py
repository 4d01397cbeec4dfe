"""HTTP cases against one tracker process: the tracker and the baselines its cases name are
started on the bench stack, each case is measured against its baseline (bench/cases.py), and what
shipping cost is read from the tracker at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.cases import Case, Side, Timing, measure
from bench.metrics_probe import read_metric, wait_zero
from bench.stack import BenchStack, metrics_url, origin, pid_of
from tracker.devstack.processes import ManagedProcess, free_port

PRE_SERIALIZED = "pre-serialized"  # the baseline that answers with the tracker's FixedAnswer
STARTUP_SECONDS = 1.0  # until every worker is bound and subscribed
SHIPPED_TIMEOUT = 60.0
SETTLE_SECONDS = 0.5

Observe = Callable[[str], dict[str, float]]  # numbers read from a tracker's /metrics URL


@dataclass(frozen=True, slots=True)
class CaseSet:
    """Cases that share one tracker: its worker count and settings, and what is read from it."""

    cases: list[Case]
    workers: int = 1
    settings: dict[str, str] = field(default_factory=dict)
    # Called with the tracker's /metrics URL once every case has run.
    after: Callable[[str], None] | None = None
    # Read before and after each case; the summary keeps the differences as "observed".
    observe: Observe | None = None


def run_cases(
    stack: BenchStack, case_set: CaseSet, timing: Timing
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The cases' summaries, and what shipping cost in Kinesis records and payload units."""
    workers = case_set.workers
    tracker = stack.tracker({"TRACKER_WORKERS": str(workers), **case_set.settings})
    kinds = {case.baseline for case in case_set.cases}
    baselines = {kind: _baseline(stack, kind, workers) for kind in kinds}
    servers = [tracker, *baselines.values()]
    for server in servers:
        server.start()
    try:
        time.sleep(STARTUP_SECONDS)
        summaries = [
            _case_summary(case, tracker, baselines[case.baseline], case_set, timing)
            for case in case_set.cases
        ]
        metrics = metrics_url(tracker)
        if case_set.after is not None:
            case_set.after(metrics)
        return summaries, _shipping_cost(metrics)
    finally:
        for server in servers:
            server.stop()


def _case_summary(
    case: Case,
    tracker: ManagedProcess,
    baseline: ManagedProcess,
    case_set: CaseSet,
    timing: Timing,
) -> dict[str, Any]:
    metrics = metrics_url(tracker)
    observe = case_set.observe
    before = observe(metrics) if observe is not None else {}
    tracker_side = Side(origin(tracker), pid_of(tracker))
    baseline_side = Side(origin(baseline), pid_of(baseline))
    pause = _settler(metrics, case_set.workers)
    summary = measure(case, tracker_side, baseline_side, timing, pause).summary()
    if observe is not None:
        after = observe(metrics)
        summary["observed"] = {
            key: round(value - before.get(key, 0.0), 6) for key, value in after.items()
        }
    return summary


def _settler(metrics: str, workers: int) -> Callable[[], None]:
    """What runs after each run: the tracker's buffer emptied, then a pause."""

    def settle() -> None:
        if workers == 1:  # one scrape reaches one worker; with two, give them time
            wait_zero(metrics, "tracker_ship_buffer_depth", SHIPPED_TIMEOUT)
        time.sleep(SETTLE_SECONDS)

    return settle


def _baseline(stack: BenchStack, kind: str, workers: int) -> ManagedProcess:
    port = free_port()
    argv = ["bench.baseline_server", str(port), str(workers)]
    if kind == PRE_SERIALIZED:
        argv.append("--pre-serialized")
    return stack.process(f"baseline-{kind}", argv, port)


def _shipping_cost(metrics: str) -> dict[str, float]:
    """Kinesis records and PUT payload units per million events (one worker's scrape)."""
    events = read_metric(metrics, "tracker_ship_events_shipped_total")
    if not events:
        return {}
    per_million = 1_000_000 / events
    records = read_metric(metrics, "tracker_ship_kinesis_records_total")
    units = read_metric(metrics, "tracker_ship_payload_units_total")
    return {
        "events_shipped": events,
        "records_per_million_events": round(records * per_million),
        "payload_units_per_million_events": round(units * per_million),
    }
