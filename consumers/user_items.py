"""One user's items in the events table: found through the sparse `user_key-index`, read whole
with BatchGetItem, deleted by primary key with BatchWriteItem.

The index projects keys only (its partition `user_key`, its sort `event_key`, and the table's
partition `program_bucket`), so it costs little and holds only events that carry a user key.
It spans every bucket of every program: one Query finds the user's items wherever they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from consumers.event_items import Item
from consumers.events_writer import BATCH_LIMIT
from consumers.retrying import until_processed, with_retries
from consumers.suppression import BATCH_GET_LIMIT

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesTypeDef,
        WriteRequestTypeDef,
    )

USER_KEY_INDEX = "user_key-index"
Key = dict[str, "AttributeValueTypeDef"]  # program_bucket and event_key


def primary_key(item: Item) -> Key:
    return {"program_bucket": item["program_bucket"], "event_key": item["event_key"]}


def key_id(key: Key) -> tuple[str, str]:
    return key["program_bucket"]["S"], key["event_key"]["S"]


class UserItems:
    def __init__(
        self, dynamodb: DynamoDBClient, table: str, max_attempts: int | None = None
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._max_attempts = max_attempts

    async def key_pages(self, user_key: str) -> AsyncIterator[list[Key]]:
        """The primary keys of the user's items, a Query page at a time, oldest first.

        Index reads are eventually consistent: an item written a moment ago may be missing.
        """
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": USER_KEY_INDEX,
            "KeyConditionExpression": "user_key = :u",
            "ExpressionAttributeValues": {":u": {"S": user_key}},
        }
        while True:
            page = await with_retries(
                lambda: self._dynamodb.query(**kwargs), "user_key-index Query", self._max_attempts
            )
            yield [primary_key(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def fetch(self, keys: Sequence[Key]) -> list[Item]:
        """The items of these keys that still exist, in the order of the keys."""
        found: dict[tuple[str, str], Item] = {}

        async def step(request: KeysAndAttributesTypeDef) -> KeysAndAttributesTypeDef | None:
            answer = await with_retries(
                lambda: self._dynamodb.batch_get_item(RequestItems={self._table: request}),
                "BatchGetItem",
                self._max_attempts,
            )
            for item in answer.get("Responses", {}).get(self._table, []):
                found[key_id(primary_key(item))] = item
            left = answer.get("UnprocessedKeys", {}).get(self._table)
            return cast("KeysAndAttributesTypeDef", left) if left and left.get("Keys") else None

        requests: list[KeysAndAttributesTypeDef] = [
            {"Keys": chunk, "ConsistentRead": True} for chunk in _chunks(keys, BATCH_GET_LIMIT)
        ]
        await asyncio.gather(
            *(until_processed(step, r, "BatchGetItem", self._max_attempts) for r in requests)
        )
        return [found[k] for k in map(key_id, keys) if k in found]

    async def delete(self, keys: Sequence[Key]) -> None:
        """Delete the items (deleting one that is gone already changes nothing)."""
        # BatchWriteItem refuses a call that names one key twice.
        unique = list({key_id(k): k for k in keys}.values())
        await delete_keys(self._dynamodb, self._table, unique, self._max_attempts)


async def delete_keys(
    dynamodb: DynamoDBClient, table: str, keys: Sequence[Key], max_attempts: int | None
) -> None:
    """Delete these items of `table` (no key twice) with BatchWriteItem, 25 at a time, sending
    again what DynamoDB left unprocessed."""

    async def step(requests: list[WriteRequestTypeDef]) -> list[WriteRequestTypeDef] | None:
        answer = await with_retries(
            lambda: dynamodb.batch_write_item(RequestItems={table: requests}),
            "BatchWriteItem delete",
            max_attempts,
        )
        left = answer.get("UnprocessedItems", {}).get(table)
        return cast("list[WriteRequestTypeDef]", list(left)) if left else None

    batches: list[list[WriteRequestTypeDef]] = [
        [{"DeleteRequest": {"Key": key}} for key in chunk] for chunk in _chunks(keys, BATCH_LIMIT)
    ]
    await asyncio.gather(
        *(until_processed(step, b, "BatchWriteItem delete", max_attempts) for b in batches)
    )


def _chunks(keys: Sequence[Key], size: int) -> list[list[Key]]:
    return [list(keys[n : n + size]) for n in range(0, len(keys), size)]
