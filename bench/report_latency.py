"""How fast `reports serve` answers a 31-day hourly report, warm, on the local stack.

    .venv/bin/python -m bench.report_latency [--quick]

A moto server and a redis-server (processes), the reporting tables made and filled as
tests/support/report_stack.py does it: one program with a rollup item in every 15-minute
bucket of 31 days (2,976 items), each with the counters of a busy item and a dense HLL sketch
(the writer's lg_k and type) of a few thousand visitors, a day's audience overlapping from one
bucket to the next; the program in Redis as `tracker programs load` writes it; a report key.
Then `reports serve` as a process, warm-up requests and ~100 measured ones, one at a time
on one keep-alive connection: the 31-day hourly JSON report (the bar: p99 under 100 ms), and
for information the 366-day daily report over the same items (no item before the 31 days: the
same Query, 366 rows instead of 744). The first request of a report reads its range from the
table (`first_ms`: the cold answer); the later ones find the buckets and rows in the report
cache (reports/cached_reports.py), which asks moto for the items written since (the index
`changes`) at most once a second, behind the answers. Besides the latencies, the CPU that the
reports process and moto spent per request (/proc), which tells where a request's time goes.
The profile is that of a cold report.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from bench.bars import verdict
from bench.part_cli import run_part
from bench.procstat import cpu_seconds
from bench.rollup_cost import visitor_id
from reports.periods import bucket_span, periods
from reports.query import parse_query
from reports.report import report_json, summarize
from reports.rollups import RollupReader
from tests.support.programs import program, write_programs
from tests.support.proxy import EmulatorProxy
from tests.support.report_stack import (
    ReportsProcess,
    Tables,
    create_tables,
    dynamodb,
    fresh_tables,
    new_key,
    put_bucket,
    report_env,
    reports_process,
)
from tracker.devstack.processes import ManagedProcess, free_port, moto_server, redis_server

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

PROGRAM = "bench-report"
CUSTOMER = 4242
LAST_DAY = date(2026, 11, 30)  # any fixed day: the report's range is given, not "today"
BUCKETS_PER_DAY = 96
LATENCY_BAR_MS = 100.0  # p99 of the 31-day hourly report (the performance bar)
CONCURRENT_PUTS = 16
PROFILE_RUNS = 5
JSON_TYPE = "application/x-amz-json-1.0"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
# A busy item's counters (docs/reporting.md's names), as the writer leaves them.
COUNTS = {
    "impressions": 3_000,
    "billable_impressions": 2_950,
    "clicks": 30,
    "billable_clicks": 29,
    "ivt.IVT_KNOWN_CRAWLER": 40,
    "ivt.IVT_PREFETCH": 10,
    "ivt.IVT_DUPLICATE_CLICK": 1,
    "validation.OK": 3_030,
    "validation.INACTIVE": 2,
    "conversions": 3,
    "unattributed_conversions": 1,
    "revenue.EUR": 125_500_000,
    "revenue.USD": 19_990_000,
}


@dataclass(frozen=True, slots=True)
class Requests:
    warm_up: int
    measured: int  # at most: the measurement also stops after BUDGET_SECONDS


@dataclass(frozen=True, slots=True)
class Amounts:
    days: int
    visitors_per_bucket: int
    moto: Requests  # every Query answered by moto (seconds each)
    replayed: Requests  # moto's Query answers replayed


FULL = Amounts(31, 3_000, moto=Requests(10, 100), replayed=Requests(10, 100))
QUICK = Amounts(31, 3_000, moto=Requests(5, 30), replayed=Requests(5, 30))
TINY = Amounts(1, 600, moto=Requests(1, 2), replayed=Requests(1, 3))
BUDGET_SECONDS = 180.0  # per measured series: moto takes seconds per 31-day report


def bucket_names(days: int) -> list[str]:
    first = LAST_DAY - timedelta(days=days - 1)
    return [
        f"{first + timedelta(days=n // BUCKETS_PER_DAY)}T{n % 96 // 4:02d}:{n % 4 * 15:02d}Z"
        for n in range(days * BUCKETS_PER_DAY)
    ]


async def fill(client: DynamoDBClient, table: str, amounts: Amounts) -> int:
    """Every bucket of the days; each bucket's visitors overlap the previous one's by two
    thirds (a visitor comes back within the hour). Returns the items written."""
    slots = asyncio.Semaphore(CONCURRENT_PUTS)
    step = max(1, amounts.visitors_per_bucket // 3)

    async def one(number: int, bucket: str) -> None:
        first = number * step
        visitors = [visitor_id(v) for v in range(first, first + amounts.visitors_per_bucket)]
        async with slots:
            await put_bucket(client, table, PROGRAM, bucket, COUNTS, visitors)

    names = bucket_names(amounts.days)
    await asyncio.gather(*(one(n, name) for n, name in enumerate(names)))
    return len(names)


@dataclass(frozen=True, slots=True)
class Stack:
    moto: ManagedProcess
    redis: ManagedProcess

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.moto.port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"


@asynccontextmanager
async def local_stack() -> AsyncIterator[Stack]:
    """moto server and redis-server on free loopback ports, stopped at the end."""
    moto, redis = moto_server(free_port()), redis_server(free_port())
    moto.start()
    try:
        redis.start()
        try:
            yield Stack(moto, redis)
        finally:
            redis.stop()
    finally:
        moto.stop()


def report_path(days: int, granularity: str) -> str:
    first = LAST_DAY - timedelta(days=days - 1)
    return (
        f"/v1/reports/{PROGRAM}?from={first}&to={LAST_DAY}&granularity={granularity}"
        "&tz=UTC&format=json"
    )


async def timed_requests(
    session: aiohttp.ClientSession, url: str, key: str, requests: int
) -> list[float]:
    """Up to `requests` requests one after the other, for at most BUDGET_SECONDS:
    milliseconds from sending each to having its whole body."""
    headers = {"Authorization": f"Bearer {key}"}
    took: list[float] = []
    deadline = time.monotonic() + BUDGET_SECONDS
    while len(took) < requests and (not took or time.monotonic() < deadline):
        started = time.perf_counter()
        async with session.get(url, headers=headers, timeout=REQUEST_TIMEOUT) as response:
            body = await response.read()
        took.append(1000 * (time.perf_counter() - started))
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {body[:200]!r}")
    return took


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: for 100 values and 0.99, the 99th smallest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Pids:
    reports: int
    moto: int


async def measure_report(
    session: aiohttp.ClientSession, url: str, key: str, pids: Pids, requests: Requests
) -> dict[str, Any]:
    """Warm-up, then the measured requests with the CPU each process spent on them."""
    warm_up = await timed_requests(session, url, key, requests.warm_up)
    before = (cpu_seconds(pids.reports), cpu_seconds(pids.moto))
    took = await timed_requests(session, url, key, requests.measured)
    after = (cpu_seconds(pids.reports), cpu_seconds(pids.moto))
    async with session.get(url, headers={"Authorization": f"Bearer {key}"}) as response:
        report = await response.json()
    return {
        "requests": len(took),
        "first_ms": round(warm_up[0], 1) if warm_up else None,
        "p50_ms": round(statistics.median(took), 1),
        "p99_ms": round(percentile(took, 0.99), 1),
        "max_ms": round(max(took), 1),
        "mean_ms": round(statistics.fmean(took), 1),
        "reports_cpu_ms_per_request": round(1000 * (after[0] - before[0]) / len(took), 1),
        "moto_cpu_ms_per_request": round(1000 * (after[1] - before[1]) / len(took), 1),
        "rows": len(report["rows"]),
        "total_impressions": report["totals"]["impressions"],
        "total_uniques": report["totals"]["uniques"],
    }


class ReplayedQueries(EmulatorProxy):
    """Between `reports serve` and moto: passes every call on, keeping each Query's answer by
    its request body; once `replay` is set, a Query asked before is answered with the kept
    bytes at once. A report then costs what the reports process does with a fast store's
    pages (real DynamoDB adds its paging time), not moto's seconds of Query."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.replay = False
        self._answers: dict[bytes, bytes] = {}

    async def handle(self, request: web.Request, target: str, body: bytes) -> web.Response:
        if not target.endswith(".Query"):
            return await self.forward(request, body)
        if self.replay and body in self._answers:
            return web.Response(body=self._answers[body], content_type=JSON_TYPE)
        answer = await self.forward(request, body)
        if answer.status == 200 and isinstance(answer.body, bytes):
            self._answers[body] = answer.body
        return answer


async def prepare(stack: Stack, tables: Tables, amounts: Amounts) -> tuple[str, int, float]:
    """Tables, items, the program and a key: (the key, items written, seconds to write them)."""
    async with dynamodb(stack.moto_url) as client:
        await create_tables(client, tables)
        started = time.monotonic()
        items = await fill(client, tables.rollups, amounts)
        fill_seconds = time.monotonic() - started
        key = await new_key(client, tables, CUSTOMER)
    await write_programs(stack.redis_url, [program(PROGRAM, customer_id=CUSTOMER)])
    return key, items, fill_seconds


async def serve_and_measure(
    stack: Stack, proxy: ReplayedQueries, tables: Tables, key: str, amounts: Amounts
) -> dict[str, Any]:
    """`reports serve` behind the proxy: the hourly report on moto, then replayed; the
    366-day one replayed."""
    env = report_env(
        proxy.url,
        stack.redis_url,
        tables,
        REPORTS_RATE_LIMIT="1000000",  # this measures the report, not the limiter's 429
        REPORTS_READ_TIMEOUT_MS="60000",  # moto takes seconds for a page of a year's Query
    )
    async with reports_process(env) as reports, aiohttp.ClientSession() as session:
        assert stack.moto.process is not None
        pids = Pids(reports.process.pid, stack.moto.process.pid)
        hourly, yearly = _url(reports, amounts.days, "hour"), _url(reports, 366, "day")
        on_moto = await measure_report(session, hourly, key, pids, amounts.moto)
        await timed_requests(session, yearly, key, 1)  # its pages kept for the replay
        proxy.replay = True
        replayed = await measure_report(session, hourly, key, pids, amounts.replayed)
        year = await measure_report(session, yearly, key, pids, amounts.replayed)
    return {"hourly_moto": on_moto, "hourly": replayed, "daily_366": year}


async def run(amounts: Amounts) -> dict[str, Any]:
    tables = fresh_tables()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        # This process's clients and `reports serve` find credentials in the environment;
        # moto accepts any.
        os.environ.setdefault(name, "local")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    async with local_stack() as stack:
        key, items, fill_seconds = await prepare(stack, tables, amounts)
        proxy = await ReplayedQueries(stack.moto_url).start()
        try:
            reports = await serve_and_measure(stack, proxy, tables, key, amounts)
            where = await profile(proxy.url, tables, amounts.days)
        finally:
            await proxy.close()
    hourly = reports["hourly"]
    return {
        "items": items,
        "visitors_per_bucket": amounts.visitors_per_bucket,
        "fill_seconds": round(fill_seconds, 1),
        "days": amounts.days,
        **reports,
        "profile_ms": where,
        "bar": {
            "p99_ms_moto": reports["hourly_moto"]["p99_ms"],
            "p99_ms_replayed": hourly["p99_ms"],
            "bar_ms": LATENCY_BAR_MS,
            "holds": reports["hourly_moto"]["p99_ms"] < LATENCY_BAR_MS,
        },
    }


async def profile(endpoint: str, tables: Tables, days: int) -> dict[str, float]:
    """Where a replayed hourly report's time goes, in this process, the reports service's own
    code: the Query's pages read through botocore (its parsing, this thread's CPU), the merge of
    the buckets' counters and sketches (summarize), the JSON. Medians of PROFILE_RUNS."""
    first = LAST_DAY - timedelta(days=days - 1)
    query = parse_query(
        {"from": str(first), "to": str(LAST_DAY), "granularity": "hour", "tz": "UTC"}
    )
    spans = periods(query.first, query.last, query.granularity, query.zone)
    first_bucket, last_bucket = bucket_span(spans)
    runs: dict[str, list[float]] = {"query_client_cpu": [], "summarize": [], "json": []}
    async with dynamodb(endpoint) as client:
        reader = RollupReader(client, tables.rollups, 60.0)
        for _ in range(PROFILE_RUNS):
            started = time.thread_time()
            buckets = await reader.read(PROGRAM, first_bucket, last_bucket)
            read = time.thread_time()
            report = summarize(PROGRAM, query, spans, buckets)
            summarized = time.thread_time()
            json.dumps(report_json(report))
            done = time.thread_time()
            runs["query_client_cpu"].append(read - started)
            runs["summarize"].append(summarized - read)
            runs["json"].append(done - summarized)
    return {name: round(1000 * statistics.median(values), 1) for name, values in runs.items()}


def _url(reports: ReportsProcess, days: int, granularity: str) -> str:
    return reports.base_url + report_path(days, granularity)


def measure(amounts: Amounts) -> dict[str, Any]:
    return asyncio.run(run(amounts))


def summary(part: dict[str, Any]) -> str:
    lines = []
    for name in ("hourly_moto", "hourly", "daily_366"):
        row = part[name]
        lines.append(
            f"{name}: {row['rows']} rows from {part['items']} items, {row['requests']} requests: "
            f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']}, max {row['max_ms']}; CPU per request: "
            f"reports {row['reports_cpu_ms_per_request']} ms, moto {row['moto_cpu_ms_per_request']}"
        )
    lines.append(f"where a replayed hourly report's time goes (ms): {part['profile_ms']}")
    bar = part["bar"]
    lines.append(
        f"bar p99 < {bar['bar_ms']} ms: {bar['p99_ms_moto']} on moto ({verdict(bar['holds'])}); "
        f"{bar['p99_ms_replayed']} with moto's pages replayed"
    )
    return "\n".join(lines)


def main() -> None:
    run_part(__doc__, "fewer requests", measure, summary, (FULL, QUICK))


if __name__ == "__main__":
    main()
