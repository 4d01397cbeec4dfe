"""How soon an event put on the stream is queryable in the lake, with real processes.

    .venv/bin/python -m bench.lake_freshness [--tries N] [--commit-seconds S]

redis-server, kinesalite and moto (bench/stack.py), `consumers init` (the streams, the tables,
and the lake's table in a temporary LAKE_DIR: a SQLite catalog and a file warehouse), then one
`consumers lake` process with LAKE_COMMIT_SECONDS=S and the consumers' default poll settings
(CONSUMER_POLL_MS 1 s, CONSUMER_TIP_WAIT_MS 2 s), holding both shards of the stream. Each try
waits a random pause of up to S (so that puts fall anywhere in the commit cycle), puts one
pixel event as the tracker ships it (PutRecord, its message id the partition key), then asks
the table through pyiceberg every POLL_SECONDS: reload, and once the current snapshot is a new
one, a scan for the message id. The figure is seconds from just before the put to the first
answer that finds the row; the bar is S + SLACK_SECONDS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pyiceberg.table import Table

from bench.bars import seconds_against, verdict
from bench.metrics_probe import wait_metric
from bench.rollup_freshness import CONSUMER_SETTINGS, pixel_event
from bench.stack import BenchStack, metrics_url
from consumers.lake.catalog import open_catalog, open_table
from consumers.settings import ConsumerSettings
from tests.support.kinesis import kinesis_client
from tracker.devstack.processes import ManagedProcess, free_port

SHARDS = 2  # the bench stack's event stream
SLACK_SECONDS = 5.0  # the bar: an event is queryable within LAKE_COMMIT_SECONDS plus this
POLL_SECONDS = 0.1  # how often the table is asked
TRY_TIMEOUT_SECONDS = 60.0  # a try that takes longer has failed; the run stops there

Put = Callable[[str, bytes], Awaitable[None]]


class Lake:
    """The lake's table as a query engine sees it: the catalog's current snapshot."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._seen: int | None = None  # the snapshot last scanned

    def holds(self, message_id: str) -> bool:
        snapshot = self._table.refresh().current_snapshot()
        if snapshot is None or snapshot.snapshot_id == self._seen:
            return False
        self._seen = snapshot.snapshot_id
        scan = self._table.scan(
            row_filter=f"message_id == '{message_id}'", selected_fields=("message_id",)
        )
        return bool(scan.to_arrow().num_rows)


async def one_try(lake: Lake, put: Put, rng: random.Random, commit_seconds: float) -> float:
    """Seconds from the put of one new event to the first scan that finds it."""
    await asyncio.sleep(rng.uniform(0.0, commit_seconds))
    message_id, data, _ = pixel_event(rng)
    started = time.perf_counter()
    await put(message_id, data)
    while not lake.holds(message_id):
        if time.perf_counter() - started > TRY_TIMEOUT_SECONDS:
            raise TimeoutError(f"the event was not in the lake after {TRY_TIMEOUT_SECONDS} s")
        await asyncio.sleep(POLL_SECONDS)
    return time.perf_counter() - started


async def tries(stack: BenchStack, lake: Lake, count: int, commit_seconds: float) -> list[float]:
    stream = stack.env.get("EVENT_STREAM", "tracking-events")
    rng = random.Random(20261207)
    async with kinesis_client(stack.env["AWS_ENDPOINT_URL_KINESIS"]) as kinesis:

        async def put(message_id: str, data: bytes) -> None:
            await kinesis.put_record(StreamName=stream, Data=data, PartitionKey=message_id)

        return [await one_try(lake, put, rng, commit_seconds) for _ in range(count)]


def lake_worker(stack: BenchStack, lake_env: dict[str, str]) -> ManagedProcess:
    """`consumers lake` with its metrics on a free port and the default poll settings."""
    port = free_port()
    settings = {
        **CONSUMER_SETTINGS,
        **lake_env,
        "CONSUMER_METRICS_PORT": str(port),
        "CONSUMER_METRICS_HOST": "127.0.0.1",
    }
    return stack.process("consumers lake", ["consumers", "lake"], port, settings)


def measure(count: int, commit_seconds: float) -> dict[str, Any]:
    """The stack, the table, one lake worker holding both shards, then the tries."""
    with tempfile.TemporaryDirectory(prefix="adtracker-lake-fresh-") as directory:
        lake_env = {"LAKE_DIR": directory, "LAKE_COMMIT_SECONDS": str(commit_seconds)}
        with BenchStack() as stack:
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                # The bench's own client finds credentials in the environment, as processes do.
                os.environ.setdefault(name, stack.env[name])
            stack.command("consumers", "init", extra=lake_env)
            settings = ConsumerSettings.from_env({**stack.env, **lake_env}).lake
            lake = Lake(open_table(open_catalog(settings), settings))
            worker = lake_worker(stack, lake_env)
            worker.start()
            try:
                wait_metric(metrics_url(worker), "consumer_leases_held", SHARDS, 60)
                seconds = asyncio.run(tries(stack, lake, count, commit_seconds))
            finally:
                worker.stop()
    return result(seconds, commit_seconds)


def result(seconds: list[float], commit_seconds: float) -> dict[str, Any]:
    bound = commit_seconds + SLACK_SECONDS
    return {
        "tries": len(seconds),
        "lake_commit_seconds": commit_seconds,
        "consumer_poll_ms": int(CONSUMER_SETTINGS["CONSUMER_POLL_MS"]),
        "table_poll_ms": round(1000 * POLL_SECONDS),
        **seconds_against(seconds, bound),
    }


def summary(part: dict[str, Any]) -> str:
    bar = part["bar"]
    return (
        f"put to queryable in the lake (LAKE_COMMIT_SECONDS={part['lake_commit_seconds']}): "
        f"median {part['median_seconds']} s, max {part['max_seconds']} s over {part['tries']} "
        f"tries ({part['seconds']}); bar <= {bar['bar_seconds']} s: {verdict(bar['holds'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tries", type=int, default=5, help="events put one after the other")
    parser.add_argument("--commit-seconds", type=float, default=5.0, help="LAKE_COMMIT_SECONDS")
    args = parser.parse_args()
    part = measure(max(1, min(args.tries, 20)), args.commit_seconds)
    print(summary(part))
    print(json.dumps(part, indent=2))


if __name__ == "__main__":
    main()
