"""Which events of a batch were stored before from another record: copies, not new events.

The tracker's retries after an unclear answer and its on-disk log's replays can put one event
on the stream twice, as two records with two sequence numbers; positions alone cannot tell them
apart, the `message_id` can. Every event item records the stream record that first wrote it
(`stream_record`: shard, sequence number, sub-record). Before a batch is stored, its items are
looked up (consistent BatchGetItem, keys and that attribute only): an item already written from
another record is a copy and is neither written again (the first record stays its writer) nor
counted again; an item written from this same record is this record delivered again, and the
rollups' positions decide whether it still needs counting (consumers/rollups/state.py).

Cost: one strongly consistent read unit per event (items stay under 4 KB), in calls of 100
keys, sent as one JSON body without botocore's per-item work (consumers/dynamodb_batch.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from consumers.dynamodb_batch import BATCH_GET_LIMIT, GetAnswer, GetRequest
from consumers.event_items import Item
from consumers.events_writer import item_key
from consumers.metrics import ConsumerMetrics
from consumers.retrying import UnprocessedItemsError, with_retries
from tracker.backoff import backoff_delay

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

ORIGIN = "stream_record"
KEY_NAMES = ("program_bucket", "event_key")
CONCURRENT_CALLS = 4
BatchGet = Callable[[str, GetRequest], Awaitable[GetAnswer]]
ItemKey = tuple[str, str]


def origin(shard_id: str, sequence_number: str, sub_index: int | None) -> str:
    return f"{shard_id}:{sequence_number}:{sub_index or 0}"


class StoredCopies:
    def __init__(
        self,
        batch_get: BatchGet,
        table: str,
        metrics: ConsumerMetrics,
        max_attempts: int | None = None,
    ) -> None:
        self._get = batch_get
        self._table = table
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._slots = asyncio.Semaphore(CONCURRENT_CALLS)

    async def firsts(self, items: Sequence[Item]) -> list[Item]:
        """The items to store and count: the first of each key in the batch, unless the table
        holds that key from another record."""
        first: dict[ItemKey, Item] = {}
        for item in items:
            first.setdefault(item_key(item), item)
        keys = list(first)
        chunks = [keys[n : n + BATCH_GET_LIMIT] for n in range(0, len(keys), BATCH_GET_LIMIT)]
        found = await asyncio.gather(*(self._origins(_request(chunk)) for chunk in chunks))
        stored = {key: where for chunk in found for key, where in chunk.items()}
        kept = [i for k, i in first.items() if stored.get(k, i[ORIGIN]["S"]) == i[ORIGIN]["S"]]
        self._metrics.duplicate_events.inc(len(items) - len(kept))
        return kept

    async def _origins(self, request: GetRequest) -> dict[ItemKey, str]:
        """Key -> the record that wrote it, for the keys the table holds (an item written before
        items recorded their origin counts as written by whoever asks)."""
        origins: dict[ItemKey, str] = {}
        attempt = 0
        async with self._slots:
            while request.keys or request.keys_json:
                answer = await with_retries(
                    lambda r=request: self._get(self._table, r),  # type: ignore[misc]
                    "BatchGetItem",
                    self._max_attempts,
                    self._metrics.write_errors.inc,
                )
                origins.update((item_key(i), i[ORIGIN]["S"]) for i in answer.items if ORIGIN in i)
                request = GetRequest(answer.unprocessed, request.attributes)
                attempt += 1
                if request.keys:
                    await self._wait(attempt)
        return origins

    async def _wait(self, attempt: int) -> None:
        if self._max_attempts is not None and attempt >= self._max_attempts:
            raise UnprocessedItemsError("BatchGetItem: keys still unprocessed")
        await asyncio.sleep(backoff_delay(attempt))


def _request(keys: list[ItemKey]) -> GetRequest:
    """The lookup of `keys`, their JSON written by hand: every part of a key is made of the
    characters decode_event allows in program and message ids, digits and '#', none of which
    JSON escapes (consumers/event_items.py), and this is the copy check's main cost otherwise."""
    text = ",".join(
        f'{{"program_bucket":{{"S":"{bucket}"}},"event_key":{{"S":"{key}"}}}}'
        for bucket, key in keys
    )
    return GetRequest([], (*KEY_NAMES, ORIGIN), keys_json=f"[{text}]")


def botocore_batch_get(dynamodb: DynamoDBClient) -> BatchGet:
    """The same call through a botocore client (tests, and where no lean call is opened)."""

    async def call(table: str, request: GetRequest) -> GetAnswer:
        names = {f"#a{n}": name for n, name in enumerate(request.attributes)}
        answer = await dynamodb.batch_get_item(
            RequestItems={
                table: {
                    "Keys": json.loads(request.keys_json) if request.keys_json else request.keys,
                    "ProjectionExpression": ",".join(names),
                    "ExpressionAttributeNames": names,
                    "ConsistentRead": request.consistent,
                }
            }
        )
        fields = cast("dict[str, Any]", answer)
        items = fields.get("Responses", {}).get(table, [])
        left = fields.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        return GetAnswer(list(items), list(left))

    return call
