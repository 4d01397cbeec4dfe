"""The report cache of `reports serve` (reports/bucket_cache.py, reports/cached_reports.py)
against a real moto server: updates of recent and old buckets show in the next report, a wider
range reads what is missing, the bound holds, cached reports equal uncached ones on random data,
and `consumers init` makes the rollup table's index `changes` (fresh, and on an older table)."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiobotocore.session import get_session

from consumers.provision import provision
from consumers.settings import ConsumerSettings
from reports.bucket_cache import BucketCache
from reports.cached_reports import ALWAYS_REFRESH, CHANGE_MARGIN_MS, CachedReports, Freshness
from reports.periods import bucket_name
from reports.query import ReportQuery, parse_query
from reports.report import Report, build_report
from reports.rollups import BucketRow, RollupReader
from tests.support.consumers import consumer_env
from tests.support.report_stack import create_rollup_table, sketch_of
from tests.test_rollup_reader import put_items, rollup_item

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

DAY1 = datetime(2030, 3, 10, tzinfo=UTC)
NO_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
async def dynamodb(moto_url: str) -> AsyncIterator[DynamoDBClient]:
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_url
    ) as client:
        yield client


@pytest.fixture
async def table(dynamodb: DynamoDBClient) -> str:
    return await create_rollup_table(dynamodb)


class CountingReader(RollupReader):
    """The reader, its calls recorded: ("read", first, last) and ("changed", after_ms)."""

    def __init__(self, dynamodb: DynamoDBClient, table: str) -> None:
        super().__init__(dynamodb, table, 10)
        self.calls: list[tuple[Any, ...]] = []

    async def read(self, program_id: str, first_bucket: str, last_bucket: str) -> list[BucketRow]:
        self.calls.append(("read", first_bucket, last_bucket))
        return await super().read(program_id, first_bucket, last_bucket)

    async def changed(self, program_id: str, after_ms: int) -> list[BucketRow]:
        self.calls.append(("changed", after_ms))
        return await super().changed(program_id, after_ms)


def item(start: datetime, counts: dict[str, int], version: int = 1, **extra: Any) -> Any:
    """A rollup item of program p1 written now (or at `updated_ms`)."""
    written = rollup_item("p1", start, counts, extra.get("sketch"))
    written["version"] = {"N": str(version)}
    now_ms = time.time_ns() // 1_000_000
    written["updated_ms"] = {"N": str(extra.get("updated_ms", now_ms))}
    return written


def query(first: str, last: str, granularity: str = "hour", tz: str = "UTC") -> ReportQuery:
    return parse_query({"from": first, "to": last, "granularity": granularity, "tz": tz})


async def uncached(dynamodb: DynamoDBClient, table: str, asked: ReportQuery) -> Report:
    return await build_report(RollupReader(dynamodb, table, 10), "p1", asked)


async def test_updates_of_recent_and_old_buckets_show_in_the_next_report(
    dynamodb: DynamoDBClient, table: str
) -> None:
    quarters = [DAY1 + timedelta(minutes=15 * n) for n in range(8)]
    await put_items(dynamodb, table, [item(q, {"impressions": 1}) for q in quarters])
    reader = CountingReader(dynamodb, table)
    reports = CachedReports(reader, BucketCache(10_000), ALWAYS_REFRESH)
    asked = query("2030-03-10", "2030-03-10")
    first = await reports.build("p1", asked)
    assert first.totals.counts["impressions"] == 8
    assert reader.calls == [("read", "2030-03-10T00:00Z", "2030-03-10T23:45Z")]
    # The newest bucket written again, and one hours old written late (version+1, written now).
    await put_items(
        dynamodb,
        table,
        [
            item(quarters[7], {"impressions": 5}, 2, sketch=sketch_of(["a", "b", "c"])),
            item(quarters[0], {"impressions": 10, "clicks": 2}, 2),
        ],
    )
    second = await reports.build("p1", asked)
    assert [call[0] for call in reader.calls[1:]] == ["changed"]
    assert second.rows[0].counts["impressions"] == 1 + 1 + 1 + 10
    assert second.rows[0].counts["clicks"] == 2
    assert second.rows[1].counts["impressions"] == 1 + 1 + 1 + 5
    assert second.rows[1].uniques == 3
    assert second.totals.counts["impressions"] == 6 + 5 + 10
    assert second.totals.uniques == 3
    assert second == await uncached(dynamodb, table, asked)


async def test_the_change_query_reaches_back_by_the_margin(
    dynamodb: DynamoDBClient, table: str
) -> None:
    # A write that landed after the last refresh began but carries an earlier `updated_ms`
    # (the writer's clock is behind, or the index showed it late) is still found.
    await put_items(dynamodb, table, [item(DAY1, {"impressions": 1})])
    clock = [time.time()]
    reader = RollupReader(dynamodb, table, 10)
    reports = CachedReports(reader, BucketCache(10_000), ALWAYS_REFRESH, lambda: clock[0])
    asked = query("2030-03-10", "2030-03-10", "day")
    await reports.build("p1", asked)
    behind_ms = int(clock[0] * 1000) - CHANGE_MARGIN_MS // 2
    await put_items(dynamodb, table, [item(DAY1, {"impressions": 7}, 2, updated_ms=behind_ms)])
    clock[0] += 1
    assert (await reports.build("p1", asked)).totals.counts["impressions"] == 7


async def test_a_fresh_cache_answers_alone_then_refreshes_behind_then_first(
    dynamodb: DynamoDBClient, table: str
) -> None:
    await put_items(dynamodb, table, [item(DAY1, {"impressions": 1})])
    clock = [time.time()]
    reader = CountingReader(dynamodb, table)
    reports = CachedReports(reader, BucketCache(10_000), Freshness(1_000, 5_000), lambda: clock[0])
    asked = query("2030-03-10", "2030-03-10", "day")
    await reports.build("p1", asked)
    await put_items(dynamodb, table, [item(DAY1, {"impressions": 2}, 2)])
    clock[0] += 0.5  # refreshed half a second ago: the cache alone, no store call
    assert (await reports.build("p1", asked)).totals.counts["impressions"] == 1
    assert len(reader.calls) == 1
    clock[0] += 1  # 1.5 s: the cache answers, a refresh starts behind it
    assert (await reports.build("p1", asked)).totals.counts["impressions"] == 1
    await reports.close()  # (cancels it if it is still running; moto may be slow)
    await reports._refresh_held("p1", reports._cache.program("p1"))
    assert (await reports.build("p1", asked)).totals.counts["impressions"] == 2
    await put_items(dynamodb, table, [item(DAY1, {"impressions": 3}, 3)])
    clock[0] += 6  # past 5 s: the report waits for the refresh
    assert (await reports.build("p1", asked)).totals.counts["impressions"] == 3
    assert [call[0] for call in reader.calls] == ["read"] + ["changed"] * (len(reader.calls) - 1)


async def test_an_older_copy_from_the_index_never_replaces_a_newer_one(
    dynamodb: DynamoDBClient, table: str
) -> None:
    await put_items(dynamodb, table, [item(DAY1, {"impressions": 3}, 5)])
    reader = CountingReader(dynamodb, table)
    reports = CachedReports(reader, BucketCache(10_000), ALWAYS_REFRESH)
    asked = query("2030-03-10", "2030-03-10", "day")
    await reports.build("p1", asked)
    stale = BucketRow(bucket_name(DAY1), DAY1, {"impressions": 1}, None, 4)

    async def lagging(program_id: str, after_ms: int) -> list[BucketRow]:
        return [stale]

    reader.changed = lagging  # type: ignore[method-assign]
    assert (await reports.build("p1", asked)).totals.counts["impressions"] == 3


async def test_a_wider_range_reads_only_the_missing_buckets(
    dynamodb: DynamoDBClient, table: str
) -> None:
    days = [DAY1 + timedelta(days=n, hours=12) for n in range(5)]
    await put_items(dynamodb, table, [item(d, {"clicks": n + 1}) for n, d in enumerate(days)])
    reader = CountingReader(dynamodb, table)
    reports = CachedReports(reader, BucketCache(10_000), ALWAYS_REFRESH)
    await reports.build("p1", query("2030-03-11", "2030-03-12", "day"))
    wide = query("2030-03-10", "2030-03-14", "day")
    report = await reports.build("p1", wide)
    assert [row.counts["clicks"] for row in report.rows] == [1, 2, 3, 4, 5]
    assert reader.calls[1:] == [
        ("changed", reader.calls[1][1]),
        ("read", "2030-03-10T00:00Z", "2030-03-11T00:00Z"),
        ("read", "2030-03-12T23:45Z", "2030-03-14T23:45Z"),
    ]
    assert report == await uncached(dynamodb, table, wide)
    # A range apart from the cached one: the gap is read too, and every later report is whole.
    later = query("2030-03-20", "2030-03-20", "day")
    await reports.build("p1", later)
    assert reader.calls[-1] == ("read", "2030-03-14T23:45Z", "2030-03-20T23:45Z")
    assert await reports.build("p1", wide) == await uncached(dynamodb, table, wide)


async def test_the_bound_drops_the_least_recently_used_programs(
    dynamodb: DynamoDBClient, table: str
) -> None:
    programs = ["p1", "p2", "p3"]
    items = []
    for program_id in programs:
        for n in range(96):
            one = item(DAY1 + timedelta(minutes=15 * n), {"events": 1})
            one["program_id"] = {"S": program_id}
            items.append(one)
    await put_items(dynamodb, table, items)
    cache = BucketCache(250)  # a day by hour is 96 buckets and 24 + 1 sums: 121
    reader = CountingReader(dynamodb, table)
    reports = CachedReports(reader, cache, ALWAYS_REFRESH)
    asked = query("2030-03-10", "2030-03-10")
    for program_id in programs:
        assert (await reports.build(program_id, asked)).totals.counts["events"] == 96
    assert cache.weight <= 250
    assert ("p1" in cache, "p2" in cache, "p3" in cache) == (False, True, True)
    await reports.build("p2", asked)  # p2 now the most recent: p3 goes next
    await reports.build("p1", asked)
    assert ("p1" in cache, "p2" in cache, "p3" in cache) == (True, True, False)
    assert [call[0] for call in reader.calls] == ["read"] * 3 + ["changed", "read"]
    # A program alone past the bound is not kept at all: every report reads it whole.
    tiny = CachedReports(reader, BucketCache(50), ALWAYS_REFRESH)
    assert (await tiny.build("p1", asked)).totals.counts["events"] == 96
    assert tiny.size() == 0


def random_items(rng: random.Random, days: int) -> list[Any]:
    items = []
    for n in range(days * 96):
        if rng.random() < 0.3:
            continue  # a quarter hour without events: no item
        counts = {name: rng.randrange(0, 50) for name in ("impressions", "clicks", "events")}
        counts[rng.choice(["revenue.EUR", "revenue.USD", "ivt.IVT_PREFETCH"])] = rng.randrange(99)
        visitors = [f"v{rng.randrange(400)}" for _ in range(rng.randrange(0, 30))]
        sketch = sketch_of(visitors) if visitors else None
        items.append(item(DAY1 + timedelta(minutes=15 * n), counts, 1, sketch=sketch))
    return items


async def test_cached_reports_equal_uncached_ones_on_random_data(
    dynamodb: DynamoDBClient, table: str
) -> None:
    rng = random.Random(20301)
    items = random_items(rng, 4)
    await put_items(dynamodb, table, items)
    reports = CachedReports(RollupReader(dynamodb, table, 10), BucketCache(100_000), ALWAYS_REFRESH)
    zones = ["UTC", "Asia/Kathmandu", "America/St_Johns", "Australia/Eucla"]
    first = date(2030, 3, 9)
    for step in range(12):
        start = first + timedelta(days=rng.randrange(3))
        end = start + timedelta(days=rng.randrange(3))
        asked = query(str(start), str(end), rng.choice(["hour", "day"]), rng.choice(zones))
        assert await reports.build("p1", asked) == await uncached(dynamodb, table, asked), step
        changed = []
        for old in rng.sample(items, 5):  # rewritten: newer version, other counts and visitors
            version = int(old["version"]["N"]) + 1
            start_of = datetime.strptime(old["bucket"]["S"], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
            sketch = sketch_of([f"w{rng.randrange(400)}" for _ in range(rng.randrange(1, 20))])
            new = item(start_of, {"clicks": rng.randrange(100)}, version, sketch=sketch)
            items[items.index(old)] = new
            changed.append(new)
        await put_items(dynamodb, table, changed)


async def test_init_creates_the_changes_index_on_a_fresh_and_on_an_older_table(
    kinesalite_url: str, moto_url: str, dynamodb: DynamoDBClient
) -> None:
    fresh = ConsumerSettings.from_env(consumer_env(kinesalite_url, moto_url, NO_REDIS, 1))
    done = await provision(fresh)
    assert done[f"index:{fresh.rollup_table}/changes"] == "created"
    await assert_changes_index(dynamodb, fresh.rollup_table)
    older = ConsumerSettings.from_env(consumer_env(kinesalite_url, moto_url, NO_REDIS, 1))
    await dynamodb.create_table(
        TableName=older.rollup_table,
        KeySchema=[
            {"AttributeName": "program_id", "KeyType": "HASH"},
            {"AttributeName": "bucket", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "program_id", "AttributeType": "S"},
            {"AttributeName": "bucket", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    await put_items(dynamodb, older.rollup_table, [item(DAY1, {"impressions": 2})])
    done = await provision(older)
    assert done[f"table:{older.rollup_table}"] == "exists"
    assert done[f"index:{older.rollup_table}/changes"] == "created"
    await assert_changes_index(dynamodb, older.rollup_table)
    found = await RollupReader(dynamodb, older.rollup_table, 10).changed("p1", 0)
    assert [row.counts for row in found] == [{"impressions": 2}]
    again = await provision(older)
    assert again[f"index:{older.rollup_table}/changes"] == "exists"


async def assert_changes_index(dynamodb: DynamoDBClient, table: str) -> None:
    described = (await dynamodb.describe_table(TableName=table))["Table"]
    (index,) = described["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "changes"
    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
        ("program_id", "HASH"),
        ("updated_ms", "RANGE"),
    ]
    assert index["Projection"]["ProjectionType"] == "ALL"
    types = {a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]}
    assert types["updated_ms"] == "N"
