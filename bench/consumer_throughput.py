"""Measure one `consumers events` worker: events per second from kinesalite into moto's DynamoDB.

Starts its own redis-server, kinesalite and moto server on free loopback ports, puts N events on
a 2-shard stream, starts one worker and times until every event is an item.

    .venv/bin/python -m bench.consumer_throughput [N]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiohttp

from tests.support.consumers import (
    consumer_env,
    make_events,
    provisioned,
    put_records,
    stored_message_ids,
)
from tracker.devstack.processes import (
    ManagedProcess,
    free_port,
    kinesalite,
    moto_server,
    redis_server,
)

TIMEOUT_SECONDS = 600


async def measure(count: int) -> dict[str, float]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "local")  # the emulators take any credentials
    services = [
        redis_server(free_port()).start(),
        kinesalite(free_port()).start(),
        moto_server(free_port()).start(),
    ]
    redis_proc, kinesis_proc, moto_proc = services
    worker: ManagedProcess | None = None
    try:
        kinesis_url = f"http://127.0.0.1:{kinesis_proc.port}"
        moto_url = f"http://127.0.0.1:{moto_proc.port}"
        env = consumer_env(kinesis_url, moto_url, f"redis://127.0.0.1:{redis_proc.port}/0", 2)
        await provisioned(env)
        await put_records(kinesis_url, env["EVENT_STREAM"], make_events(count))
        port = free_port()
        worker = ManagedProcess(
            "worker",
            [sys.executable, "-m", "consumers", "events"],
            port,
            env={**os.environ, **env, "CONSUMER_METRICS_PORT": str(port)},
        )
        started = time.monotonic()
        worker.start()
        # Poll the worker's own counter: scanning the table would load the emulator we measure.
        while await _written(port) < count:
            if time.monotonic() - started > TIMEOUT_SECONDS:
                raise TimeoutError("the worker did not store every event in time")
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        stored = await stored_message_ids(moto_url, env["EVENTS_TABLE"])
        return {
            "events": count,
            "seconds": round(elapsed, 1),
            "events_per_second": round(count / elapsed),
            "items": len(stored),
            "max_items_per_event": max(stored.values()),
        }
    finally:
        if worker is not None:
            worker.stop()
        for process in reversed(services):
            process.stop()


async def _written(metrics_port: int) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{metrics_port}/metrics") as response,
    ):
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("consumer_events_written_total "):
            return float(line.split()[1])
    return 0.0


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))))
