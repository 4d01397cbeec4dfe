"""HTTP benchmark cases: each measures a target against the baseline, interleaved A/B/B/A... so
that drift of the machine (thermal, other load) falls on both sides alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any

from bench.hey import HeyResult, run_hey
from bench.procstat import cpu_seconds, rss_mb
from bench.wrk import run_wrk

HEY, WRK = "hey", "wrk"


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    concurrency: int
    workers: int
    expected_status: int = 200
    # "bare": aiohttp's own Response; "pre-serialized": the tracker's FixedAnswer (the floor)
    baseline: str = "bare"
    # "Name: value" request headers, sent to both sides: parsing them is any server's cost.
    headers: tuple[str, ...] = ()
    # The load generator, the same for both sides: "hey", or "wrk" for a case that sends its own
    # User-Agent (hey replaces it with its own, see bench/wrk.py).
    client: str = HEY


@dataclass(frozen=True, slots=True)
class Timing:
    """How long each run of a case lasts, and how many rounds of runs it gets."""

    seconds: float
    rounds: int


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a case: the server's origin, and its pid (whose CPU is counted)."""

    url: str
    pid: int


@dataclass
class Measured:
    case: Case
    target: list[HeyResult]
    baseline: list[HeyResult]
    tracker_cpu_seconds: float
    baseline_cpu_seconds: float
    tracker_rss_mb: float
    seconds: float

    def summary(self) -> dict[str, Any]:
        rps = median(r.requests_per_second for r in self.target)
        base_rps = median(r.requests_per_second for r in self.baseline)
        p99 = median(r.p99_ms for r in self.target)
        base_p99 = median(r.p99_ms for r in self.baseline)
        total_requests = sum(sum(r.responses.values()) for r in self.target)
        baseline_requests = sum(sum(r.responses.values()) for r in self.baseline)
        return {
            **asdict(self.case),
            "rps": round(rps),
            "p50_ms": round(median(r.p50_ms for r in self.target), 2),
            "p99_ms": round(p99, 2),
            "errors": sum(r.non_2xx(self.case.expected_status) for r in self.target),
            "requests": total_requests,
            "baseline_rps": round(base_rps),
            "baseline_p99_ms": round(base_p99, 2),
            "baseline_errors": sum(r.non_2xx() for r in self.baseline),
            "ratio_rps": round(rps / base_rps, 3),
            "ratio_p99": round(p99 / base_p99, 2) if base_p99 else None,
            "tracker_cpu_us_per_request": round(1e6 * self.tracker_cpu_seconds / total_requests, 1)
            if total_requests
            else None,
            "baseline_cpu_us_per_request": round(
                1e6 * self.baseline_cpu_seconds / baseline_requests, 1
            )
            if baseline_requests
            else None,
            "tracker_rss_mb": round(self.tracker_rss_mb, 1),
        }


def measure(
    case: Case, tracker: Side, baseline: Side, timing: Timing, pause: Callable[[], None]
) -> Measured:
    """`timing.rounds` rounds, A/B then B/A alternately (ABBA), so that drift of the machine
    within a round falls on both sides. CPU is counted per side over its own runs, the
    tracker's including the shipping that follows them."""
    seconds = timing.seconds
    target: list[HeyResult] = []
    baseline_runs: list[HeyResult] = []
    cpu = [0.0, 0.0]

    def run_baseline() -> None:
        before = cpu_seconds(baseline.pid)
        baseline_runs.append(load(case, baseline.url + "/v1/pixel", seconds, 200))
        cpu[1] += cpu_seconds(baseline.pid) - before
        pause()

    def run_tracker() -> None:
        before = cpu_seconds(tracker.pid)
        target.append(load(case, tracker.url + case.path, seconds, case.expected_status))
        pause()  # waits for the shipper to empty its buffer: its CPU belongs to the run
        cpu[0] += cpu_seconds(tracker.pid) - before

    for round_number in range(timing.rounds):
        order = (
            (run_baseline, run_tracker) if round_number % 2 == 0 else (run_tracker, run_baseline)
        )
        for run in order:
            run()
    return Measured(case, target, baseline_runs, cpu[0], cpu[1], rss_mb(tracker.pid), seconds)


def load(case: Case, url: str, seconds: float, status: int) -> HeyResult:
    """One run of the case's load generator against `url`; `status` is what the server should
    answer (wrk counts its 2xx and 3xx answers under it)."""
    if case.client == WRK:
        return run_wrk(url, case.concurrency, seconds=seconds, headers=case.headers, status=status)
    return run_hey(url, case.concurrency, seconds=seconds, headers=case.headers)
