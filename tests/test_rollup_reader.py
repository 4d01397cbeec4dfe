"""Reading the rollup table (docs/reporting.md) from a real moto server: ranges, every page,
malformed items, and a store that is down or silent (StoreUnavailable, within the bound).
Also the reporting settings. The table helpers here serve tests/test_report_building.py too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import pytest
from aiobotocore.session import get_session

from reports.periods import bucket_name
from reports.rollups import BucketRow, RollupReader, StoreUnavailable, bucket_row, open_dynamodb
from reports.settings import ReportSettings
from tests.support.report_stack import create_rollup_table
from tracker.devstack.processes import free_port
from tracker.envconfig import SettingsError
from tracker.settings import AwsSettings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

START = datetime(2026, 3, 29, tzinfo=UTC)


def rollup_item(
    program_id: str,
    start: datetime,
    counts: Mapping[str, int],
    sketch: bytes | None = None,
) -> dict[str, Any]:
    """An item as the writer stores it (positions and version included)."""
    item: dict[str, Any] = {
        "program_id": {"S": program_id},
        "bucket": {"S": bucket_name(start)},
        "counts": {"M": {name: {"N": str(value)} for name, value in counts.items()}},
        "positions": {"M": {"shardId-000000000000": {"S": "1".zfill(64)}}},
        "version": {"N": "1"},
        "updated_ms": {"N": "1774742400000"},
    }
    if sketch is not None:
        item["uniques"] = {"B": sketch}
    return item


async def put_items(dynamodb: DynamoDBClient, table: str, items: Iterable[dict[str, Any]]) -> None:
    batch = list(items)
    for offset in range(0, len(batch), 25):
        requests: Any = [{"PutRequest": {"Item": item}} for item in batch[offset : offset + 25]]
        answer = await dynamodb.batch_write_item(RequestItems={table: requests})
        assert not answer.get("UnprocessedItems")


@pytest.fixture
async def dynamodb(moto_url: str) -> AsyncIterator[DynamoDBClient]:
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_url
    ) as client:
        yield client


@pytest.fixture
async def table(dynamodb: DynamoDBClient) -> str:
    return await create_rollup_table(dynamodb)


def quarter(index: int) -> datetime:
    return START + timedelta(minutes=15 * index)


async def test_reads_the_programs_buckets_between_both_ends(
    dynamodb: DynamoDBClient, table: str
) -> None:
    await put_items(
        dynamodb,
        table,
        [rollup_item("p1", quarter(i), {"impressions": i, "clicks": 1}) for i in range(10)]
        + [rollup_item("p2", quarter(i), {"impressions": 100}) for i in range(10)],
    )
    reader = RollupReader(dynamodb, table, timeout_seconds=5)
    rows = await reader.read("p1", bucket_name(quarter(2)), bucket_name(quarter(5)))
    assert [row.bucket for row in rows] == [bucket_name(quarter(i)) for i in range(2, 6)]
    assert [row.start for row in rows] == [quarter(i) for i in range(2, 6)]
    assert [row.counts for row in rows] == [{"impressions": i, "clicks": 1} for i in range(2, 6)]
    assert all(row.sketch is None for row in rows)
    assert await reader.read("nobody", bucket_name(quarter(0)), bucket_name(quarter(9))) == []


class CountingQueries:
    """A client whose Query calls are counted."""

    def __init__(self, client: DynamoDBClient) -> None:
        self.client = client
        self.pages = 0

    async def query(self, **kwargs: Any) -> Any:
        self.pages += 1
        return await self.client.query(**kwargs)


async def test_every_page_is_followed(dynamodb: DynamoDBClient, table: str) -> None:
    # 400 items of ~4 KB: over 1 MB, which one Query page never holds.
    padding = {f"shardId-{n:012d}": {"S": "9" * 64} for n in range(50)}
    items = [rollup_item("p1", quarter(i), {"events": 1}, b"\x01" * 100) for i in range(400)]
    for item in items:
        item["positions"] = {"M": padding}
    await put_items(dynamodb, table, items)
    counting = CountingQueries(dynamodb)
    reader = RollupReader(cast("DynamoDBClient", counting), table, timeout_seconds=10)
    rows = await reader.read("p1", bucket_name(quarter(0)), bucket_name(quarter(399)))
    assert len(rows) == 400
    assert sum(row.counts["events"] for row in rows) == 400
    assert counting.pages >= 2
    assert rows[0].sketch == b"\x01" * 100


def test_malformed_items_and_counters_are_left_out() -> None:
    good = rollup_item("p1", START, {"impressions": 3})
    good["counts"]["M"].update(
        {"clicks": {"N": "1.5"}, "events": {"S": "2"}, "conversions": {"N": "--1"}}
    )
    row = bucket_row(good)
    assert row == BucketRow("2026-03-29T00:00Z", START, {"impressions": 3}, None, version=1)
    for bucket in ("2026-03-29T00:05Z", "yesterday", ""):
        assert bucket_row({**good, "bucket": {"S": bucket}}) is None
    assert bucket_row({"program_id": {"S": "p1"}}) is None
    bare = bucket_row({"bucket": {"S": "2026-03-29T00:15Z"}})
    assert bare is not None
    assert bare.counts == {}
    assert bare.sketch is None


async def test_unknown_table_is_unavailable(dynamodb: DynamoDBClient) -> None:
    reader = RollupReader(dynamodb, "no-such-table", timeout_seconds=5)
    with pytest.raises(StoreUnavailable, match="no-such-table"):
        await reader.read("p1", "2026-03-29T00:00Z", "2026-03-29T23:45Z")


async def read_through(endpoint: str, timeout: float) -> float:
    """Read through a client on `endpoint`; StoreUnavailable is expected. Returns the time."""
    aws = AwsSettings(region="us-east-1", kinesis_endpoint=None, dynamodb_endpoint=endpoint)
    began = time.monotonic()
    async with AsyncExitStack() as stack:
        client = await open_dynamodb(aws, timeout, stack)
        reader = RollupReader(client, "tracking-rollups", timeout)
        with pytest.raises(StoreUnavailable):
            await reader.read("p1", "2026-03-29T00:00Z", "2026-03-29T23:45Z")
    return time.monotonic() - began


async def test_a_store_that_never_answers_is_unavailable_within_the_bound() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        elapsed = await read_through(f"http://127.0.0.1:{port}", timeout=0.5)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert accepted  # the request did reach it
    assert 0.4 < elapsed < 5


async def test_an_unreachable_store_is_unavailable() -> None:
    elapsed = await read_through(f"http://127.0.0.1:{free_port()}", timeout=1)
    assert elapsed < 5


# --- settings --------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = ReportSettings.from_env({})
    assert settings.rollup_table == "tracking-rollups"
    assert settings.report_keys_table == "tracking-report-keys"
    assert (settings.host, settings.port) == ("0.0.0.0", 8090)
    assert settings.rate_limit == 600
    assert settings.read_timeout_seconds == 3.0
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.log_level == "INFO"
    assert settings.aws.region == "us-east-1"
    assert settings.aws.dynamodb_endpoint is None


def test_settings_from_the_environment() -> None:
    settings = ReportSettings.from_env(
        {
            "ROLLUP_TABLE": "r",
            "REPORT_KEYS_TABLE": "k",
            "REPORTS_HOST": "127.0.0.1",
            "REPORTS_PORT": "9000",
            "REPORTS_RATE_LIMIT": "1",
            "REPORTS_READ_TIMEOUT_MS": "250",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
            "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:5001",
            "LOG_LEVEL": "debug",
        }
    )
    assert (settings.rollup_table, settings.report_keys_table) == ("r", "k")
    assert (settings.host, settings.port, settings.rate_limit) == ("127.0.0.1", 9000, 1)
    assert settings.read_timeout_seconds == 0.25
    assert settings.aws.dynamodb_endpoint == "http://127.0.0.1:5001"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REPORTS_RATE_LIMIT", "0"),
        ("REPORTS_RATE_LIMIT", "many"),
        ("REPORTS_READ_TIMEOUT_MS", "0"),
        ("REPORTS_READ_TIMEOUT_MS", "1.5"),
        ("REPORTS_PORT", "70000"),
        ("ROLLUP_TABLE", "bad name"),
        ("REPORT_KEYS_TABLE", "a/b"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "not a url"),
        ("REDIS_URL", "http://x"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_setting_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}: "):
        ReportSettings.from_env({variable: value})
