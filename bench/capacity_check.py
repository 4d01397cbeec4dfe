"""The capacity model checked locally: two trackers and two events consumers, all real processes,
on a four-shard kinesalite stream with moto's DynamoDB and a real Redis, under a bounded load.

Every request carries a marker parameter of this run (`run=...`, kept in the event's params), so
that the run's items can be told from any other in the table. Afterwards the table is scanned
for the marker and counted by message id: every answered request must have exactly one item.
CPU per request (trackers) and per event (consumers) is read from /proc over the whole run, to
compare with the model's figures, which were measured against canned endpoints.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.hey import HeyResult, run_hey
from bench.metrics_probe import read_metric
from bench.procstat import cpu_seconds, idle_cpu_per_second
from bench.stack import BenchStack, demo_stack, metrics_url, origin, pid_of, scan_pages
from tracker.devstack.processes import ManagedProcess

SHARDS = 4
PROCESSES = 2  # trackers, and consumers
CONCURRENCY = 50  # per tracker: two hey processes share the cores with everything else
DRAIN_TIMEOUT = 900.0
ROUTES = (("pixel", "/v1/pixel?program=demo-shoes"), ("click", "/v1/click?program=demo-shoes"))


def local_check(pixels: int, clicks: int) -> dict[str, Any]:
    """`pixels` and `clicks` per tracker; what came out, and what it cost."""
    marker = os.urandom(6).hex()
    with demo_stack({"EVENT_STREAM_SHARDS": str(SHARDS)}) as stack:
        consumers = [_consumer(stack, n) for n in range(PROCESSES)]
        trackers = [stack.tracker() for _ in range(PROCESSES)]
        processes = (*trackers, *consumers)
        for process in (*consumers, *trackers):
            process.start()
        try:
            _wait_for_leases(consumers)
            time.sleep(1.0)  # the trackers bound and subscribed
            idle = idle_cpu_per_second([pid_of(p) for p in processes])
            before = [_cpu(p) for p in processes]
            started = time.monotonic()
            answered = {
                route: _load(trackers, f"{path}&run={marker}", count)
                for (route, path), count in zip(ROUTES, (pixels, clicks), strict=True)
            }
            written = _wait_written(consumers, sum(answered.values()))
            seconds = time.monotonic() - started
            after = [_cpu(p) for p in processes]
        finally:
            for process in processes:
                process.stop()
        found = asyncio.run(_items(stack.env, marker))
    spent = [b - a for a, b in zip(before, after, strict=True)]
    # What the processes spend with nothing to do (polls, lease renewals) over the same time.
    busy = [max(0.0, s - rate * seconds) for s, rate in zip(spent, idle, strict=True)]
    return {
        "trackers": PROCESSES,
        "consumers": PROCESSES,
        "shards": SHARDS,
        "answered": answered,
        **_items_found(found, sum(answered.values())),
        "writes_including_redeliveries": int(written),
        "seconds_until_all_stored": round(seconds, 1),
        **_cpu_figures(spent, busy, idle, sum(answered.values())),
    }


def _items_found(found: list[tuple[str, str]], total: int) -> dict[str, Any]:
    """The items of the run: each answered request must have exactly one."""
    by_id = Counter(message_id for message_id, _ in found)
    by_type = Counter(event_type for _, event_type in found)
    return {
        "items": len(found),
        "distinct_message_ids": len(by_id),
        "message_ids_with_more_than_one_item": sum(1 for n in by_id.values() if n > 1),
        "items_by_type": dict(by_type),
        "missing": total - len(by_id),
    }


def _cpu_figures(
    spent: list[float], busy: list[float], idle: list[float], total: int
) -> dict[str, Any]:
    """CPU per request (trackers, the first PROCESSES) and per event (consumers, the rest)."""
    return {
        "tracker_cpu_us_per_request": round(1e6 * sum(spent[:PROCESSES]) / total, 1),
        "consumer_cpu_us_per_event": round(1e6 * sum(spent[PROCESSES:]) / total, 1),
        "idle_cpu_ms_per_second": [round(1000 * rate, 1) for rate in idle],
        "tracker_cpu_us_per_request_less_idle": round(1e6 * sum(busy[:PROCESSES]) / total, 1),
        "consumer_cpu_us_per_event_less_idle": round(1e6 * sum(busy[PROCESSES:]) / total, 1),
    }


def _consumer(stack: BenchStack, number: int) -> ManagedProcess:
    return stack.events_consumer(
        {"CONSUMER_WORKER_ID": f"capacity-check-{number}"}, name=f"consumers events {number}"
    )


def _cpu(process: ManagedProcess) -> float:
    return cpu_seconds(pid_of(process))


def _wait_for_leases(consumers: list[ManagedProcess], timeout: float = 90.0) -> None:
    """Until the shards are shared out: each consumer holds SHARDS / PROCESSES leases."""
    deadline = time.monotonic() + timeout
    while True:
        held = [_metric(c, "consumer_leases_held") for c in consumers]
        if all(n == SHARDS // PROCESSES for n in held):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the consumers hold {held} leases, not an even share")
        time.sleep(0.5)


def _load(trackers: list[ManagedProcess], path: str, count: int) -> int:
    """`count` requests to each tracker at once; how many were answered (200 or 302)."""
    with ThreadPoolExecutor(len(trackers)) as pool:
        results: list[HeyResult] = list(
            pool.map(
                lambda t: run_hey(origin(t) + path, CONCURRENCY, requests=count),
                trackers,
            )
        )
    return sum(r.responses.get(200, 0) + r.responses.get(302, 0) for r in results)


def _wait_written(consumers: list[ManagedProcess], events: int) -> float:
    """Until the consumers together have written `events` events; what they wrote."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while (written := sum(_metric(c, "consumer_events_written_total") for c in consumers)) < events:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the consumers wrote {written} of {events} events")
        time.sleep(0.5)
    # One more batch may be in flight on another shard: let it land before the count.
    time.sleep(2.0)
    return sum(_metric(c, "consumer_events_written_total") for c in consumers)


def _metric(process: ManagedProcess, name: str) -> float:
    return read_metric(metrics_url(process), name)


async def _items(env: dict[str, str], marker: str) -> list[tuple[str, str]]:
    """(message_id, event_type) of every item of this run in the events table."""
    scan: dict[str, Any] = {
        "TableName": env.get("EVENTS_TABLE", "tracking-events"),
        "ConsistentRead": True,
        "FilterExpression": "params.#run = :marker",
        "ProjectionExpression": "message_id, event_type",
        "ExpressionAttributeNames": {"#run": "run"},
        "ExpressionAttributeValues": {":marker": {"S": marker}},
    }
    return [
        (item["message_id"]["S"], item["event_type"]["S"])
        async for page in scan_pages(env, scan)
        for item in page.get("Items", [])
    ]
