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
from pathlib import Path
from typing import Any

from tests.support.kinesis import create_stream, read_events
from tests.support.load import TaggedLoad
from tests.support.programs import STANDARD, write_programs
from tests.support.tcp_proxy import PartitionProxy
from tests.support.tracker_process import tracker_process
from tracker.devstack.processes import free_port, kinesalite, redis_server


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
    stream = await create_stream(kinesis_url, shards=2)
    await write_programs(f"redis://127.0.0.1:{redis_port}/0", STANDARD)
    proxy = await PartitionProxy("127.0.0.1", kinesis_port).start()
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AWS_ENDPOINT_URL_KINESIS": proxy.url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "EVENT_STREAM": stream,
        "SPILL_DIR": str(spill),
        "DURABILITY": args.durability,
        "LOG_LEVEL": "WARNING",
    }
    port, third = free_port(), args.outage / 3
    timeline: list[tuple[float, str]] = []
    started = time.monotonic()

    def mark(what: str) -> None:
        timeline.append((round(time.monotonic() - started, 1), what))

    async with TaggedLoad(f"http://127.0.0.1:{port}", args.rate) as load:
        async with tracker_process({**env, "TRACKER_WORKERS": "2"}, port=port) as first:
            await asyncio.sleep(10)
            proxy.partition()
            mark("partition")
            await asyncio.sleep(third)
            mark("SIGTERM (2 workers)")
            await first.terminate(timeout=60)
        async with tracker_process(env, port=port) as second:
            mark("restarted (1 worker)")
            await asyncio.sleep(third)
            mark("SIGKILL of every process")
            second.kill_all()
        async with tracker_process({**env, "TRACKER_WORKERS": "2"}, port=port) as last:
            mark("restarted (2 workers)")
            await asyncio.sleep(third)
            proxy.heal()
            mark("heal")
            await asyncio.sleep(20)
            answered = set(load.answered)
            failed = load.failed
            mark("load stopped")
            seen = await _wait_for(answered, kinesis_url, stream)
            mark("every answered event on the stream" if answered <= seen.keys() else "gave up")
            await last.terminate(timeout=60)
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
        "timeline": timeline,
    }


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
