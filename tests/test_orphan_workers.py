"""Workers of `tracker serve` (TRACKER_WORKERS=N) do not outlive their supervisor: killed with
SIGKILL, it leaves workers that drain as on SIGTERM, exit 0 and free the port, and no answered
event is lost. Real processes on real Redis and kinesalite, with a partition in front of Kinesis
so that the answered events are still in the workers' memory when the supervisor dies."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.kinesis import read_events
from tests.support.orphans import adopting_orphans, children, exit_code
from tests.support.programs import program, write_programs
from tests.support.tcp_proxy import PartitionProxy
from tests.support.tracker_process import TrackerProcess, tracker_process
from tests.support.worker_metrics import worker_pids
from tracker.devstack.processes import free_port
from tracker.parent_watch import ParentWatch, wait_until_gone
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.server import _worker_main, run_worker
from tracker.settings import TrackerSettings
from tracker.workermetrics.worker import WorkerSlot

GONE = "tracker supervisor is gone, the worker stops"
BATCH = 40  # pixels answered while Kinesis is unreachable: in the workers' memory at the kill


@pytest.fixture
async def env(tracker_env: dict[str, str], redis_url: str, tmp_path: Path) -> dict[str, str]:
    await write_programs(redis_url, [program("live")])
    temp = tmp_path / "tmp"  # the supervisor's metrics directory, left behind when it is killed
    temp.mkdir()
    return {**tracker_env, "LOG_LEVEL": "INFO", "TMPDIR": str(temp)}


def log_lines(output: bytes) -> list[dict[str, Any]]:
    lines = []
    for line in output.splitlines():
        if line.startswith(b"{"):
            lines.append(json.loads(line))
    return lines


async def pixel(session: aiohttp.ClientSession, base_url: str, tag: str) -> None:
    async with session.get(f"{base_url}/v1/pixel?program=live&tag={tag}") as response:
        await response.read()
        assert response.status == 200


async def tagged(kinesalite_url: str, stream: str, prefix: str) -> list[pb.TrackingEvent]:
    events = await read_events(kinesalite_url, stream)
    return [e for e in events if e.params["tag"].startswith(prefix)]


async def all_arrive(
    kinesalite_url: str, stream: str, prefix: str, count: int, timeout: float = 60.0
) -> list[pb.TrackingEvent]:
    """The events tagged `prefix*`, once `count` tags have arrived (or after the timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        events = await tagged(kinesalite_url, stream, prefix)
        if len({e.params["tag"] for e in events}) >= count or loop.time() > deadline:
            return events
        await asyncio.sleep(0.2)


async def warm_up_both_workers(
    session: aiohttp.ClientSession, base_url: str, kinesalite_url: str, stream: str
) -> None:
    """Pixels until both workers have answered some and shipped all (one may bind a moment after
    the other): from then on, new connections go to either, and their memory is empty."""
    for sent in range(1, 101):
        await pixel(session, base_url, f"warm-{sent}")
        if sent % 5:
            continue
        warm = await all_arrive(kinesalite_url, stream, "warm-", sent, timeout=15)
        assert len(warm) == sent, f"{len(warm)} of {sent} warm-up events on the stream"
        if len({e.tracker_instance for e in warm}) == 2:
            return
    raise AssertionError("one worker answered 100 connections: the other never served")


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


async def wait_for_drains(tracker: TrackerProcess, workers: int, timeout: float = 15.0) -> None:
    """Until every worker has logged that its drain began (its on_shutdown hooks have run)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        lines = log_lines(tracker.output())
        if sum(line["msg"] == "draining events" for line in lines) == workers:
            return
        if loop.time() > deadline:
            raise AssertionError(f"the workers did not start draining in {timeout}s")
        await asyncio.sleep(0.05)


async def kill_the_supervisor(tracker: TrackerProcess, while_stopping: bool) -> None:
    """SIGKILL to the supervisor alone, not its process group; first SIGTERM if `while_stopping`,
    so that it dies while its workers drain."""
    if while_stopping:
        tracker.process.send_signal(signal.SIGTERM)
        await wait_for_drains(tracker, workers=2)
    tracker.process.kill()
    await asyncio.to_thread(tracker.process.wait, 10)


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("while_stopping", [False, True], ids=["serving", "draining"])
async def test_a_killed_supervisors_workers_drain_and_exit(
    env: dict[str, str],
    partition: PartitionProxy,
    kinesalite_url: str,
    event_stream: str,
    while_stopping: bool,
) -> None:
    two_workers = {
        **env,
        "TRACKER_WORKERS": "2",
        "AWS_ENDPOINT_URL_KINESIS": partition.url,
        "SPILL_AFTER_SECONDS": "60",  # the outage's events stay in memory until the drain
        "SHIP_DRAIN_SECONDS": "4",  # long enough for the kill to land during it
    }
    fresh = aiohttp.TCPConnector(force_close=True)  # a connection each: either worker answers
    async with (
        aiohttp.ClientSession(connector=fresh) as session,
        tracker_process(two_workers) as tracker,
    ):
        supervisor = tracker.process.pid
        with adopting_orphans(group=supervisor) as adopted:
            await warm_up_both_workers(session, tracker.base_url, kinesalite_url, event_stream)
            partition.partition()
            for n in range(BATCH):
                await pixel(session, tracker.base_url, f"batch-{n}")
            workers = worker_pids(supervisor)
            assert len(workers) == 2
            adopted.update(children(supervisor))  # the workers, and multiprocessing's helpers

            await kill_the_supervisor(tracker, while_stopping)
            codes = {pid: await exit_code(pid, timeout=30) for pid in workers}
            assert codes == dict.fromkeys(workers, 0), tracker.output().decode()
            assert refuses_connections(tracker.port)
        lines = log_lines(tracker.output())

    gone = [line for line in lines if line["msg"] == GONE]
    if while_stopping:  # they were stopping already, for another reason
        assert gone == []
    else:
        assert sorted(line["worker_pid"] for line in gone) == sorted(workers)
        assert {line["supervisor"] for line in gone} == {supervisor}
    drained = [line for line in lines if line["msg"] == "events drained"]
    assert len(drained) == 2
    assert sum(line["written_at_shutdown"] for line in drained) == BATCH  # memory to disk
    stopped = {line["instance"] for line in lines if line["msg"] == "tracker stopped"}
    assert len(stopped) == 2

    # What the workers wrote to the spill log at their drain: shipped by the next tracker.
    async with tracker_process(env) as successor:
        batch = await all_arrive(kinesalite_url, event_stream, "batch-", BATCH)
        returncode, output = await successor.terminate(timeout=30)
        assert returncode == 0, output.decode()
    seen = Counter(e.params["tag"] for e in batch)
    assert seen == Counter(f"batch-{n}" for n in range(BATCH))  # each once, none lost
    assert {e.tracker_instance for e in batch} == stopped  # both workers held some of it


# ---- a supervisor that died before the worker could ask to be signalled --------------------


def worker_settings(env: dict[str, str]) -> TrackerSettings:
    return TrackerSettings.from_env(
        {**env, "TRACKER_HOST": "127.0.0.1", "TRACKER_PORT": str(free_port())}
    )


def dead_pid() -> int:
    """The pid of a process that has exited: a supervisor gone before its worker started."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


@pytest.mark.timeout(60)
def test_a_worker_whose_supervisor_is_already_gone_exits_at_once(
    env: dict[str, str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = worker_settings(env)
    slot = WorkerSlot(tmp_path, "w0-0")
    context = multiprocessing.get_context("spawn")  # as the supervisor starts its workers
    worker = context.Process(target=_worker_main, args=(settings, slot, dead_pid()))
    worker.start()
    worker.join(30)  # a worker that started would serve until killed
    if worker.is_alive():
        worker.kill()
        worker.join()
    output = capfd.readouterr().out
    assert worker.exitcode == 0, output
    assert GONE in output
    assert "tracker starting" not in output


# ---- where the kernel does not signal: the worker's loop polls -----------------------------


@pytest.mark.timeout(60)
def test_without_the_kernels_signal_a_polling_worker_drains_and_stops(
    env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    settings = worker_settings(env)
    watch = ParentWatch(dead_pid(), kernel_signals=False)  # as after its supervisor died
    context = multiprocessing.get_context("spawn")
    worker = context.Process(target=run_worker, args=(settings, True, None, watch))
    worker.start()
    worker.join(30)
    if worker.is_alive():
        worker.kill()
        worker.join()
    output = capfd.readouterr().out
    assert worker.exitcode == 0, output
    messages = [line["msg"] for line in log_lines(output.encode())]
    assert messages.count(GONE) == 1
    assert messages.index("tracker starting") < messages.index(GONE)
    assert messages.index(GONE) < messages.index("events drained")
    assert messages[-1] == "tracker stopped"


async def test_polling_ends_only_when_the_parent_changes() -> None:
    waiting = asyncio.create_task(wait_until_gone(os.getppid(), interval=0.01))
    await asyncio.sleep(0.2)  # twenty looks at a parent that is still there
    assert not waiting.done()
    waiting.cancel()
    await asyncio.wait_for(wait_until_gone(dead_pid(), interval=0.01), timeout=10)
