"""Durability: what DURABILITY=write-ahead (with and without SPILL_FSYNC=1) costs the pixel against
the default overflow mode; how fast one tracker drains an on-disk event log into Kinesis is
bench/replay.py's.

Modes: a bare aiohttp server and one tracker per mode run side by side, each tracker with a
SPILL_DIR of its own (bench.stack) and all shipping to the same endpoint. Every round loads each
of them in turn with hey, the order rotated by one place per round, so that over as many rounds
as there are servers each takes each place once and drift of the machine falls on all alike.
A tracker's CPU counts its runs and the shipping that follows them (until its memory buffer and
its on-disk log are empty): in write-ahead mode that includes reading every event back from disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from bench.demo_programs import DEMO_PIXEL
from bench.hey import HeyResult, run_hey
from bench.metrics_probe import read_metric
from bench.procstat import cpu_seconds, rss_mb
from bench.stack import BenchStack, metrics_url, pid_of
from tracker.devstack.processes import ManagedProcess, free_port

CONCURRENCY = 100
SETTLE_TIMEOUT = 120.0  # a mode's backlog after one run must be shipped within this


@dataclass(frozen=True)
class Mode:
    name: str
    settings: dict[str, str]


# Every setting spelled out, so that one exported in the shell cannot change a mode.
MODES = (
    Mode("overflow (default)", {"DURABILITY": "overflow", "SPILL_FSYNC": "0"}),
    Mode("write-ahead", {"DURABILITY": "write-ahead", "SPILL_FSYNC": "0"}),
    Mode("write-ahead, SPILL_FSYNC=1", {"DURABILITY": "write-ahead", "SPILL_FSYNC": "1"}),
)


# --- the pixel in each mode ---------------------------------------------------------------------


@dataclass
class _Server:
    name: str
    process: ManagedProcess
    path: str
    metrics: str | None = None  # a tracker's /metrics; None for the baseline
    runs: list[HeyResult] = field(default_factory=list)
    cpu: float = 0.0
    backlogs: list[float] = field(default_factory=list)  # events unshipped when hey stopped
    settles: list[float] = field(default_factory=list)  # seconds until they were shipped

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.process.port}{self.path}"

    @property
    def pid(self) -> int:
        return pid_of(self.process)

    @property
    def requests(self) -> int:
        return sum(sum(r.responses.values()) for r in self.runs)


def measure_modes(
    stack: BenchStack, endpoint: dict[str, str], seconds: float, rounds: int
) -> dict[str, Any]:
    """The pixel (cached valid, c=100, one worker) in every mode and on the bare server,
    interleaved; `endpoint` points the trackers' shipping (the canned endpoint)."""
    baseline_port = free_port()
    baseline = _Server(
        "bare aiohttp",
        stack.process("baseline", ["bench.baseline_server", str(baseline_port)], baseline_port),
        "/v1/pixel",
    )
    servers = [baseline]
    for mode in MODES:
        process = stack.tracker({"TRACKER_WORKERS": "1", **endpoint, **mode.settings})
        servers.append(_Server(mode.name, process, DEMO_PIXEL, metrics_url(process)))
    try:
        for server in servers:
            server.process.start()
        time.sleep(1.0)  # subscribed, caches warm on the first request
        for round_number in range(rounds):
            shift = round_number % len(servers)
            for server in servers[shift:] + servers[:shift]:
                _run(server, seconds)
        return _summary(servers, seconds, rounds)
    finally:
        for server in servers:
            server.process.stop()


def _run(server: _Server, seconds: float) -> None:
    before = cpu_seconds(server.pid)
    server.runs.append(run_hey(server.url, CONCURRENCY, seconds=seconds))
    if server.metrics is not None:
        server.backlogs.append(_unshipped(server.metrics))
        started = time.monotonic()
        _wait_shipped(server.metrics, SETTLE_TIMEOUT)
        server.settles.append(time.monotonic() - started)
    server.cpu += cpu_seconds(server.pid) - before
    time.sleep(0.5)


def _unshipped(metrics: str) -> float:
    """Events in memory or in the on-disk log not yet accepted by Kinesis."""
    return read_metric(metrics, "tracker_ship_buffer_depth") + read_metric(
        metrics, "tracker_spill_events"
    )


def _wait_shipped(metrics: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        if _unshipped(metrics) == 0:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise TimeoutError(f"{metrics}: events still unshipped after {timeout}s")


def _summary(servers: list[_Server], seconds: float, rounds: int) -> dict[str, Any]:
    baseline, trackers = servers[0], servers[1:]
    base_rps = median(r.requests_per_second for r in baseline.runs)
    overflow_rps = median(r.requests_per_second for r in trackers[0].runs)
    rows = []
    for server in trackers:
        assert server.metrics is not None
        rps = median(r.requests_per_second for r in server.runs)
        rows.append(
            {
                "mode": server.name,
                "rps": round(rps),
                "ratio_to_overflow": round(rps / overflow_rps, 3),
                "ratio_to_baseline": round(rps / base_rps, 3),
                "p50_ms": round(median(r.p50_ms for r in server.runs), 2),
                "p99_ms": round(median(r.p99_ms for r in server.runs), 2),
                "errors": sum(r.non_2xx() for r in server.runs),
                "cpu_us_per_request": _per_request(server.cpu, server.requests),
                "rss_mb": round(rss_mb(server.pid), 1) if server.process.running else None,
                "requests": server.requests,
                "events_shipped": int(
                    read_metric(server.metrics, "tracker_ship_events_shipped_total")
                ),
                "events_through_disk_log": int(
                    read_metric(server.metrics, "tracker_spill_replayed_total")
                ),
                "events_dropped": int(
                    read_metric(server.metrics, "tracker_events_dropped_total", "reason=")
                ),
                "records_per_put_records_call": records_per_call(server.metrics),
                "max_unshipped_at_end_of_run": int(max(server.backlogs)),
                "max_seconds_to_ship_backlog": round(max(server.settles), 2),
            }
        )
    return {
        "concurrency": CONCURRENCY,
        "workers": 1,
        "seconds_per_run": seconds,
        "rounds": rounds,
        "baseline": {
            "server": baseline.name,
            "rps": round(base_rps),
            "p99_ms": round(median(r.p99_ms for r in baseline.runs), 2),
            "errors": sum(r.non_2xx() for r in baseline.runs),
            "cpu_us_per_request": _per_request(baseline.cpu, baseline.requests),
        },
        "modes": rows,
    }


def records_per_call(metrics: str) -> float | None:
    """The mean batch of the tracker's PutRecords calls so far."""
    calls = read_metric(metrics, "tracker_ship_batch_records_count")
    if not calls:
        return None
    return round(read_metric(metrics, "tracker_ship_batch_records_sum") / calls, 1)


def _per_request(cpu: float, requests: int) -> float | None:
    return round(1e6 * cpu / requests, 1) if requests else None
