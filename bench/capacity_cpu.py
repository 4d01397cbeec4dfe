"""CPU per request of the tracker and per event of the events consumer, for the capacity model.

Both are measured as process CPU (user + system, from /proc) around a bounded amount of work,
with the far end canned so that its work does not compete for the machine's two cores:

- the tracker ships to the canned Kinesis endpoint (bench/canned_kinesis.py); `hey -n` sends a
  fixed number of pixels or clicks, and the CPU counts until the shipper's buffer is empty;
- the consumer reads kinesalite (a real Kinesis API: GetRecords pages of JSON and base64, as in
  AWS) and writes to the canned DynamoDB endpoint (bench/canned_dynamodb.py); the bench puts a
  fixed number of events on the stream, plain or KPL-aggregated, and the CPU counts until the
  consumer has written them all. kinesalite is fed by the bench process, whose CPU is not counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from statistics import median
from typing import Any

from bench.canned_dynamodb import canned_dynamodb
from bench.event_sizes import mix_entries
from bench.hey import run_hey
from bench.metrics_probe import read_metric, wait_metric, wait_zero
from bench.procstat import cpu_seconds, idle_cpu_per_second
from bench.stack import BenchStack, metrics_url
from tests.support.kinesis import kinesis_client
from tracker.devstack.processes import ManagedProcess, free_port
from tracker.events.entry import Entry
from tracker.events.kpl import pack

CONCURRENCY = 100
ROUTES = (
    ("pixel", "/v1/pixel?program=demo-shoes"),
    # The defaults: no signing keys, the duplicate check on. hey's clicks all come from one
    # client, so all but the first are duplicates; each costs one SET NX either way.
    ("click", "/v1/click?program=demo-shoes"),
)
IDLE_SECONDS = 3.0
WRITE_TIMEOUT = 300.0
MAX_RECORDS_PER_CALL = 500
MAX_CALL_BYTES = 4 * 1024 * 1024  # under PutRecords' 5 MiB, base64 aside (the client's)
SHARDS = 2  # the bench stack's event stream (EVENT_STREAM_SHARDS' default)


def tracker_cpu(
    stack: BenchStack, modes: Mapping[str, Mapping[str, str]], requests: int, rounds: int
) -> dict[str, Any]:
    """Microseconds of tracker CPU per pixel and per click (one worker), for one tracker per
    mode (its extra settings), all running side by side: each round loads each tracker with each
    route in turn, so that the machine's drift (other work on its cores) falls on every mode
    alike. Redis's CPU per request beside it (the duplicate-click check)."""
    trackers = {}
    for mode, extra in modes.items():
        port = free_port()
        settings = {"TRACKER_PORT": str(port), **extra}
        trackers[mode] = stack.process(f"tracker {mode}", ["tracker", "serve"], port, settings)
    for tracker in trackers.values():
        tracker.start()
    try:
        time.sleep(1.0)  # bound, subscribed, the day's secret fetched
        runs = {mode: {name: list[dict[str, float]]() for name, _ in ROUTES} for mode in modes}
        for _ in range(rounds):
            for name, path in ROUTES:
                for mode, tracker in trackers.items():
                    runs[mode][name].append(_tracker_run(stack, tracker, path, requests))
        idle = {mode: _idle_cpu_per_second(tracker) for mode, tracker in trackers.items()}
    finally:
        for tracker in trackers.values():
            tracker.stop()
    return {
        mode: {
            "requests_per_run": requests,
            "concurrency": CONCURRENCY,
            "idle_cpu_ms_per_second": round(1000 * idle[mode], 2),
            **{name: _summary(samples) for name, samples in runs[mode].items()},
        }
        for mode in modes
    }


def _tracker_run(
    stack: BenchStack, tracker: ManagedProcess, path: str, requests: int
) -> dict[str, float]:
    assert tracker.process is not None
    assert stack.redis is not None
    assert stack.redis.process is not None
    pid, redis_pid = tracker.process.pid, stack.redis.process.pid
    before, redis_before = cpu_seconds(pid), cpu_seconds(redis_pid)
    result = run_hey(f"http://127.0.0.1:{tracker.port}{path}", CONCURRENCY, requests=requests)
    # The shipping of these requests' events belongs to them.
    wait_zero(f"http://127.0.0.1:{tracker.port}/metrics", "tracker_ship_buffer_depth", 60)
    time.sleep(0.3)
    answered = sum(result.responses.values())
    return {
        "us_per_request": 1e6 * (cpu_seconds(pid) - before) / answered,
        "redis_us_per_request": 1e6 * (cpu_seconds(redis_pid) - redis_before) / answered,
        "rps": result.requests_per_second,
        "errors": result.errors,
    }


def consumer_cpu(
    stack: BenchStack, samples: Mapping[str, bytes], events: int, rounds: int
) -> dict[str, Any]:
    """Microseconds of events-consumer CPU per event, plain and aggregated records alternating,
    `rounds` times each, `events` events per run in the model's traffic mix."""
    with canned_dynamodb(stack.env["AWS_ENDPOINT_URL_DYNAMODB"]) as canned:
        consumer = stack.events_consumer({"AWS_ENDPOINT_URL_DYNAMODB": canned.url})
        consumer.start()
        try:
            metrics = metrics_url(consumer)
            wait_metric(metrics, "consumer_leases_held", SHARDS, 60)
            time.sleep(2.0)  # whatever the stream held already is written
            idle = _idle_cpu_per_second(consumer)
            runs: dict[str, list[dict[str, float]]] = {"plain": [], "aggregated": []}
            for _ in range(rounds):
                for mode, aggregate in (("plain", False), ("aggregated", True)):
                    entries = mix_entries(samples, events)
                    records = pack(entries) if aggregate else entries
                    runs[mode].append(_consumer_run(stack, consumer, metrics, records, events))
        finally:
            consumer.stop()
        answered_writes = canned.write_requests
    return {
        "events_per_run": events,
        "idle_cpu_ms_per_second": round(1000 * idle, 2),
        "write_requests_answered": answered_writes,
        **{mode: _summary(samples_) for mode, samples_ in runs.items()},
    }


def _consumer_run(
    stack: BenchStack,
    consumer: ManagedProcess,
    metrics: str,
    records: list[Entry],
    events: int,
) -> dict[str, float]:
    assert consumer.process is not None
    pid = consumer.process.pid
    written = read_metric(metrics, "consumer_events_written_total")
    before, started = cpu_seconds(pid), time.monotonic()
    asyncio.run(_put(stack, records))
    wait_metric(metrics, "consumer_events_written_total", written + events, WRITE_TIMEOUT)
    seconds = time.monotonic() - started
    return {
        "us_per_event": 1e6 * (cpu_seconds(pid) - before) / events,
        "records": len(records),
        "seconds": seconds,
        "events_per_second": events / seconds,
    }


async def _put(stack: BenchStack, records: list[Entry]) -> None:
    """Put the records on the stack's event stream in PutRecords calls within Kinesis' limits
    (500 records, 5 MiB): aggregated records are ~50 KB each."""
    stream = stack.env.get("EVENT_STREAM", "tracking-events")
    async with kinesis_client(stack.env["AWS_ENDPOINT_URL_KINESIS"]) as client:
        for call in _calls(records):
            answer = await client.put_records(
                StreamName=stream,
                Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in call],
            )
            if answer.get("FailedRecordCount", 0):
                raise RuntimeError(f"kinesalite refused {answer['FailedRecordCount']} records")


def _calls(records: list[Entry]) -> Iterator[list[Entry]]:
    call: list[Entry] = []
    size = 0
    for record in records:
        if call and (len(call) == MAX_RECORDS_PER_CALL or size + len(record.data) > MAX_CALL_BYTES):
            yield call
            call, size = [], 0
        call.append(record)
        size += len(record.data) + len(record.partition_key)
    if call:
        yield call


def _idle_cpu_per_second(process: ManagedProcess) -> float:
    assert process.process is not None
    (idle,) = idle_cpu_per_second([process.process.pid], IDLE_SECONDS)
    return idle


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Each figure's median over the runs, and the runs themselves (rounded)."""
    keys = runs[0].keys()
    return {
        "median": {key: round(median(run[key] for run in runs), 2) for key in keys},
        "runs": [{key: round(run[key], 2) for key in keys} for run in runs],
    }
