"""Applying a batch's tallies to ROLLUP_TABLE: read, add what is unseen, write on condition.

One consistent GetItem and one conditional PutItem per program and bucket a batch touches,
however many events it holds for them: the write units grow with items touched, not with
events (docs/capacity.md). A conditional write that loses (another worker wrote the item
since it was read: the same shard in a lease hand-over, or another shard's events for the
same program and bucket) reads again and adds only what is still unseen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from consumers.metrics import ConsumerMetrics
from consumers.retrying import with_retries
from consumers.rollups.state import RollupState, added, from_item, to_item, unseen
from consumers.rollups.tally import Counted, RollupKey

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

CONCURRENT_ITEMS = 8
CONFLICT = "ConditionalCheckFailedException"


class RollupWriter:
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
        self._slots = asyncio.Semaphore(CONCURRENT_ITEMS)

    async def apply(self, shard_id: str, groups: Mapping[RollupKey, Sequence[Counted]]) -> None:
        """Count every group's events that its item has not counted yet; return when all are."""
        await asyncio.gather(*(self._apply(shard_id, k, v) for k, v in groups.items()))

    async def _apply(self, shard_id: str, key: RollupKey, events: Sequence[Counted]) -> None:
        async with self._slots:
            while True:
                state = await self._read(key)
                fresh = unseen(state, shard_id, events)
                if not fresh:
                    self._metrics.rollup_events_seen.inc(len(events))
                    return
                if await self._write(key, state, added(state, shard_id, fresh)):
                    self._metrics.rollup_events_seen.inc(len(events) - len(fresh))
                    self._metrics.rollup_writes.inc()
                    return
                self._metrics.rollup_conflicts.inc()

    async def _read(self, key: RollupKey) -> RollupState:
        async def get() -> dict[str, Any] | None:
            answer = await self._dynamodb.get_item(
                TableName=self._table, Key=_key(key), ConsistentRead=True
            )
            return answer.get("Item")

        item = await with_retries(get, "GetItem", self._max_attempts, self._error)
        return from_item(item)

    async def _write(self, key: RollupKey, read: RollupState, new: RollupState) -> bool:
        """False when the item changed since it was read."""
        if read.version == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(program_id)"}
        else:
            condition = {
                "ConditionExpression": "version = :read",
                "ExpressionAttributeValues": {":read": {"N": str(read.version)}},
            }

        async def put() -> bool:
            try:
                await self._dynamodb.put_item(
                    TableName=self._table, Item=to_item(key, new), **condition
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == CONFLICT:
                    return False
                raise
            return True

        return await with_retries(put, "PutItem", self._max_attempts, self._error)

    def _error(self) -> None:
        self._metrics.write_errors.inc()


def _key(key: RollupKey) -> dict[str, Any]:
    return {"program_id": {"S": key.program_id}, "bucket": {"S": key.bucket}}
