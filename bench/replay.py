"""How fast one tracker drains an on-disk event log into Kinesis: a log of a given size is written
into a SPILL_DIR as a stopped process leaves it (bench/spill_log.py); one tracker started on that
directory adopts the part and ships it; tracker_spill_replayed_total and the tracker's RSS are
followed until every event is accepted.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.durability import MODES, records_per_call
from bench.metrics_probe import read_metric
from bench.procstat import memory_kb, rss_mb
from bench.spill_log import BuiltLog, build_log
from bench.stack import BenchStack, metrics_url, pid_of
from tracker.devstack.processes import ManagedProcess
from tracker.events.spill.files import SEGMENT_SUFFIX

POLL_SECONDS = 0.5  # while a log drains: one scrape of /metrics and of /proc per poll
MAX_DRAIN_SECONDS = 1800.0
STALL_SECONDS = 60.0  # a drain that accepts nothing for this long is given up
PROFILE_POINTS = 20  # samples of a drain kept in the report (one per 5 % of the events)
DELETED_TIMEOUT = 30.0
DELETED_POLL_SECONDS = 0.2

Sample = tuple[float, float, float]  # (seconds since the tracker's start, replayed, RSS MB)


def measure_replay(
    stack: BenchStack,
    target_bytes: int,
    into: str,
    endpoint: dict[str, str],
    emulator: ManagedProcess | None = None,
) -> dict[str, Any]:
    """Build a log of `target_bytes`, start one tracker on it shipping to `endpoint` (`into`
    names it in the report), and follow the drain; `emulator` is the Kinesis emulator behind
    the endpoint, whose RSS is followed too."""
    with tempfile.TemporaryDirectory(prefix="adtracker-replay-") as tmp:
        spill = Path(tmp) / "spill"
        built = build_log(spill, target_bytes)
        settings = {
            "TRACKER_WORKERS": "1",
            "SPILL_DIR": str(spill),
            **MODES[0].settings,
            **endpoint,
        }
        drain = _drain(stack.tracker(settings), built, emulator)
        if "events_per_second" in drain:
            drain["mib_per_second"] = round(
                drain["events_per_second"] * built.bytes / built.events / 2**20, 1
            )
        drain["bytes_left_on_disk"] = sum(
            p.stat().st_size for p in spill.glob(f"*/*{SEGMENT_SUFFIX}")
        )
    return {
        "into": into,
        "log_mib": round(built.bytes / 2**20, 1),
        "events": built.events,
        "segments": built.segments,
        "mean_event_bytes": built.mean_event_bytes,
        "seconds_to_build": built.seconds,
        **drain,
    }


def _drain(
    tracker: ManagedProcess, built: BuiltLog, emulator: ManagedProcess | None
) -> dict[str, Any]:
    """Start the tracker, follow its drain of the log, and read its counters while it runs."""
    metrics = metrics_url(tracker)
    started = time.monotonic()
    tracker.start()
    try:
        drain = _follow(_Watch(metrics, tracker, built.events, started, emulator))
        if tracker.running:
            if drain["drained"]:
                drain["seconds_until_log_deleted"] = _until_deleted(metrics, started)
            drain.update(_counters(metrics))
            drain["tracker_peak_rss_mb_hwm"] = _hwm_mb(pid_of(tracker))
    finally:
        tracker.stop()
    return drain


@dataclass(slots=True)
class _Watch:
    """A drain being followed: what is polled, and what the polls saw."""

    metrics: str
    tracker: ManagedProcess
    events: int  # in the log
    started: float  # the tracker's start (time.monotonic)
    emulator: ManagedProcess | None
    samples: list[Sample] = field(default_factory=list)
    emulator_peak: float = 0.0  # RSS MB

    def poll(self) -> float:
        """One sample; the events replayed so far."""
        replayed = read_metric(self.metrics, "tracker_spill_replayed_total")
        at = time.monotonic() - self.started
        self.samples.append((at, replayed, rss_mb(pid_of(self.tracker))))
        if self.emulator is not None and self.emulator.process is not None:
            self.emulator_peak = max(self.emulator_peak, rss_mb(self.emulator.process.pid))
        return replayed

    def died(self) -> bool:
        return not self.tracker.running or (self.emulator is not None and not self.emulator.running)


def _follow(watch: _Watch) -> dict[str, Any]:
    """Poll the replay counter and the RSS until every event is accepted, or the drain stalls,
    a process dies or time runs out (the report says which)."""
    outcome = _poll_until_done(watch)
    if not watch.samples:
        return {"drained": False, "outcome": outcome}
    return _drain_figures(watch, outcome)


def _poll_until_done(watch: _Watch) -> str:
    """How the drain ended: "drained", or why it was given up."""
    deadline = time.monotonic() + min(MAX_DRAIN_SECONDS, 60 + watch.events / 2000)
    progress_at, last = time.monotonic(), -1.0
    for _ in range(int(MAX_DRAIN_SECONDS / POLL_SECONDS) + 1):
        if watch.died():
            return "a process died"
        replayed = watch.poll()
        now = time.monotonic()
        if replayed >= watch.events:
            return "drained"
        if replayed > last:
            progress_at, last = now, replayed
        elif now - progress_at > STALL_SECONDS:
            return f"stalled for {STALL_SECONDS:.0f} s"
        if now > deadline:
            break
        time.sleep(POLL_SECONDS)
    return "timed out"


def _drain_figures(watch: _Watch, outcome: str) -> dict[str, Any]:
    samples = watch.samples
    done_at, replayed, _ = samples[-1]
    first_at, first_replayed, _ = samples[0]
    rss = [s[2] for s in samples]
    return {
        "drained": outcome == "drained",
        "outcome": outcome,
        "replayed": int(replayed),
        "seconds_to_drain": round(done_at, 1),  # from the tracker's start
        "events_per_second": round((replayed - first_replayed) / max(done_at - first_at, 1e-9)),
        "events_per_second_10_to_90": _rate_between(samples, watch.events, 0.1, 0.9),
        "tracker_rss_mb_first": round(rss[0], 1),
        "tracker_rss_mb_peak": round(max(rss), 1),
        "tracker_rss_mb_last": round(rss[-1], 1),
        "kinesalite_rss_mb_peak": (
            round(watch.emulator_peak, 1) if watch.emulator is not None else None
        ),
        "profile": _profile(samples, watch.events),
    }


def _rate_between(samples: list[Sample], events: int, low: float, high: float) -> int | None:
    """Events per second between the samples that first reached `low` and `high` of `events`."""
    start = next((s for s in samples if s[1] >= low * events), None)
    end = next((s for s in samples if s[1] >= high * events), None)
    if start is None or end is None or end[0] <= start[0]:
        return None
    return round((end[1] - start[1]) / (end[0] - start[0]))


def _profile(samples: list[Sample], events: int) -> list[list[float]]:
    """[seconds, replayed, RSS MB] at the first sample past each 5 % of the events."""
    kept: list[list[float]] = []
    step = events / PROFILE_POINTS
    mark = 0.0
    for at, replayed, rss in samples:
        if replayed >= mark or (at, replayed, rss) == samples[-1]:
            kept.append([round(at, 1), int(replayed), round(rss, 1)])
            while mark <= replayed:
                mark += step
    return kept


def _until_deleted(metrics: str, started: float) -> float | None:
    """Seconds from the tracker's start until the log's bytes are gone (segments deleted)."""
    for _ in range(int(DELETED_TIMEOUT / DELETED_POLL_SECONDS)):
        if read_metric(metrics, "tracker_spill_bytes") == 0:
            return round(time.monotonic() - started, 1)
        time.sleep(DELETED_POLL_SECONDS)
    return None


def _counters(metrics: str) -> dict[str, float | None]:
    return {
        "records_per_put_records_call": records_per_call(metrics),
        "events_shipped": int(read_metric(metrics, "tracker_ship_events_shipped_total")),
        "kinesis_records": int(read_metric(metrics, "tracker_ship_kinesis_records_total")),
        "retried_entries": int(read_metric(metrics, "tracker_ship_retried_entries_total")),
        "corrupt_records": int(read_metric(metrics, "tracker_spill_corrupt_records_total")),
        "events_dropped": int(read_metric(metrics, "tracker_events_dropped_total", "reason=")),
    }


def _hwm_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of the process tree's members, added up, in MB."""
    return round(memory_kb(pid, "VmHWM") / 1024, 1)
