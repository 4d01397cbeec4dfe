"""The capacity part of `make bench`: the figures docs/capacity.md is built from.

    .venv/bin/python -m bench.run --only capacity [--quick]

1. Bytes per event (bench/event_sizes.py): one real event of each kind of request, its Kinesis
   record plain and aggregated, its DynamoDB item and index entry.
2. CPU (bench/capacity_cpu.py): the tracker's per pixel and per click, plain and aggregated
   shipping, against the canned Kinesis endpoint; the events consumer's per event, plain and
   aggregated records, reading kinesalite and writing to the canned DynamoDB endpoint.
3. The local check (bench/capacity_check.py): two trackers and two consumers on a four-shard
   stream, moto and Redis, a bounded load, every answered request's item counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bench.capacity_check import local_check
from bench.capacity_cpu import consumer_cpu, tracker_cpu
from bench.event_sizes import capture, sizes
from bench.stack import canned_kinesis, demo_stack


@dataclass(frozen=True)
class Amounts:
    """How much work each measurement does."""

    rounds: int
    tracker_requests: int  # per route and run
    consumer_events: int  # per run
    check_pixels: int  # per tracker
    check_clicks: int  # per tracker


FULL = Amounts(
    rounds=3,
    tracker_requests=50_000,
    consumer_events=30_000,
    check_pixels=20_000,
    check_clicks=2_000,
)
QUICK = Amounts(
    rounds=1, tracker_requests=10_000, consumer_events=5_000, check_pixels=2_000, check_clicks=200
)


def measure_capacity(quick: bool) -> dict[str, Any]:
    amounts = QUICK if quick else FULL
    # The bench's own clients (reading and feeding kinesalite) take credentials from the
    # environment; the emulators accept any.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "local")
    part: dict[str, Any] = {"rounds": amounts.rounds}
    with demo_stack() as stack:
        samples = capture(stack)
        part["sizes"] = sizes(samples)
        with canned_kinesis(stack) as to_canned:
            modes = {"plain": to_canned, "aggregated": {**to_canned, "SHIP_AGGREGATE": "true"}}
            part["tracker"] = tracker_cpu(stack, modes, amounts.tracker_requests, amounts.rounds)
        part["consumer"] = consumer_cpu(stack, samples, amounts.consumer_events, amounts.rounds)
    part["check"] = local_check(amounts.check_pixels, amounts.check_clicks)
    return part
