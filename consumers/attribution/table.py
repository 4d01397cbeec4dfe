"""The attribution table's calls on the stream path: clicks looked up and recorded, an order
claimed, a conversion parked (and its PENDING item written after it).

Reads are strongly consistent: a click recorded a moment ago by another shard's worker must be
found, or its conversion waits for nothing. Claims and parking are conditional writes, the
atomic decisions that make attribution exact across workers (docs/attribution.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from consumers.attribution import records
from consumers.attribution.rules import Click
from consumers.dynamodb_batch import BATCH_GET_LIMIT, GetRequest
from consumers.dynamodb_item import Condition, ItemCalls, botocore_item_calls
from consumers.events_writer import BATCH_LIMIT, BatchWrite, botocore_batch_write
from consumers.metrics import ConsumerMetrics
from consumers.retrying import until_processed, with_retries
from consumers.stored_copies import BatchGet, botocore_batch_get

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

CLICK_FIELDS = ("pk", "program_id", "timestamp_ms", "billable", "window_days", "same_as")
# Ours, or nobody's yet: a conversion delivered again finds the claim it made before.
CLAIM = "attribute_not_exists(pk) OR winner = :m"
NEW = Condition("attribute_not_exists(pk)")
NEW_EVENT = Condition("attribute_not_exists(event_key)")


class Calls(NamedTuple):
    """The DynamoDB calls the stream path makes, lean or through botocore (consumers/aws.py)."""

    get: BatchGet
    write: BatchWrite
    item: ItemCalls


def botocore_calls(dynamodb: DynamoDBClient) -> Calls:
    """The same calls through a botocore client (where no lean calls are opened)."""
    return Calls(
        botocore_batch_get(dynamodb), botocore_batch_write(dynamodb), botocore_item_calls(dynamodb)
    )


class AttributionTable:
    def __init__(
        self, table: str, calls: Calls, metrics: ConsumerMetrics, max_attempts: int | None
    ) -> None:
        self.name = table
        self._calls = calls
        self._metrics = metrics
        self._max_attempts = max_attempts

    async def clicks(self, click_ids: Sequence[str]) -> dict[str, Click]:
        """The recorded clicks among `click_ids`, by id. The second click of a double click
        stands for its first (`same_as`): that one is looked up and given instead, or left out
        while it is not recorded yet."""
        found = await self._records(click_ids)
        firsts = {a for i in found.values() if (a := records.same_as(i)) and a not in found}
        found.update(await self._records(list(firsts)) if firsts else {})
        clicks: dict[str, Click] = {}
        for click_id, item in found.items():
            first = records.same_as(item)
            original = item if first is None else found.get(first)
            if original is not None and records.same_as(original) is None:
                clicks[click_id] = records.click_of(original)
        return clicks

    async def _records(self, click_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        unique = list(dict.fromkeys(click_ids))
        chunks = [unique[n : n + BATCH_GET_LIMIT] for n in range(0, len(unique), BATCH_GET_LIMIT)]
        found = await asyncio.gather(
            *(
                self.get_many(GetRequest(list(map(records.click_key, c)), CLICK_FIELDS))
                for c in chunks
            )
        )
        return {records.click_id_of(i): i for chunk in found for i in chunk}

    async def get_many(self, request: GetRequest) -> list[dict[str, Any]]:
        """The items of `request` that exist in the attribution table (consistent reads)."""
        items: list[dict[str, Any]] = []

        async def step(request: GetRequest) -> GetRequest | None:
            answer = await self._retried(lambda: self._calls.get(self.name, request), "get")
            items.extend(answer.items)
            if not answer.unprocessed:
                return None
            return GetRequest(answer.unprocessed, request.attributes)

        await until_processed(step, request, "BatchGetItem", None)
        return items

    async def record_clicks(self, clicks: Sequence[dict[str, Any]]) -> None:
        unique = list({c["pk"]["S"]: c for c in clicks}.values())
        await asyncio.gather(
            *(self._write(unique[n : n + BATCH_LIMIT]) for n in range(0, len(unique), BATCH_LIMIT))
        )

    async def _write(self, items: list[dict[str, Any]]) -> None:
        async def step(requests: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            left = await self._retried(lambda: self._calls.write(self.name, requests), "records")
            return left or None

        requests = [{"PutRequest": {"Item": item}} for item in items]
        await until_processed(step, requests, "BatchWriteItem", self._max_attempts)

    async def claim(self, dedupe_key: str, message_id: str, timestamp_ms: int) -> bool:
        """True when `message_id` is (or already was) the one conversion of its key."""
        item = records.marker(dedupe_key, message_id, timestamp_ms)
        condition = Condition(CLAIM, {":m": {"S": message_id}})
        return await self._put(self.name, item, condition)

    async def park(self, parked: records.Parked, wait_seconds: int) -> None:
        """Record the conversion as waiting (kept as it is when parked before: the wait runs
        from the first time it was read)."""
        await self._put(self.name, records.parked_record(parked, wait_seconds), NEW)

    async def put_pending(self, events_table: str, item: dict[str, Any]) -> None:
        """The PENDING conversion item, only where none is: the matcher may have decided it."""
        await self._put(events_table, item, NEW_EVENT)

    async def get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """One item, strongly consistent, or None."""
        item: dict[str, Any] | None = await self._retried(
            lambda: self._calls.item.get(table, key), "get"
        )
        return item

    async def put(self, table: str, item: dict[str, Any], condition: Condition) -> bool:
        return await self._put(table, item, condition)

    async def _put(self, table: str, item: dict[str, Any], condition: Condition) -> bool:
        written: bool = await self._retried(
            lambda: self._calls.item.put(table, item, condition), "put"
        )
        return written

    async def _retried(self, call: Any, what: str) -> Any:
        return await with_retries(
            call, f"attribution {what}", self._max_attempts, self._metrics.write_errors.inc
        )
