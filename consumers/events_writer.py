"""Writing event items to DynamoDB: BatchWriteItem in chunks of 25, UnprocessedItems re-sent.

The workers and Lambda send BatchWriteItem through consumers/dynamodb_batch.py (the body built
without botocore's per-item work); without one, the botocore client sends it. The rare PutItem
of the write-singly fallback always goes through the botocore client.

BatchWriteItem refuses a whole call whose items repeat a key, and a re-delivered record repeats
one, so each write first keeps one item per key (the same event gives the same item anyway).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from botocore.exceptions import ClientError

from consumers.event_items import Item
from consumers.metrics import ConsumerMetrics
from consumers.retrying import UnprocessedItemsError, is_permanent, with_retries
from tracker.backoff import backoff_delay

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import WriteRequestTypeDef

BATCH_LIMIT = 25  # DynamoDB BatchWriteItem limit
CONCURRENT_BATCHES = 4
__all__ = [
    "BatchWrite",
    "EventsWriter",
    "Rejected",
    "UnprocessedItemsError",
    "botocore_batch_write",
    "item_key",
]
# One BatchWriteItem for one table: (table, write requests) -> the requests left unprocessed.
BatchWrite = Callable[[str, list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


class Rejected(NamedTuple):
    item: Item
    reason: str


def item_key(item: Item) -> tuple[str, str]:
    return item["program_bucket"]["S"], item["event_key"]["S"]


class EventsWriter:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        metrics: ConsumerMetrics,
        max_attempts: int | None = None,
        batch_write: BatchWrite | None = None,
    ) -> None:
        self._dynamodb = dynamodb
        self._send = batch_write or botocore_batch_write(dynamodb)
        self._table = table
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._slots = asyncio.Semaphore(CONCURRENT_BATCHES)

    async def write(self, items: Sequence[Item]) -> list[Rejected]:
        """Write every item; return only when DynamoDB has accepted all of them, except those it
        refuses outright (an item DynamoDB can never store, e.g. over 400 KB): those come back
        with the reason, for the dead-letter table."""
        unique = list({item_key(i): i for i in items}.values())
        chunks = [unique[n : n + BATCH_LIMIT] for n in range(0, len(unique), BATCH_LIMIT)]
        results = await asyncio.gather(*(self._write_chunk(chunk) for chunk in chunks))
        rejected = [r for chunk_rejected in results for r in chunk_rejected]
        self._metrics.events_written.inc(len(unique) - len(rejected))
        return rejected

    async def _write_chunk(self, chunk: list[Item]) -> list[Rejected]:
        requests: list[WriteRequestTypeDef] = [{"PutRequest": {"Item": item}} for item in chunk]
        attempt = 0
        async with self._slots:
            while requests:
                try:
                    requests = await self._batch_write(requests)
                except ClientError as exc:
                    if not is_permanent(exc):
                        raise
                    # One bad item fails the whole call: find it by writing them one by one
                    # (those already written are written again, which changes nothing).
                    return await self._write_singly(chunk)
                if requests:
                    attempt += 1
                    if self._max_attempts is not None and attempt >= self._max_attempts:
                        raise UnprocessedItemsError(f"{len(requests)} items still unprocessed")
                    self._metrics.unprocessed_retried.inc(len(requests))
                    await asyncio.sleep(backoff_delay(attempt))
        return []

    async def _write_singly(self, items: list[Item]) -> list[Rejected]:
        rejected: list[Rejected] = []
        for item in items:
            try:
                await self._put_one(item)
            except ClientError as exc:
                if not is_permanent(exc):
                    raise
                rejected.append(Rejected(item, str(exc)))
        return rejected

    async def _put_one(self, item: Item) -> None:
        async def put() -> None:
            await self._dynamodb.put_item(TableName=self._table, Item=item)

        await with_retries(put, "PutItem", self._max_attempts, self._metrics.write_errors.inc)

    async def _batch_write(self, requests: list[WriteRequestTypeDef]) -> list[WriteRequestTypeDef]:
        """One BatchWriteItem (whole-call errors retried); the requests DynamoDB left over."""
        left = await with_retries(
            lambda: self._send(self._table, cast("list[dict[str, Any]]", requests)),
            "BatchWriteItem",
            self._max_attempts,
            self._metrics.write_errors.inc,
        )
        return cast("list[WriteRequestTypeDef]", left)


def botocore_batch_write(dynamodb: DynamoDBClient) -> BatchWrite:
    """BatchWriteItem through a botocore client (where no lean call is opened)."""

    async def call(table: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        response = await dynamodb.batch_write_item(
            RequestItems={table: cast("list[WriteRequestTypeDef]", requests)}
        )
        left = response.get("UnprocessedItems", {}).get(table, [])
        return cast("list[dict[str, Any]]", list(left))

    return call
