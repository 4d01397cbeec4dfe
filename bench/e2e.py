"""End to end: a fixed number of pixel requests at full speed, then the time until every accepted
event is an item in DynamoDB, and an exact count check (no loss, no duplicates)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.hey import run_hey
from bench.metrics_probe import read_metric, wait_metric
from bench.stack import BenchStack, scan_pages
from tracker.devstack.processes import free_port

DRAIN_TIMEOUT = 900.0


def run_e2e(
    stack: BenchStack, requests: int, concurrency: int, tracker_extra: dict[str, str]
) -> dict[str, Any]:
    consumer_port, tracker_port = free_port(), free_port()
    consumer = stack.process(
        "consumers events",
        ["consumers", "events"],
        consumer_port,
        {
            "CONSUMER_METRICS_PORT": str(consumer_port),
            "CONSUMER_METRICS_HOST": "127.0.0.1",
            "CONSUMER_POLL_MS": "200",
        },
    )
    tracker = stack.process(
        "tracker",
        ["tracker", "serve"],
        tracker_port,
        {"TRACKER_PORT": str(tracker_port), **tracker_extra},
    )
    consumer.start()
    tracker.start()
    try:
        started = time.monotonic()
        result = run_hey(
            f"http://127.0.0.1:{tracker_port}/v1/pixel?program=demo-shoes",
            concurrency,
            requests=requests,
        )
        http_done = time.monotonic()
        accepted = read_metric(
            f"http://127.0.0.1:{tracker_port}/metrics",
            "tracker_requests_total",
            'outcome="ok",route="pixel"',
        )
        written = wait_metric(
            f"http://127.0.0.1:{consumer_port}/metrics",
            "consumer_events_written_total",
            accepted,
            DRAIN_TIMEOUT,
        )
        stored_at = time.monotonic()
        items = asyncio.run(_count_items(stack.env))
    finally:
        tracker.stop()
        consumer.stop()
    return {
        "requests": requests,
        "http_200": result.responses.get(200, 0),
        "http_rps": round(result.requests_per_second),
        "accepted_events": int(accepted),
        "items_in_dynamodb": items,
        "lost": int(accepted) - items,
        "duplicated": max(0, items - int(accepted)),
        "writes_including_redeliveries": int(written),
        "seconds_http": round(http_done - started, 1),
        "seconds_until_all_stored": round(stored_at - started, 1),
        "seconds_after_http": round(stored_at - http_done, 1),
    }


async def _count_items(env: dict[str, str]) -> int:
    scan = {"TableName": "tracking-events", "Select": "COUNT"}
    return sum([page["Count"] async for page in scan_pages(env, scan)])
