"""The long outage run by hand: a steady tagged load through a Kinesis partition of minutes,
with a SIGTERM and a SIGKILL of every tracker process inside it, then a count of what came out.

    .venv/bin/python -m bench.outage [--rate 300] [--outage 130] [--durability write-ahead]

Real redis-server and kinesalite on free loopback ports, a TCP proxy in front of kinesalite that
stops answering (tests/support/tcp_proxy.py), the tracker as real processes on one SPILL_DIR.
Prints one JSON object: answered, on the stream, lost (must be 0), duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.kinesis import create_stream, read_events
from tests.support.load import TaggedLoad
from tests.support.programs import STANDARD, write_programs
from tests.support.tcp_proxy import PartitionProxy
from tests.support.tracker_process import tracker_process
from tracker.devstack.processes import free_port, kinesalite, redis_server

STEADY_SECONDS = 10  # of load before the partition
HEALED_SECONDS = 20  # of load after the heal
TERMINATE_TIMEOUT = 60


async def run(args: argparse.Namespace) -> dict[str, Any]:
    redis = redis_server(free_port()).start()
    kinesis = kinesalite(free_port()).start()
    try:
        with tempfile.TemporaryDirectory() as spill:
            return await _outage(args, redis.port, kinesis.port, Path(spill))
    finally:
        kinesis.stop()
        redis.stop()


async def _outage(
    args: argparse.Namespace, redis_port: int, kinesis_port: int, spill: Path
) -> dict[str, Any]:
    kinesis_url = f"http://127.0.0.1:{kinesis_port}"
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    stream = await create_stream(kinesis_url, shards=2)
    await write_programs(redis_url, STANDARD)
    proxy = await PartitionProxy("127.0.0.1", kinesis_port).start()
    env = {
        "REDIS_URL": redis_url,
        "AWS_ENDPOINT_URL_KINESIS": proxy.url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "EVENT_STREAM": stream,
        "SPILL_DIR": str(spill),
        "DURABILITY": args.durability,
        "LOG_LEVEL": "WARNING",
    }
    run = _Run(env, free_port(), proxy, args.outage / 3)
    async with TaggedLoad(f"http://127.0.0.1:{run.port}", args.rate) as load:
        await _partition_and_kill(run)
        async with tracker_process(run.two_workers, port=run.port) as last:
            run.mark("restarted (2 workers)")
            await asyncio.sleep(run.phase_seconds)
            proxy.heal()
            run.mark("heal")
            await asyncio.sleep(HEALED_SECONDS)
            answered = set(load.answered)
            failed = load.failed
            run.mark("load stopped")
            seen = await _wait_for(answered, kinesis_url, stream)
            run.mark("every answered event on the stream" if answered <= seen.keys() else "gave up")
            await last.terminate(timeout=TERMINATE_TIMEOUT)
    await proxy.close()
    return {
        "durability": args.durability,
        "rate": args.rate,
        "outage_seconds": round(args.outage, 1),
        "answered": len(answered),
        "not_answered": failed,
        "on_stream": len(answered & seen.keys()),
        "lost": len(answered - seen.keys()),
        "duplicated": sum(count - 1 for count in seen.values()),
        "records_on_stream": sum(seen.values()),
        "timeline": run.timeline,
    }


@dataclass(slots=True)
class _Run:
    """The outage under way: the trackers' settings and port, the partition, and what happened
    when."""

    env: dict[str, str]
    port: int
    proxy: PartitionProxy
    phase_seconds: float  # a third of the outage
    started: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, str]] = field(default_factory=list)

    @property
    def two_workers(self) -> dict[str, str]:
        return {**self.env, "TRACKER_WORKERS": "2"}

    def mark(self, what: str) -> None:
        self.timeline.append((round(time.monotonic() - self.started, 1), what))


async def _partition_and_kill(run: _Run) -> None:
    """The partition, then a SIGTERM of a two-worker tracker and, a third of the outage later,
    a SIGKILL of every process of a one-worker tracker."""
    async with tracker_process(run.two_workers, port=run.port) as first:
        await asyncio.sleep(STEADY_SECONDS)
        run.proxy.partition()
        run.mark("partition")
        await asyncio.sleep(run.phase_seconds)
        run.mark("SIGTERM (2 workers)")
        await first.terminate(timeout=TERMINATE_TIMEOUT)
    async with tracker_process(run.env, port=run.port) as second:
        run.mark("restarted (1 worker)")
        await asyncio.sleep(run.phase_seconds)
        run.mark("SIGKILL of every process")
        second.kill_all()


async def _wait_for(answered: set[str], kinesis_url: str, stream: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(120):
        seen = Counter(e.params["tag"] for e in await read_events(kinesis_url, stream))
        if answered <= seen.keys():
            break
        await asyncio.sleep(1)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--outage", type=float, default=130, help="seconds of partition")
    parser.add_argument("--durability", choices=("overflow", "write-ahead"), default="write-ahead")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
