"""How soon a counted event shows in the reporting API, on the local stack.

    .venv/bin/python -m bench.rollup_freshness [--tries N]

kinesalite, moto and redis-server (bench/stack.py: the consumers' tables and streams made by
`consumers init`, the demo programs loaded), one `consumers events` process with the default
CONSUMER_POLL_MS (1 s: at the stream's tip a reader waits that long between GetRecords), and
`reports serve`. Each try puts one event on the event stream as the tracker ships it (a
pixel of the demo program, a PutRecord with its message id as the partition key; its time is
the put's) at t0, after a random pause (so that puts fall at any point of the readers' poll),
then asks for the program's hourly report of the event's UTC day every 100 ms until its
totals count one impression more than before. The figure is seconds from just before the put
to the first answer that counts it: an upper bound of the time from the consumer's read to the
report (the read itself comes up to one poll after the put). The bar: within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bench.bars import seconds_against, verdict
from bench.demo_programs import DEMO_PROGRAM_ID, demo_program
from bench.metrics_probe import wait_metric
from bench.rollup_cost import templates, visitor_id
from bench.stack import BenchStack, demo_stack, metrics_url
from tests.support.kinesis import kinesis_client
from tests.support.report_stack import (
    Tables,
    dynamodb,
    new_key,
    report_env,
    reports_process,
)

SHARDS = 2  # the bench stack's event stream
FRESHNESS_BAR_SECONDS = 10.0
POLL_SECONDS = 0.1  # how often the API is asked
TRY_TIMEOUT_SECONDS = 30.0  # a try that takes longer has failed; the run stops there
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)
TABLES = Tables("tracking-rollups", "tracking-report-keys")  # the consumers' defaults
# The defaults (the bench stack sets a poll of 200 ms)
CONSUMER_SETTINGS = {"CONSUMER_POLL_MS": "1000", "CONSUMER_TIP_WAIT_MS": "2000"}


def pixel_event(rng: random.Random) -> tuple[str, bytes, int]:
    """A pixel of the demo program as the tracker makes it: (message id, bytes, its time)."""
    _, event = next((kind, e) for kind, e in templates() if kind.name == "pixel")
    event.message_id = rng.randbytes(16).hex()
    event.timestamp_ms = int(time.time() * 1000)
    event.visitor_id = visitor_id(rng.randrange(2**64))
    return event.message_id, event.SerializeToString(), event.timestamp_ms


class Api:
    """The program's hourly report of one UTC day, through `reports serve`."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, key: str) -> None:
        self._session = session
        self._base_url = base_url
        self._headers = {"Authorization": f"Bearer {key}"}

    async def impressions(self, timestamp_ms: int) -> int:
        day = datetime.fromtimestamp(timestamp_ms / 1000, UTC).date()
        url = (
            f"{self._base_url}/v1/reports/{DEMO_PROGRAM_ID}?from={day}&to={day}"
            "&granularity=hour&tz=UTC"
        )
        async with self._session.get(
            url, headers=self._headers, timeout=REQUEST_TIMEOUT
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"report: {response.status} {await response.text()}")
            report = await response.json()
        return int(report["totals"]["impressions"])


async def one_try(api: Api, put: Any, rng: random.Random) -> float:
    """Seconds from the put of one new event to the first report that counts it."""
    await asyncio.sleep(rng.uniform(0.0, 1.0))
    message_id, data, timestamp_ms = pixel_event(rng)
    before = await api.impressions(timestamp_ms)
    started = time.perf_counter()
    await put(Data=data, PartitionKey=message_id)
    while await api.impressions(timestamp_ms) <= before:
        if time.perf_counter() - started > TRY_TIMEOUT_SECONDS:
            raise TimeoutError(f"the event was not in the report after {TRY_TIMEOUT_SECONDS} s")
        await asyncio.sleep(POLL_SECONDS)
    return time.perf_counter() - started


async def tries(stack: BenchStack, count: int) -> list[float]:
    """`count` tries, one after the other, against `reports serve` on the stack."""
    moto_url = stack.env["AWS_ENDPOINT_URL_DYNAMODB"]
    async with dynamodb(moto_url) as client:
        key = await new_key(client, TABLES, demo_program().customer_id)
    env = report_env(moto_url, stack.env["REDIS_URL"], TABLES)
    stream = stack.env.get("EVENT_STREAM", "tracking-events")
    rng = random.Random(20261206)
    async with (
        reports_process(env) as reports,
        aiohttp.ClientSession() as session,
        kinesis_client(stack.env["AWS_ENDPOINT_URL_KINESIS"]) as kinesis,
    ):
        api = Api(session, reports.base_url, key)

        async def put(**record: Any) -> None:
            await kinesis.put_record(StreamName=stream, **record)

        return [await one_try(api, put, rng) for _ in range(count)]


def measure(count: int) -> dict[str, Any]:
    """The stack, one events consumer holding both shards, then the tries."""
    with demo_stack() as stack:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            # The bench's own clients find credentials in the environment, as the processes do.
            os.environ.setdefault(name, stack.env[name])
        consumer = stack.events_consumer(CONSUMER_SETTINGS)
        consumer.start()
        try:
            wait_metric(metrics_url(consumer), "consumer_leases_held", SHARDS, 60)
            seconds = asyncio.run(tries(stack, count))
        finally:
            consumer.stop()
    return {
        "tries": count,
        "consumer_poll_ms": int(CONSUMER_SETTINGS["CONSUMER_POLL_MS"]),
        "api_poll_ms": round(1000 * POLL_SECONDS),
        **seconds_against(seconds, FRESHNESS_BAR_SECONDS),
    }


def summary(part: dict[str, Any]) -> str:
    bar = part["bar"]
    return (
        f"put to visible in the report: median {part['median_seconds']} s, max "
        f"{part['max_seconds']} s over {part['tries']} tries ({part['seconds']}); "
        f"bar <= {bar['bar_seconds']} s: {verdict(bar['holds'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--tries", type=int, default=5, help="events put one after the other (1-20)"
    )
    args = parser.parse_args()
    part = measure(max(1, min(args.tries, 20)))
    print(summary(part))
    print(json.dumps(part, indent=2))


if __name__ == "__main__":
    main()
