"""Writing event items to DynamoDB: BatchWriteItem in chunks of 25, UnprocessedItems re-sent.

BatchWriteItem refuses a whole call whose items repeat a key, and a re-delivered record repeats
one, so each write first keeps one item per key (the same event gives the same item anyway).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from consumers.event_items import Item
from consumers.metrics import ConsumerMetrics
from consumers.retrying import with_retries
from tracker.backoff import backoff_delay

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import WriteRequestTypeDef

BATCH_LIMIT = 25  # DynamoDB BatchWriteItem limit
CONCURRENT_BATCHES = 4


class UnprocessedItemsError(Exception):
    """DynamoDB kept refusing some items within the attempts allowed (Lambda only)."""


class EventsWriter:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        metrics: ConsumerMetrics,
        max_attempts: int | None = None,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._slots = asyncio.Semaphore(CONCURRENT_BATCHES)

    async def write(self, items: Sequence[Item]) -> None:
        """Write every item; return only when DynamoDB has accepted all of them."""
        unique = list({(i["program_id"]["S"], i["event_key"]["S"]): i for i in items}.values())
        chunks = [unique[n : n + BATCH_LIMIT] for n in range(0, len(unique), BATCH_LIMIT)]
        await asyncio.gather(*(self._write_chunk(chunk) for chunk in chunks))
        self._metrics.events_written.inc(len(unique))

    async def _write_chunk(self, chunk: list[Item]) -> None:
        requests: list[WriteRequestTypeDef] = [{"PutRequest": {"Item": item}} for item in chunk]
        attempt = 0
        async with self._slots:
            while requests:
                requests = await self._batch_write(requests)
                if requests:
                    attempt += 1
                    self._metrics.unprocessed_retried.inc(len(requests))
                    if self._max_attempts is not None and attempt >= self._max_attempts:
                        raise UnprocessedItemsError(f"{len(requests)} items still unprocessed")
                    await asyncio.sleep(backoff_delay(attempt))

    async def _batch_write(self, requests: list[WriteRequestTypeDef]) -> list[WriteRequestTypeDef]:
        """One BatchWriteItem (whole-call errors retried); the requests DynamoDB left over."""
        response = await with_retries(
            lambda: self._dynamodb.batch_write_item(RequestItems={self._table: requests}),
            "BatchWriteItem",
            self._max_attempts,
            self._metrics.write_errors.inc,
        )
        left = response.get("UnprocessedItems", {}).get(self._table, [])
        return cast("list[WriteRequestTypeDef]", list(left))
