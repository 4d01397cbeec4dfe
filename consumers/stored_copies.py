"""Which events of a batch were stored before from another record: copies, not new events.

The tracker's retries after an unclear answer and its on-disk log's replays can put one event
on the stream twice, as two records with two sequence numbers; positions alone cannot tell them
apart, the `message_id` can. Every event item records the stream record that first wrote it
(`stream_record`: shard, sequence number, sub-record). Before a batch is stored, its items are
looked up (consistent BatchGetItem, keys and that attribute only): an item already written from
another record is a copy and is neither written again (the first record stays its writer) nor
counted again; an item written from this same record is this record delivered again, and the
rollups' positions decide whether it still needs counting (consumers/rollups/state.py).

A conversion's decision is read with its origin (consumers/attribution/decider.py): a
redelivered conversion keeps the attribution it was given.

Cost: one strongly consistent read unit per event (items stay under 4 KB), in calls of 100
keys, sent as one JSON body without botocore's per-item work (consumers/dynamodb_batch.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

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
# A stored conversion's decision (consumers/attribution/decider.py DECISION_FIELDS).
DECISION_FIELDS = ("attribution", "attribution_by", "click_timestamp_ms", "click_billable")
CONCURRENT_CALLS = 4
BatchGet = Callable[[str, GetRequest], Awaitable[GetAnswer]]
ItemKey = tuple[str, str]


class Firsts(NamedTuple):
    items: list[Item]  # to store and count
    # Those of `items` the table holds already (written from the same record before): their
    # origin, key and decision attributes.
    stored: dict[ItemKey, Item]


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

    async def firsts(self, items: Sequence[Item]) -> Firsts:
        """The items to store and count: the first of each key in the batch, unless the table
        holds that key from another record."""
        first: dict[ItemKey, Item] = {}
        for item in items:
            first.setdefault(item_key(item), item)
        keys = list(first)
        chunks = [keys[n : n + BATCH_GET_LIMIT] for n in range(0, len(keys), BATCH_GET_LIMIT)]
        found = await asyncio.gather(*(self._origins(_request(chunk)) for chunk in chunks))
        stored = {key: item for chunk in found for key, item in chunk.items()}
        kept = [i for k, i in first.items() if _origin(stored.get(k), i) == i[ORIGIN]["S"]]
        self._metrics.duplicate_events.inc(len(items) - len(kept))
        return Firsts(kept, {k: stored[k] for k in map(item_key, kept) if k in stored})

    async def _origins(self, request: GetRequest) -> dict[ItemKey, Item]:
        """Key -> the stored item (its projected attributes), for the keys the table holds."""
        origins: dict[ItemKey, Item] = {}
        attempt = 0
        async with self._slots:
            while request.keys or request.keys_json:
                answer = await with_retries(
                    lambda r=request: self._get(self._table, r),  # type: ignore[misc]
                    "BatchGetItem",
                    self._max_attempts,
                    self._metrics.write_errors.inc,
                )
                origins.update((item_key(i), i) for i in answer.items)
                request = GetRequest(answer.unprocessed, request.attributes)
                attempt += 1
                if request.keys:
                    await self._wait(attempt)
        return origins

    async def _wait(self, attempt: int) -> None:
        if self._max_attempts is not None and attempt >= self._max_attempts:
            raise UnprocessedItemsError("BatchGetItem: keys still unprocessed")
        await asyncio.sleep(backoff_delay(attempt))


def _origin(stored: Item | None, item: Item) -> str:
    """The record that wrote the stored item: an item written before items recorded their
    origin counts as written by whoever asks."""
    if stored is None or ORIGIN not in stored:
        return str(item[ORIGIN]["S"])
    return str(stored[ORIGIN]["S"])


def _request(keys: list[ItemKey]) -> GetRequest:
    """The lookup of `keys`, their JSON written by hand: every part of a key is made of the
    characters decode_event allows in program and message ids, digits and '#', none of which
    JSON escapes (consumers/event_items.py), and this is the copy check's main cost otherwise."""
    text = ",".join(
        f'{{"program_bucket":{{"S":"{bucket}"}},"event_key":{{"S":"{key}"}}}}'
        for bucket, key in keys
    )
    return GetRequest([], (*KEY_NAMES, ORIGIN, *DECISION_FIELDS), keys_json=f"[{text}]")


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
