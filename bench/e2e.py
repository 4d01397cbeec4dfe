"""End to end: a fixed number of pixel requests at full speed, then the time until every accepted
event is an item in DynamoDB, and an exact count check (no loss, no duplicates)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench.demo_programs import DEMO_PIXEL
from bench.hey import HeyResult, run_hey
from bench.metrics_probe import read_metric, wait_metric
from bench.stack import BenchStack, metrics_url, origin, scan_pages

DRAIN_TIMEOUT = 900.0


def run_e2e(
    stack: BenchStack, requests: int, concurrency: int, tracker_extra: dict[str, str]
) -> dict[str, Any]:
    consumer = stack.events_consumer()
    tracker = stack.tracker(tracker_extra)
    consumer.start()
    tracker.start()
    try:
        started = time.monotonic()
        result = run_hey(origin(tracker) + DEMO_PIXEL, concurrency, requests=requests)
        http_done = time.monotonic()
        accepted = read_metric(
            metrics_url(tracker), "tracker_requests_total", 'outcome="ok",route="pixel"'
        )
        written = wait_metric(
            metrics_url(consumer), "consumer_events_written_total", accepted, DRAIN_TIMEOUT
        )
        stored_at = time.monotonic()
        items = asyncio.run(_count_items(stack.env))
    finally:
        tracker.stop()
        consumer.stop()
    return _Outcome(
        requests, result, int(accepted), int(written), items, started, http_done, stored_at
    ).figures()


@dataclass(frozen=True, slots=True)
class _Outcome:
    requests: int
    result: HeyResult
    accepted: int  # pixel requests the tracker answered as valid: events to store
    written: int  # the consumer's writes, redeliveries included
    items: int  # in DynamoDB
    started: float  # time.monotonic() when the load started
    http_done: float  # when its last answer came
    stored_at: float  # when every accepted event was written

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "http_200": self.result.responses.get(200, 0),
            "http_rps": round(self.result.requests_per_second),
            "accepted_events": self.accepted,
            "items_in_dynamodb": self.items,
            "lost": self.accepted - self.items,
            "duplicated": max(0, self.items - self.accepted),
            "writes_including_redeliveries": self.written,
            "seconds_http": round(self.http_done - self.started, 1),
            "seconds_until_all_stored": round(self.stored_at - self.started, 1),
            "seconds_after_http": round(self.stored_at - self.http_done, 1),
        }


async def _count_items(env: dict[str, str]) -> int:
    scan = {"TableName": "tracking-events", "Select": "COUNT"}
    return sum([page["Count"] async for page in scan_pages(env, scan)])
