"""Reading the rollup table (docs/reporting.md): one program's buckets over a range, and the
items of a program written since a moment (the index `changes`).

Every failure of the store (unreachable, throttled past botocore's retries, too slow, refusing
the request) is StoreUnavailable: the server answers 503, never a hang or a 500.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from reports.periods import parse_bucket
from tracker.settings import AwsSettings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)
_INTEGER = re.compile(r"-?[0-9]{1,38}")  # DynamoDB numbers have at most 38 digits
# What a report needs of an item: not the per-shard positions, which only the writer reads.
# `version` orders two copies of one bucket (the index lags the table: it can answer an older one).
_PROJECTION = "#b, #c, #u, #v"
_NAMES = {"#b": "bucket", "#c": "counts", "#u": "uniques", "#v": "version", "#p": "program_id"}
# The rollup table's index by (program_id, updated_ms), every attribute projected: the items of
# a program written since a moment (docs/reporting.md). consumers/provision.py creates it under
# the same name; the two packages share only the table format.
CHANGES_INDEX = "changes"


class StoreUnavailable(Exception):  # noqa: N818 (the name the server catches)
    """The rollup store did not answer in time or refused: the server answers 503."""


@dataclass(frozen=True, slots=True)
class BucketRow:
    """One program's 15-minute bucket as stored."""

    bucket: str  # `YYYY-MM-DDTHH:MMZ`
    start: datetime  # the bucket's UTC start
    counts: Mapping[str, int]  # every integer counter of the item, known names or not
    sketch: bytes | None  # HLL sketch of the bucket's visitors; None while there is none
    version: int = 0  # raised by every write: the larger of two copies is the newer


class RollupReader:
    """Reads buckets of ROLLUP_TABLE; each Query call is bounded by `timeout_seconds`."""

    def __init__(self, dynamodb: DynamoDBClient, table: str, timeout_seconds: float) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._timeout = timeout_seconds

    async def read(self, program_id: str, first_bucket: str, last_bucket: str) -> list[BucketRow]:
        """The program's buckets from `first_bucket` to `last_bucket`, both included, in order.

        Every page is followed: a report is never cut short. Raises StoreUnavailable.
        """
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#p = :p AND #b BETWEEN :a AND :z",
            "ExpressionAttributeNames": _NAMES,
            "ExpressionAttributeValues": {
                ":p": {"S": program_id},
                ":a": {"S": first_bucket},
                ":z": {"S": last_bucket},
            },
            "ProjectionExpression": _PROJECTION,
        }
        return await self._all_pages(kwargs)

    async def changed(self, program_id: str, after_ms: int) -> list[BucketRow]:
        """The program's items whose `updated_ms` is past `after_ms`, from the index `changes`
        (eventually consistent: a write shows there a moment after it lands). Raises
        StoreUnavailable, also when the table has no such index."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": CHANGES_INDEX,
            "KeyConditionExpression": "#p = :p AND #t > :t",
            "ExpressionAttributeNames": {**_NAMES, "#t": "updated_ms"},
            "ExpressionAttributeValues": {":p": {"S": program_id}, ":t": {"N": str(after_ms)}},
            "ProjectionExpression": _PROJECTION,
        }
        return await self._all_pages(kwargs)

    async def _all_pages(self, kwargs: dict[str, Any]) -> list[BucketRow]:
        rows: list[BucketRow] = []
        while True:
            page = await self._query(kwargs)
            rows += _rows(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return rows
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def _query(self, kwargs: dict[str, Any]) -> Mapping[str, Any]:
        # The bound is per page, not per report: a year by day is many pages, each of which
        # must come in time; a store that stops answering fails the report within one bound.
        try:
            async with asyncio.timeout(self._timeout):
                return await self._dynamodb.query(**kwargs)
        except (BotoCoreError, ClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"rollup table {self._table}: {type(exc).__name__}") from exc


def _rows(items: list[Mapping[str, Any]]) -> list[BucketRow]:
    rows = [row for row in map(bucket_row, items) if row is not None]
    if len(rows) < len(items):  # a writer's bug; the report goes on without those items
        log.warning("rollup items skipped as malformed: %d", len(items) - len(rows))
    return rows


def bucket_row(item: Mapping[str, Any]) -> BucketRow | None:
    """An item as a BucketRow; None when its bucket name is malformed. Counters that are not
    integers are left out (absent means 0)."""
    name = item.get("bucket", {}).get("S")
    start = parse_bucket(name) if isinstance(name, str) else None
    if name is None or start is None:
        return None
    counts: dict[str, int] = {}
    for counter, value in item.get("counts", {}).get("M", {}).items():
        number = value.get("N") if isinstance(value, Mapping) else None
        if isinstance(number, str) and _INTEGER.fullmatch(number):
            counts[counter] = int(number)
    sketch = item.get("uniques", {}).get("B")
    version = item.get("version", {}).get("N")
    number = int(version) if isinstance(version, str) and _INTEGER.fullmatch(version) else 0
    return BucketRow(name, start, counts, bytes(sketch) if sketch else None, number)


async def open_dynamodb(
    aws: AwsSettings, timeout_seconds: float, stack: AsyncExitStack
) -> DynamoDBClient:
    """A DynamoDB client on the configured endpoint, closed with `stack`.

    Its socket timeouts are the read bound too; botocore's standard retries absorb short
    throttling bursts within it.
    """
    config = AioConfig(
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        max_pool_connections=20,
    )
    return await stack.enter_async_context(
        get_session().create_client(
            "dynamodb", region_name=aws.region, endpoint_url=aws.dynamodb_endpoint, config=config
        )
    )
