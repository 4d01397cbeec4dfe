"""Applying a batch's tallies to ROLLUP_TABLE: read, add what is unseen, write on condition.

One consistent GetItem and one conditional PutItem per program and bucket a batch touches,
however many events it holds for them: the write units grow with items touched, not with
events (docs/capacity.md). A conditional write that loses (another worker wrote the item
since it was read: the same shard in a lease hand-over, or another shard's events for the
same program and bucket) reads again and adds only what is still unseen.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from consumers.dynamodb_item import Condition, ItemCalls, botocore_item_calls
from consumers.metrics import ConsumerMetrics
from consumers.retrying import with_retries
from consumers.rollups.state import RollupState, added, from_item, to_item, unseen
from consumers.rollups.tally import Counted, RollupKey

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

CONCURRENT_ITEMS = 8
NEW_ITEM = Condition("attribute_not_exists(program_id)")
# Items this writer wrote last, as it wrote them: the next batch of a shard it holds usually
# finds them unchanged, and the write's version condition tells when not (then it reads).
CACHED_ITEMS = 20_000


class RollupWriter:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        metrics: ConsumerMetrics,
        max_attempts: int | None = None,
        calls: ItemCalls | None = None,
    ) -> None:
        """`calls`: the lean GetItem and PutItem (consumers/aws.py); else the botocore client's."""
        self._calls = calls or botocore_item_calls(dynamodb)
        self._table = table
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._slots = asyncio.Semaphore(CONCURRENT_ITEMS)
        self._written: OrderedDict[RollupKey, RollupState] = OrderedDict()

    async def apply(self, shard_id: str, groups: Mapping[RollupKey, Sequence[Counted]]) -> None:
        """Count every group's events that its item has not counted yet; return when all are."""
        await asyncio.gather(*(self._apply(shard_id, k, v) for k, v in groups.items()))

    async def _apply(self, shard_id: str, key: RollupKey, events: Sequence[Counted]) -> None:
        async with self._slots:
            state = self._written.pop(key, None)  # what we wrote last: one call instead of two
            while True:
                if state is None:
                    state = await self._read(key)
                fresh = unseen(state, shard_id, events)
                if not fresh:
                    self._metrics.rollup_events_seen.inc(len(events))
                    return
                new = added(state, shard_id, fresh)
                if await self._write(key, state, new):
                    self._remember(key, new)
                    self._metrics.rollup_events_seen.inc(len(events) - len(fresh))
                    self._metrics.rollup_writes.inc()
                    return
                self._metrics.rollup_conflicts.inc()
                state = None  # someone else wrote it since: read what they wrote

    def _remember(self, key: RollupKey, written: RollupState) -> None:
        written.version += 1  # the version the write gave the item
        self._written[key] = written
        if len(self._written) > CACHED_ITEMS:
            self._written.popitem(last=False)

    async def _read(self, key: RollupKey) -> RollupState:
        item = await with_retries(
            lambda: self._calls.get(self._table, _key(key)),
            "GetItem",
            self._max_attempts,
            self._error,
        )
        return from_item(item)

    async def _write(self, key: RollupKey, read: RollupState, new: RollupState) -> bool:
        """False when the item changed since it was read."""
        condition = NEW_ITEM
        if read.version:
            condition = Condition("version = :read", {":read": {"N": str(read.version)}})
        item = to_item(key, new)
        return await with_retries(
            lambda: self._calls.put(self._table, item, condition),
            "PutItem",
            self._max_attempts,
            self._error,
        )

    def _error(self) -> None:
        self._metrics.write_errors.inc()


def _key(key: RollupKey) -> dict[str, Any]:
    return {"program_id": {"S": key.program_id}, "bucket": {"S": key.bucket}}
