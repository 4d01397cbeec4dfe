"""Reports built from a real moto server's rollup table: rows per local hour or day in any zone
(DST days, :30 and :45 offsets), zeros without data, merged uniques, revenue, totals, the JSON
and CSV shapes, and `reports show`."""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import datasketches
import pytest
from aiobotocore.session import get_session

from reports.csv_rows import csv_header, neutralise, report_csv
from reports.fields import COUNTER_NAMES, IVT_NAMES, VALIDATION_NAMES
from reports.periods import QUARTER, periods
from reports.query import ReportQuery, parse_query
from reports.report import Report, build_report, report_json, row_json
from reports.rollups import RollupReader
from reports.settings import ReportSettings
from reports.show import run_show, show
from tests.support.report_stack import create_rollup_table
from tests.test_rollup_reader import put_items, rollup_item
from tracker.devstack.processes import free_port

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

ROW_FIELDS = [
    "period",
    "impressions",
    "clicks",
    "events",
    "billable_impressions",
    "billable_clicks",
    "uniques",
    "ivt",
    "validation",
    "conversions",
    "unattributed_conversions",
    "revenue",
]


@pytest.fixture
async def dynamodb(moto_url: str) -> AsyncIterator[DynamoDBClient]:
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_url
    ) as client:
        yield client


@pytest.fixture
async def table(dynamodb: DynamoDBClient) -> str:
    return await create_rollup_table(dynamodb)


def ask(first: date, last: date, granularity: str, tz: str = "UTC") -> ReportQuery:
    params = {"from": first.isoformat(), "to": last.isoformat(), "granularity": granularity}
    return parse_query({**params, "tz": tz})


async def report_of(
    dynamodb: DynamoDBClient, table: str, query: ReportQuery, program_id: str = "p1"
) -> Report:
    return await build_report(RollupReader(dynamodb, table, 10), program_id, query)


def quarters(first: datetime, last: datetime) -> list[datetime]:
    """Every UTC quarter hour from `first` to `last`, both included."""
    return [first + QUARTER * n for n in range(int((last - first) / QUARTER) + 1)]


def local_hour_label(instant: datetime, zone: ZoneInfo) -> str:
    """The oracle: the label of the local hour an instant falls in, by the zone's own clock
    (exact for every zone here, whose offsets change on whole local hours)."""
    return instant.astimezone(zone).replace(minute=0).isoformat()


@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        ("Europe/Berlin", date(2026, 3, 29), 23),
        ("Europe/Berlin", date(2026, 10, 25), 25),
        ("Asia/Kolkata", date(2026, 5, 1), 24),
        ("Asia/Kathmandu", date(2026, 5, 1), 24),
        ("America/St_Johns", date(2026, 1, 15), 24),
        ("America/St_Johns", date(2026, 3, 8), 23),
        ("America/St_Johns", date(2026, 11, 1), 25),
        ("UTC", date(2026, 5, 1), 24),
    ],
)
async def test_hourly_rows_take_exactly_their_quarter_hours(
    dynamodb: DynamoDBClient, table: str, tz: str, day: date, hours: int
) -> None:
    zone = ZoneInfo(tz)
    [span] = periods(day, day, "day", zone)
    # Every quarter of the day and three hours either side; each bucket's clicks name it.
    instants = quarters(span.start - timedelta(hours=3), span.end + timedelta(hours=3))
    await put_items(
        dynamodb,
        table,
        [rollup_item("p1", t, {"impressions": 1, "clicks": n}) for n, t in enumerate(instants)],
    )
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for n, instant in enumerate(instants):
        if instant.astimezone(zone).date() == day:
            expected[local_hour_label(instant, zone)][0] += 1
            expected[local_hour_label(instant, zone)][1] += n
    report = await report_of(dynamodb, table, ask(day, day, "hour", tz))
    got = {row.period: [row.counts["impressions"], row.counts["clicks"]] for row in report.rows}
    assert len(report.rows) == hours
    assert got == dict(expected)
    assert report.totals.counts["impressions"] == 4 * hours
    daily = await report_of(dynamodb, table, ask(day, day, "day", tz))
    assert [row.period for row in daily.rows] == [span.label]
    assert daily.rows[0].counts == report.totals.counts


async def test_daily_rows_are_the_sums_of_their_hours(dynamodb: DynamoDBClient, table: str) -> None:
    tz, first, last = "Europe/Berlin", date(2026, 10, 24), date(2026, 10, 26)
    [start, *_, end] = periods(first, last, "hour", ZoneInfo(tz))
    instants = quarters(start.start, end.end - QUARTER)
    await put_items(
        dynamodb,
        table,
        [
            rollup_item("p1", t, {"events": n % 7, "ivt.IVT_PREFETCH": 1})
            for n, t in enumerate(instants)
        ],
    )
    hourly = await report_of(dynamodb, table, ask(first, last, "hour", tz))
    daily = await report_of(dynamodb, table, ask(first, last, "day", tz))
    assert [len(hourly.rows), len(daily.rows)] == [24 + 25 + 24, 3]
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTER_NAMES, 0))
    for row in hourly.rows:
        assert row.period is not None
        for name, value in row.counts.items():
            sums[row.period[:10]][name] += value
    assert [dict(row.counts) for row in daily.rows] == list(sums.values())
    assert daily.totals.counts == hourly.totals.counts
    assert daily.totals.counts["ivt.IVT_PREFETCH"] == len(instants)


async def test_a_range_without_data_is_all_zeros(dynamodb: DynamoDBClient, table: str) -> None:
    report = await report_of(dynamodb, table, ask(date(2026, 1, 1), date(2026, 1, 7), "day"))
    body = report_json(report)
    assert [row["period"] for row in body["rows"]] == [
        f"2026-01-0{d}T00:00:00+00:00" for d in range(1, 8)
    ]
    zero: dict[str, Any] = {
        **{name: 0 for name in ROW_FIELDS[1:7]},
        "ivt": dict.fromkeys(IVT_NAMES, 0),
        "validation": dict.fromkeys(VALIDATION_NAMES, 0),
        "conversions": 0,
        "unattributed_conversions": 0,
        "revenue": {},
    }
    assert all({k: v for k, v in row.items() if k != "period"} == zero for row in body["rows"])
    assert body["totals"] == zero
    assert set(zero["ivt"]) == {
        "IVT_KNOWN_CRAWLER",
        "IVT_PREFETCH",
        "IVT_DUPLICATE_CLICK",
        "IVT_BAD_SIGNATURE",
        "IVT_EXPIRED_LINK",
    }
    assert "VALIDATION_UNSPECIFIED" not in zero["validation"]
    assert "OK" in zero["validation"]


async def test_ranges_at_their_limits(dynamodb: DynamoDBClient, table: str) -> None:
    await put_items(
        dynamodb,
        table,
        [rollup_item("p1", datetime.fromisoformat("2024-06-01T12:00+00:00"), {"clicks": 5})],
    )
    hourly = await report_of(dynamodb, table, ask(date(2024, 5, 15), date(2024, 6, 14), "hour"))
    assert len(hourly.rows) == 31 * 24
    assert hourly.totals.counts["clicks"] == 5
    daily = await report_of(dynamodb, table, ask(date(2024, 1, 1), date(2024, 12, 31), "day"))
    assert len(daily.rows) == 366
    assert [row.counts["clicks"] for row in daily.rows if row.counts["clicks"]] == [5]


def sketch_of(visitors: range | list[int]) -> bytes:
    sketch = datasketches.hll_sketch(12, datasketches.HLL_4)
    for visitor in visitors:
        sketch.update(f"visitor-{visitor}")
    return bytes(sketch.serialize_compact())


async def test_uniques_are_merged_never_summed(dynamodb: DynamoDBClient, table: str) -> None:
    # Hour h sees visitors [500h, 500h + 1000): each overlaps the next by half. Each hour's
    # visitors are spread over its four quarter-hour buckets.
    day = datetime.fromisoformat("2026-05-01T00:00+00:00")
    items = []
    for hour in range(24):
        visitors = range(500 * hour, 500 * hour + 1000)
        for q in range(4):
            start = day + timedelta(hours=hour) + q * QUARTER
            items.append(
                rollup_item("p1", start, {"billable_impressions": 1}, sketch_of(visitors[q::4]))
            )
    await put_items(dynamodb, table, items)
    exact = 500 * 23 + 1000  # 12,500 distinct
    daily = await report_of(dynamodb, table, ask(date(2026, 5, 1), date(2026, 5, 2), "day"))
    assert abs(daily.rows[0].uniques - exact) <= 0.02 * exact
    assert daily.rows[1].uniques == 0
    assert daily.totals.uniques == daily.rows[0].uniques
    hourly = await report_of(dynamodb, table, ask(date(2026, 5, 1), date(2026, 5, 1), "hour"))
    assert all(abs(row.uniques - 1000) <= 30 for row in hourly.rows)
    assert sum(row.uniques for row in hourly.rows) > 1.8 * exact  # what summing would give
    assert abs(hourly.totals.uniques - exact) <= 0.02 * exact


async def test_unreadable_sketch_only_loses_its_visitors(
    dynamodb: DynamoDBClient, table: str
) -> None:
    day = datetime.fromisoformat("2026-05-01T00:00+00:00")
    await put_items(
        dynamodb,
        table,
        [
            rollup_item("p1", day, {"clicks": 1}, sketch_of(range(100))),
            rollup_item("p1", day + QUARTER, {"clicks": 1}, b"not a sketch"),
        ],
    )
    report = await report_of(dynamodb, table, ask(date(2026, 5, 1), date(2026, 5, 1), "day"))
    assert report.totals.counts["clicks"] == 2
    assert report.totals.uniques == 100


async def revenue_report(dynamodb: DynamoDBClient, table: str) -> Report:
    first = datetime.fromisoformat("2026-05-01T10:00+00:00")
    counts = [
        {"conversions": 2, "revenue.EUR": 12_345_000, "revenue.eur": 9, "unknown": 7},
        {"unattributed_conversions": 1, "revenue.USD": 1, "revenue.EURO": 5},
        {"revenue.EUR": 100_000_000, "validation.OK": 3, "validation.UNKNOWN_PROGRAM": 1},
        {"impressions": 4, "billable_impressions": 3, "ivt.IVT_KNOWN_CRAWLER": 1, "ivt.X": 8},
    ]
    await put_items(
        dynamodb,
        table,
        [rollup_item("p1", first + timedelta(hours=n), c) for n, c in enumerate(counts)],
    )
    return await report_of(dynamodb, table, ask(date(2026, 5, 1), date(2026, 5, 1), "hour"))


async def test_json_rows_revenue_and_totals(dynamodb: DynamoDBClient, table: str) -> None:
    body = report_json(await revenue_report(dynamodb, table))
    assert list(body) == ["program_id", "tz", "granularity", "from", "to", "rows", "totals"]
    assert (body["program_id"], body["tz"], body["granularity"]) == ("p1", "UTC", "hour")
    assert (body["from"], body["to"]) == ("2026-05-01", "2026-05-01")
    rows = body["rows"]
    assert all(list(row) == ROW_FIELDS for row in rows)
    assert list(body["totals"]) == ROW_FIELDS[1:]
    assert rows[10]["revenue"] == {"EUR": "12.345", "USD": "0"}
    assert rows[11]["revenue"] == {"EUR": "0", "USD": "0.000001"}
    assert rows[0]["revenue"] == {"EUR": "0", "USD": "0"}
    totals = body["totals"]
    assert totals["revenue"] == {"EUR": "112.345", "USD": "0.000001"}
    assert (totals["conversions"], totals["unattributed_conversions"]) == (2, 1)
    assert totals["validation"]["OK"] == 3
    assert totals["validation"]["UNKNOWN_PROGRAM"] == 1
    assert totals["ivt"]["IVT_KNOWN_CRAWLER"] == 1
    assert "X" not in totals["ivt"]
    assert (totals["impressions"], totals["billable_impressions"]) == (4, 3)
    for name in ("impressions", "conversions", "unattributed_conversions"):
        assert totals[name] == sum(row[name] for row in rows)
    for group in ("ivt", "validation"):
        for reason in totals[group]:
            assert totals[group][reason] == sum(row[group][reason] for row in rows)


def flat(row: dict[str, Any]) -> dict[str, str]:
    """A JSON row as the CSV spells it."""
    cells: dict[str, str] = {}
    for name, value in row.items():
        if isinstance(value, dict):
            cells.update({f"{name}.{key}": str(inner) for key, inner in value.items()})
        else:
            cells[name] = str(value)
    return cells


async def test_csv_rows_equal_json_rows(dynamodb: DynamoDBClient, table: str) -> None:
    report = await revenue_report(dynamodb, table)
    text = report_csv(report)
    assert text.endswith("\r\n")
    records = list(csv.DictReader(io.StringIO(text)))
    assert records == [flat(row) for row in report_json(report)["rows"]]
    header = text.split("\r\n", 1)[0].split(",")
    assert header == csv_header(("EUR", "USD"))
    assert header[:7] == ROW_FIELDS[:7]
    assert header[-2:] == ["revenue.EUR", "revenue.USD"]
    assert "ivt.IVT_NONE" not in header
    assert "validation.VALIDATION_UNSPECIFIED" not in header


async def test_long_csv_is_never_cut(dynamodb: DynamoDBClient, table: str) -> None:
    query = ask(date(2026, 1, 1), date(2026, 1, 31), "hour", "America/St_Johns")
    report = await report_of(dynamodb, table, query)
    lines = report_csv(report).splitlines()
    assert len(lines) == 1 + 31 * 24
    assert lines[1].startswith("2026-01-01T00:00:00-03:30,")  # not neutralised: starts with 2


def test_csv_injection_is_neutralised() -> None:
    for cell in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(cell) == f"'{cell}"
    for cell in ("2026-01-01T00:00:00-03:30", "12.5", "0", "", "a=b"):
        assert neutralise(cell) == cell


async def test_show_prints_json_lines_and_csv(
    dynamodb: DynamoDBClient, table: str, moto_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = await revenue_report(dynamodb, table)
    settings = ReportSettings.from_env(
        {"AWS_ENDPOINT_URL_DYNAMODB": moto_url, "ROLLUP_TABLE": table}
    )
    params = {"from": "2026-05-01", "to": "2026-05-01", "granularity": "hour"}
    assert await run_show(settings, "p1", params) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [row_json(row) for row in report.rows]
    args = argparse.Namespace(program="p1", to="2026-05-01", granularity="hour", tz=None)
    setattr(args, "from", "2026-05-01")
    args.format = "csv"
    assert await show(settings, args) == 0
    assert capsys.readouterr().out == report_csv(report)


async def test_show_refuses_bad_parameters_and_reports_an_unreachable_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = ReportSettings.from_env(
        {
            "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{free_port()}",
            "REPORTS_READ_TIMEOUT_MS": "1000",
        }
    )
    assert await run_show(settings, "p1", {"tz": "Mars/Olympus"}) == 2
    assert capsys.readouterr().err == "reports show: tz: unknown time zone\n"
    assert await run_show(settings, "", {}) == 2
    assert capsys.readouterr().err.startswith("reports show: program: ")
    assert await run_show(settings, "p1", {}) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "rollup table tracking-rollups" in captured.err
