"""Metrics across the workers of `tracker serve` (TRACKER_WORKERS=N): one scrape reports every
worker, counters never go down when a worker is killed and restarted, and one worker is served
as before. Real `tracker serve` processes on real Redis and kinesalite; the snapshot format and
the snapshot directory also get plain tests on real files."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.support.kinesis import read_events
from tests.support.programs import program, write_programs
from tests.support.tracker_process import TrackerProcess, tracker_process
from tests.support.worker_metrics import (
    PixelCounter,
    requests_total,
    scrape,
    series,
    worker_pids,
)
from tracker.workermetrics.directory import SnapshotDirectory
from tracker.workermetrics.home import STALE_SECONDS, MetricsHome, remove_abandoned
from tracker.workermetrics.snapshot import (
    MAX_SNAPSHOT_BYTES,
    Snapshot,
    SnapshotError,
    decode,
    encode,
    merge,
    render,
    take,
)
from tracker.workermetrics.worker import SharedMetrics, WorkerSlot

# ---- the snapshot format and the merge -----------------------------------------------------


def worker_registry(requests: int, up: int, depth: int, latencies: list[float]) -> Snapshot:
    registry = CollectorRegistry()
    Counter("t_requests", "Requests", ["route"], registry=registry).labels("pixel").inc(requests)
    Gauge("t_redis_up", "Up", registry=registry).set(up)
    Gauge("t_buffer_depth", "Depth", registry=registry).set(depth)
    histogram = Histogram("t_seconds", "Latency", buckets=(0.1, 1), registry=registry)
    for latency in latencies:
        histogram.observe(latency)
    return take(registry)


def value(snapshot: Snapshot, family: str, sample: str, **labels: str) -> float:
    return snapshot[family].samples[(sample, tuple(sorted(labels.items())))]


def test_counters_and_histograms_add_up_gauges_by_their_kind() -> None:
    first = worker_registry(requests=3, up=1, depth=4, latencies=[0.05, 0.5])
    second = worker_registry(requests=5, up=0, depth=6, latencies=[0.05, 2])
    merged = merge(first, [second])
    assert value(merged, "t_requests", "t_requests_total", route="pixel") == 8
    assert value(merged, "t_seconds", "t_seconds_bucket", le="0.1") == 2
    assert value(merged, "t_seconds", "t_seconds_bucket", le="1.0") == 3
    assert value(merged, "t_seconds", "t_seconds_bucket", le="+Inf") == 4
    assert value(merged, "t_seconds", "t_seconds_count") == 4
    assert value(merged, "t_seconds", "t_seconds_sum") == pytest.approx(2.6)
    assert value(merged, "t_redis_up", "t_redis_up") == 0  # up only if every worker is
    assert value(merged, "t_buffer_depth", "t_buffer_depth") == 10  # sizes add up
    assert value(first, "t_requests", "t_requests_total", route="pixel") == 3  # inputs unchanged


def test_one_snapshot_renders_as_its_registry_does() -> None:
    registry = CollectorRegistry()
    Counter("t_events", "Events by reason", ["reason"], registry=registry).labels('a"b').inc(2)
    Histogram("t_batch", "Batch", buckets=(1, 10), registry=registry).observe(3)
    Gauge("t_redis_up", "Up", registry=registry).set(1)
    assert render(take(registry)) == generate_latest(registry)
    assert decode(encode(take(registry)))[0] == take(registry)


def snapshot_bytes(**family: object) -> bytes:
    base: dict[str, object] = {"name": "t_x", "type": "counter", "help": "X", "samples": []}
    return json.dumps({"version": 1, "families": [{**base, **family}]}).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"version": 2, "families": []}',
        b'{"version": 1}',
        b"[" * 100_000,  # nesting deep enough to exhaust the parser's recursion
        snapshot_bytes(name="t x\n# TYPE evil counter"),  # not a metric name
        snapshot_bytes(type="bogus"),
        snapshot_bytes(help=7),
        snapshot_bytes(samples=[["other_total", {}, 1]]),  # not a sample of this family
        snapshot_bytes(samples=[["t_x_total", {'l"}': "v"}, 1]]),  # not a label name
        snapshot_bytes(samples=[["t_x_total", {"l": 1}, 1]]),
        snapshot_bytes(samples=[["t_x_total", {}, True]]),
        snapshot_bytes(samples=[["t_x_total", {}, "1"]]),
        snapshot_bytes(samples=[["t_x_total", {}]]),
        snapshot_bytes(extra=1),
        b" " * (MAX_SNAPSHOT_BYTES + 1),
    ],
)
def test_a_file_not_of_our_shape_is_refused(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        decode(data)


# ---- the snapshot directory ----------------------------------------------------------------


def directory(tmp_path: Path) -> SnapshotDirectory:
    path = tmp_path / "metrics"
    path.mkdir(mode=0o700)
    return SnapshotDirectory(path)


def total(snapshots: list[Snapshot]) -> float:
    merged = merge({}, snapshots)
    if "t_requests" not in merged:  # no worker has written a snapshot yet
        return 0
    return value(merged, "t_requests", "t_requests_total", route="pixel")


def test_a_dead_workers_counts_stay_and_its_gauges_go(tmp_path: Path) -> None:
    snapshots = directory(tmp_path)
    snapshots.save("w0-0", worker_registry(requests=3, up=1, depth=4, latencies=[0.5]))
    snapshots.save("w1-1", worker_registry(requests=5, up=1, depth=6, latencies=[0.5]))
    snapshots.retire("w0-0")
    snapshots.save("w0-2", worker_registry(requests=1, up=1, depth=1, latencies=[]))
    merged = merge({}, snapshots.others("scraper"))
    assert value(merged, "t_requests", "t_requests_total", route="pixel") == 9
    assert value(merged, "t_seconds", "t_seconds_count") == 2
    assert value(merged, "t_buffer_depth", "t_buffer_depth") == 7  # the live workers' only
    assert not (snapshots.path / "w0-0.worker.json").exists()


def test_a_folded_file_still_present_is_not_counted_twice(tmp_path: Path) -> None:
    snapshots = directory(tmp_path)
    dead = worker_registry(requests=3, up=1, depth=0, latencies=[])
    snapshots.save("w0-0", dead)
    snapshots.retire("w0-0")
    # As a reader sees the directory between the fold's two steps: the new retired.json is in
    # place and the folded worker's file not yet deleted.
    snapshots.save("w0-0", dead)
    assert total(snapshots.others("scraper")) == 3
    assert total(snapshots.others("w0-0")) == 3


def test_restarts_do_not_grow_the_directory(tmp_path: Path) -> None:
    snapshots = directory(tmp_path)
    for start in range(50):
        snapshots.save(f"w0-{start}", worker_registry(2, 1, 0, []))
        snapshots.retire(f"w0-{start}")
    snapshots.save("w0-50", worker_registry(2, 1, 0, []))
    assert sorted(p.name for p in snapshots.path.iterdir()) == ["retired.json", "w0-50.worker.json"]
    assert total(snapshots.others("scraper")) == 102
    assert json.loads((snapshots.path / "retired.json").read_bytes())["folded"] == ["w0-49"]


def test_an_unreadable_snapshot_is_left_out_not_fatal(tmp_path: Path) -> None:
    snapshots = directory(tmp_path)
    snapshots.save("w0-0", worker_registry(2, 1, 0, []))
    (snapshots.path / "w1-1.worker.json").write_bytes(b"\x00garbage")
    assert total(snapshots.others("scraper")) == 2


def test_sums_never_go_down_while_workers_are_folded(tmp_path: Path) -> None:
    """A supervisor folds worker after worker (each counted 1) while a worker reads: no read
    counts a worker twice or misses one, so the sums only go up."""
    snapshots = directory(tmp_path)
    one = worker_registry(requests=1, up=1, depth=0, latencies=[])
    starts = 300

    def supervise() -> None:
        for start in range(starts):
            snapshots.save(f"w0-{start}", one)
            snapshots.retire(f"w0-{start}")

    supervisor = threading.Thread(target=supervise)
    sums = [0.0]
    supervisor.start()
    while supervisor.is_alive():
        sums.append(total(snapshots.others("reader")))
    supervisor.join()
    sums.append(total(snapshots.others("reader")))
    assert sums == sorted(sums)
    assert sums[-1] == starts


async def test_a_worker_whose_directory_is_gone_still_answers(tmp_path: Path) -> None:
    snapshots = directory(tmp_path)
    snapshots.save("w1-1", worker_registry(requests=5, up=1, depth=0, latencies=[]))
    registry = CollectorRegistry()
    Counter("t_requests", "Requests", ["route"], registry=registry).labels("pixel").inc(4)
    shared = SharedMetrics(registry, WorkerSlot(snapshots.path, "w0-0"))
    assert 't_requests_total{route="pixel"} 9.0' in (await shared.exposition()).decode()
    shutil.rmtree(snapshots.path)  # as when the supervisor was killed
    assert 't_requests_total{route="pixel"} 4.0' in (await shared.exposition()).decode()


def test_only_abandoned_metrics_directories_are_removed(tmp_path: Path) -> None:
    old = time.time() - STALE_SECONDS - 1
    for name in ("tracker-metrics-dead", "tracker-metrics-live", "tracker-metrics-new", "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "w0-0.worker.json").write_bytes(b"{}")
        os.utime(tmp_path / name, (old, old))
    os.utime(tmp_path / "tracker-metrics-new", None)  # being set up, or written a moment ago
    (tmp_path / "tracker-metrics-file").write_bytes(b"")
    os.utime(tmp_path / "tracker-metrics-file", (old, old))
    live = os.open(tmp_path / "tracker-metrics-live", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(live, fcntl.LOCK_EX)  # as its supervisor holds it
        remove_abandoned(tmp_path)
    finally:
        os.close(live)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["other", "tracker-metrics-file", "tracker-metrics-live", "tracker-metrics-new"]


def test_a_supervisors_directory_is_private_locked_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what TMPDIR sets
    home = MetricsHome()
    path = home.open()
    try:
        assert path.parent == tmp_path
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        os.utime(path, (0, 0))  # even unchanged for long, a live supervisor's stays
        remove_abandoned(tmp_path)
        assert path.is_dir()
    finally:
        home.close()
    assert list(tmp_path.iterdir()) == []


# ---- real `tracker serve` processes --------------------------------------------------------


@dataclass
class Workers:
    tracker: TrackerProcess
    temp: Path  # the tracker's TMPDIR: where the supervisor makes its metrics directory

    def metrics_directories(self) -> list[Path]:
        return list(self.temp.iterdir())


@pytest.fixture
async def live_program(redis_url: str) -> None:
    await write_programs(redis_url, [program("live")])


@asynccontextmanager
async def serve(
    tracker_env: dict[str, str], tmp_path: Path, workers: int
) -> AsyncIterator[Workers]:
    temp = tmp_path / f"tmp-{workers}"
    temp.mkdir()
    env = {**tracker_env, "TRACKER_WORKERS": str(workers), "TMPDIR": str(temp)}
    async with tracker_process(env) as tracker:
        yield Workers(tracker, temp)


async def pixel(base_url: str, tag: str) -> None:
    """One pixel on a connection of its own (SO_REUSEPORT may hand it to either worker)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base_url}/v1/pixel?program=live&tag={tag}") as response,
    ):
        assert response.status == 200


async def instances(kinesalite_url: str, stream: str, prefix: str, sent: int) -> set[str]:
    """The tracker instances of the events tagged `prefix-*`, once all `sent` are on the stream."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        events = await read_events(kinesalite_url, stream)
        tagged = [e for e in events if e.params["tag"].startswith(f"{prefix}-")]
        if len(tagged) >= sent:
            return {e.tracker_instance for e in tagged}
        if loop.time() > deadline:
            raise AssertionError(f"{len(tagged)} of {sent} {prefix} events on the stream")
        await asyncio.sleep(0.1)


async def pixels_until_both_serve(
    base_url: str, kinesalite_url: str, stream: str, prefix: str
) -> int:
    """Pixels until both workers have answered some (a worker may bind a moment after the
    other); how many were sent."""
    for sent in range(1, 101):
        await pixel(base_url, f"{prefix}-{sent}")
        if sent % 5 == 0 and len(await instances(kinesalite_url, stream, prefix, sent)) == 2:
            return sent
    raise AssertionError("one worker answered 100 connections: the other never served")


async def scrapes_until_restarted(
    workers: Workers, killed: int, counter: PixelCounter, sent: int
) -> None:
    """Scrape while the supervisor replaces the killed worker: every scrape shows all `sent`."""
    supervisor = workers.tracker.process.pid
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        assert await counter.scrape() == sent
        pids = worker_pids(supervisor)
        if len(pids) == 2 and killed not in pids:
            return
        if loop.time() > deadline:
            raise AssertionError(f"the killed worker was not replaced: workers {pids}")
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.usefixtures("live_program")
async def test_one_scrape_counts_every_worker_across_a_kill_and_restart(
    tracker_env: dict[str, str], tmp_path: Path, kinesalite_url: str, event_stream: str
) -> None:
    async with serve(tracker_env, tmp_path, workers=2) as workers:
        base = workers.tracker.base_url
        counter = PixelCounter(base)
        sent = await pixels_until_both_serve(base, kinesalite_url, event_stream, "before")
        await counter.wait_for(sent)
        for _ in range(10):  # whichever worker answers
            assert await counter.scrape() == sent
        [metrics] = workers.metrics_directories()
        assert stat.S_IMODE(metrics.stat().st_mode) == 0o700

        pids = worker_pids(workers.tracker.process.pid)
        assert len(pids) == 2
        killed = min(pids)
        os.kill(killed, signal.SIGKILL)
        await scrapes_until_restarted(workers, killed, counter, sent)
        sent += await pixels_until_both_serve(base, kinesalite_url, event_stream, "after")
        await counter.wait_for(sent)
        for _ in range(10):
            assert await counter.scrape() == sent
        # The live workers' files and one of the retired counts; the killed one's was folded.
        files = sorted(p.name for p in metrics.iterdir() if not p.name.startswith("."))
        assert files[0] == "retired.json"
        assert [name.endswith(".worker.json") for name in files[1:]] == [True, True]

        returncode, output = await workers.tracker.terminate(timeout=40)
    assert returncode == 0, output.decode()
    assert workers.metrics_directories() == []  # removed at exit


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("live_program")
async def test_one_worker_is_unchanged_and_two_show_the_same_series(
    tracker_env: dict[str, str], tmp_path: Path
) -> None:
    async with serve(tracker_env, tmp_path, workers=1) as one:
        for n in range(5):
            await pixel(one.tracker.base_url, f"one-{n}")
        text = await scrape(one.tracker.base_url)
        assert requests_total(text, "pixel") == 5  # its own registry, at once
        assert one.metrics_directories() == []  # no snapshot files
        returncode, output = await one.tracker.terminate(timeout=40)
        assert returncode == 0, output.decode()
    async with serve(tracker_env, tmp_path, workers=2) as two:
        await pixel(two.tracker.base_url, "two")
        merged = await scrape(two.tracker.base_url)
        returncode, output = await two.tracker.terminate(timeout=40)
        assert returncode == 0, output.decode()
    assert series(merged) == series(text)
