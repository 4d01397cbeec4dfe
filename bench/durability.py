"""Durability: what DURABILITY=write-ahead (with and without SPILL_FSYNC=1) costs the pixel against
the default overflow mode, and how fast one tracker drains an on-disk event log into Kinesis.

Modes: a bare aiohttp server and one tracker per mode run side by side, each tracker with a
SPILL_DIR of its own (bench.stack) and all shipping to the same endpoint. Every round loads each
of them in turn with hey, the order rotated by one place per round, so that over as many rounds
as there are servers each takes each place once and drift of the machine falls on all alike.
A tracker's CPU counts its runs and the shipping that follows them (until its memory buffer and
its on-disk log are empty): in write-ahead mode that includes reading every event back from disk.

Replay: a log of a given size is written straight into a SPILL_DIR with the project's framing and
file layout, as a stopped process leaves it (a `part-<id>/` directory with a `lock` file nobody
holds and ~4 MiB segments of framed TrackingEvents from the tracker's own event factory, each
with a unique message id as its partition key). One tracker started on that directory adopts the
part and ships it; tracker_spill_replayed_total and the tracker's RSS are followed until every
event is accepted.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from bench.hey import HeyResult, run_hey
from bench.metrics_probe import read_metric
from bench.procstat import cpu_seconds, memory_kb, rss_mb
from bench.stack import BenchStack
from tracker.devstack.processes import REPO_ROOT, ManagedProcess, free_port
from tracker.events.builder import EventFactory
from tracker.events.entry import Entry
from tracker.events.spill.files import LOCK_NAME, PART_PREFIX, SEGMENT_SUFFIX, segment_path
from tracker.events.spill.framing import encode
from tracker.events.spill.log import SEGMENT_BYTES
from tracker.programs.model import Program, parse_program
from tracker.schema.tracking.v1 import tracking_pb2 as pb

PIXEL = "/v1/pixel?program=demo-shoes"
CONCURRENCY = 100
SETTLE_TIMEOUT = 120.0  # a mode's backlog after one run must be shipped within this
POLL_SECONDS = 0.5  # while a log drains: one scrape of /metrics and of /proc per poll
MAX_DRAIN_SECONDS = 1800.0
STALL_SECONDS = 60.0  # a drain that accepts nothing for this long is given up
PROFILE_POINTS = 20  # samples of a drain kept in the report (one per 5 % of the events)


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
        assert self.process.process is not None
        return self.process.process.pid

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
        port = free_port()
        settings = {"TRACKER_PORT": str(port), "TRACKER_WORKERS": "1", **endpoint, **mode.settings}
        process = stack.process("tracker", ["tracker", "serve"], port, settings)
        servers.append(_Server(mode.name, process, PIXEL, f"http://127.0.0.1:{port}/metrics"))
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
                "records_per_put_records_call": _records_per_call(server.metrics),
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


def _records_per_call(metrics: str) -> float | None:
    """The mean batch of the tracker's PutRecords calls so far."""
    calls = read_metric(metrics, "tracker_ship_batch_records_count")
    if not calls:
        return None
    return round(read_metric(metrics, "tracker_ship_batch_records_sum") / calls, 1)


def _per_request(cpu: float, requests: int) -> float | None:
    return round(1e6 * cpu / requests, 1) if requests else None


# --- a log on disk, as a stopped process leaves it --------------------------------------------

INSTANCE = "ip-10-0-3-17.ec2.internal-7"  # hostname-pid, as TRACKER_INSTANCE_ID defaults
# (user agent, referer, anonymized address): what browsers send, some without a referer
CLIENTS = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        "https://news.example.com/articles/2026/spring-sale",
        "203.0.113.0",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
        "",
        "198.51.100.0",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "https://blog.example.org/",
        "2001:db8:85a3::",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.144 Mobile Safari/537.36",
        "https://m.example.net/feed",
        "192.0.2.0",
    ),
)
PARAMS: tuple[dict[str, str], ...] = (
    {},
    {},
    {},
    {"utm_campaign": "spring", "utm_medium": "display"},
)


@dataclass(frozen=True)
class BuiltLog:
    events: int
    bytes: int
    segments: int
    mean_event_bytes: float  # the serialized TrackingEvent (what Kinesis stores)
    seconds: float


def build_log(spill_dir: Path, target_bytes: int, seed: int = 7) -> BuiltLog:
    """A part of `target_bytes` of framed events (whole records, at least one) in `spill_dir`."""
    started = time.monotonic()
    part = spill_dir / f"{PART_PREFIX}{uuid.uuid4().hex[:16]}"
    part.mkdir(parents=True)
    (part / LOCK_NAME).touch(mode=0o600)  # its owner is gone: nobody holds the flock
    make = _event_maker(random.Random(seed))
    events = total = data_bytes = 0
    segment: list[bytes] = []
    seq, size = 1, 0
    while total < target_bytes:
        key, data = make()
        record = encode(Entry(key, data))
        if size + len(record) > SEGMENT_BYTES and segment:
            segment_path(part, seq).write_bytes(b"".join(segment))
            seq, segment, size = seq + 1, [], 0
        segment.append(record)
        size += len(record)
        total += len(record)
        data_bytes += len(data)
        events += 1
    segment_path(part, seq).write_bytes(b"".join(segment))
    return BuiltLog(
        events, total, seq, round(data_bytes / events, 1), round(time.monotonic() - started, 1)
    )


def _event_maker(rng: random.Random) -> Callable[[], tuple[str, bytes]]:
    """(message id, serialized TrackingEvent) as the tracker builds them for real requests."""
    programs = json.loads((REPO_ROOT / "infra" / "local" / "programs.json").read_text())
    valid: list[Program] = [
        p for p in map(parse_program, programs) if p.valid and p.valid_until is None
    ]
    factory = EventFactory(INSTANCE)
    clock = [1_767_225_600_000]  # 2026-01-01, a few events per millisecond

    def make() -> tuple[str, bytes]:
        program = rng.choice(valid)
        user_agent, referer, address = rng.choice(CLIENTS)
        clock[0] += rng.random() < 0.3
        event_type = pb.CLICK if rng.random() < 0.1 else pb.IMPRESSION
        return factory.build(
            factory.outcomes[event_type, pb.OK, pb.IVT_NONE],
            program.program_id,
            program,
            clock[0],
            pb.TrackingEvent(
                user_agent=user_agent, referer=referer, client_ip_anonymized=address
            ).SerializeToString(),
            None,
            rng.choice(PARAMS),
        )

    return make


# --- draining it ----------------------------------------------------------------------------------


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
        port = free_port()
        metrics = f"http://127.0.0.1:{port}/metrics"
        settings = {
            "TRACKER_PORT": str(port),
            "TRACKER_WORKERS": "1",
            "SPILL_DIR": str(spill),
            **MODES[0].settings,
            **endpoint,
        }
        tracker = stack.process("tracker", ["tracker", "serve"], port, settings)
        started = time.monotonic()
        tracker.start()
        try:
            assert tracker.process is not None
            drain = _follow(metrics, tracker, built.events, started, emulator)
            if tracker.running:
                if drain["drained"]:
                    drain["seconds_until_log_deleted"] = _until_deleted(metrics, started)
                drain.update(_counters(metrics))
                drain["tracker_peak_rss_mb_hwm"] = _hwm_mb(tracker.process.pid)
        finally:
            tracker.stop()
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


def _follow(
    metrics: str,
    tracker: ManagedProcess,
    events: int,
    started: float,
    emulator: ManagedProcess | None,
) -> dict[str, Any]:
    """Poll the replay counter and the RSS until every event is accepted, or the drain stalls,
    a process dies or time runs out (the report says which)."""
    assert tracker.process is not None
    samples: list[tuple[float, float, float]] = []  # (seconds since start, replayed, RSS MB)
    emulator_peak = 0.0
    deadline = time.monotonic() + min(MAX_DRAIN_SECONDS, 60 + events / 2000)
    outcome, progress_at, last = "timed out", time.monotonic(), -1.0
    for _ in range(int(MAX_DRAIN_SECONDS / POLL_SECONDS) + 1):
        if not tracker.running or (emulator is not None and not emulator.running):
            outcome = "a process died"
            break
        replayed = read_metric(metrics, "tracker_spill_replayed_total")
        now = time.monotonic()
        samples.append((now - started, replayed, rss_mb(tracker.process.pid)))
        if emulator is not None and emulator.process is not None:
            emulator_peak = max(emulator_peak, rss_mb(emulator.process.pid))
        if replayed >= events:
            outcome = "drained"
            break
        if replayed > last:
            progress_at, last = now, replayed
        elif now - progress_at > STALL_SECONDS:
            outcome = f"stalled for {STALL_SECONDS:.0f} s"
            break
        if now > deadline:
            break
        time.sleep(POLL_SECONDS)
    if not samples:
        return {"drained": False, "outcome": outcome}
    done_at, replayed, _ = samples[-1]
    first_at, first_replayed, _ = samples[0]
    rss = [s[2] for s in samples]
    return {
        "drained": outcome == "drained",
        "outcome": outcome,
        "replayed": int(replayed),
        "seconds_to_drain": round(done_at, 1),  # from the tracker's start
        "events_per_second": round((replayed - first_replayed) / max(done_at - first_at, 1e-9)),
        "events_per_second_10_to_90": _rate_between(samples, events, 0.1, 0.9),
        "tracker_rss_mb_first": round(rss[0], 1),
        "tracker_rss_mb_peak": round(max(rss), 1),
        "tracker_rss_mb_last": round(rss[-1], 1),
        "kinesalite_rss_mb_peak": round(emulator_peak, 1) if emulator is not None else None,
        "profile": _profile(samples, events),
    }


def _rate_between(
    samples: list[tuple[float, float, float]], events: int, low: float, high: float
) -> int | None:
    """Events per second between the samples that first reached `low` and `high` of `events`."""
    start = next((s for s in samples if s[1] >= low * events), None)
    end = next((s for s in samples if s[1] >= high * events), None)
    if start is None or end is None or end[0] <= start[0]:
        return None
    return round((end[1] - start[1]) / (end[0] - start[0]))


def _profile(samples: list[tuple[float, float, float]], events: int) -> list[list[float]]:
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
    for _ in range(int(30 / 0.2)):
        if read_metric(metrics, "tracker_spill_bytes") == 0:
            return round(time.monotonic() - started, 1)
        time.sleep(0.2)
    return None


def _counters(metrics: str) -> dict[str, float | None]:
    return {
        "records_per_put_records_call": _records_per_call(metrics),
        "events_shipped": int(read_metric(metrics, "tracker_ship_events_shipped_total")),
        "kinesis_records": int(read_metric(metrics, "tracker_ship_kinesis_records_total")),
        "retried_entries": int(read_metric(metrics, "tracker_ship_retried_entries_total")),
        "corrupt_records": int(read_metric(metrics, "tracker_spill_corrupt_records_total")),
        "events_dropped": int(read_metric(metrics, "tracker_events_dropped_total", "reason=")),
    }


def _hwm_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of the process tree's members, added up, in MB."""
    return round(memory_kb(pid, "VmHWM") / 1024, 1)
