"""`consumers show PROGRAM_ID`: a program's newest events from DynamoDB, as JSON lines.

A program's events are spread over EVENTS_TABLE_BUCKETS partitions (consumers/event_items.py),
so this is one Query per bucket, partition `{program_id}#{bucket}`, sort `event_key` between the
two ends of the time range (the sort key starts with the zero-padded timestamp), newest first.
Each bucket gives its newest `limit`; merged by `event_key`, the first `limit` are the program's.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, NamedTuple

from consumers.aws import open_clients
from consumers.event_items import Item, program_bucket
from consumers.settings import ConsumerSettings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# Queries in flight at once: enough to hide latency, few enough not to burst a table's reads.
CONCURRENT_QUERIES = 16


class Window(NamedTuple):
    """What to show: the program, the `event_key` range, at most how many."""

    program_id: str
    low: str
    high: str
    limit: int


async def recent_events(
    settings: ConsumerSettings, program_id: str, minutes: float, limit: int
) -> AsyncIterator[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    since_ms = now_ms - int(minutes * 60_000)
    window = Window(program_id, f"{since_ms:013d}", f"{now_ms + 60_000:013d}~", limit)
    async with AsyncExitStack() as stack:
        _, dynamodb = await open_clients(settings, stack)
        items = await newest_items(dynamodb, settings, window)
    for item in items:
        yield item_json(item)


async def newest_items(
    dynamodb: DynamoDBClient, settings: ConsumerSettings, window: Window
) -> list[Item]:
    """The window's newest items over every bucket, newest first."""
    slots = asyncio.Semaphore(CONCURRENT_QUERIES)

    async def bucket_items(bucket: int) -> list[Item]:
        async with slots:
            return await _bucket_newest(dynamodb, settings.events_table, bucket, window)

    per_bucket = await asyncio.gather(
        *(bucket_items(b) for b in range(settings.events_table_buckets))
    )
    merged = heapq.merge(*per_bucket, key=lambda item: item["event_key"]["S"], reverse=True)
    return list(itertools.islice(merged, window.limit))


async def _bucket_newest(
    dynamodb: DynamoDBClient, table: str, bucket: int, window: Window
) -> list[Item]:
    """One bucket's newest `limit` items in the window, newest first. Pages are followed: a
    page stops at 1 MB, and a bucket cut short could hide items newer than another's."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "program_bucket = :p AND event_key BETWEEN :lo AND :hi",
        "ExpressionAttributeValues": {
            ":p": {"S": program_bucket(window.program_id, bucket)},
            ":lo": {"S": window.low},
            ":hi": {"S": window.high},
        },
        "ScanIndexForward": False,
    }
    found: list[Item] = []
    while True:  # the first Query is always sent: DynamoDB refuses a limit below 1, as before
        page = await dynamodb.query(**kwargs, Limit=window.limit - len(found))
        found += page.get("Items", [])
        if len(found) >= window.limit or "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def item_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """An events-table item as plain JSON, attributes in name order (also used by export)."""
    return {name: _plain(value) for name, value in sorted(item.items())}


def _plain(value: Any) -> Any:
    """A DynamoDB attribute value as plain JSON."""
    kind, inner = next(iter(value.items()))
    if kind == "N":
        return int(inner) if inner.lstrip("-").isdigit() else float(inner)
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    return inner
