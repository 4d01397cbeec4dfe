"""Erasure's part in the attribution table: a user's click records and parked conversions.

Neither holds the user's key (consumers/attribution/records.py), so they are found through the
user's events: each event item's key ends in its message id, which is the click id of a click
and the sort key of a parked conversion. Both possible records are deleted for every event
(deleting what is not there changes nothing): erasure is rare, a lookup first would cost more.
Dedupe markers stay: they name an order id and a message id, nothing of the person, and
without them a later copy of the same order would be counted again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from consumers.attribution import records
from consumers.events_writer import BATCH_LIMIT
from consumers.retrying import until_processed, with_retries

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import WriteRequestTypeDef


class AttributionRecords:
    def __init__(self, dynamodb: DynamoDBClient, table: str, max_attempts: int | None) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._max_attempts = max_attempts

    async def delete_for(self, event_keys: Sequence[dict[str, Any]]) -> None:
        """Delete the click and parked records of these events (primary keys of the events
        table: `event_key` is `{timestamp_ms:013d}#{message_id}`)."""
        message_ids = {str(k["event_key"]["S"]).split("#", 1)[1] for k in event_keys}
        keys = [key for m in sorted(message_ids) for key in _record_keys(m)]
        chunks = [keys[n : n + BATCH_LIMIT] for n in range(0, len(keys), BATCH_LIMIT)]
        await asyncio.gather(*(self._delete(chunk) for chunk in chunks))

    async def _delete(self, keys: list[dict[str, Any]]) -> None:
        async def step(requests: list[WriteRequestTypeDef]) -> list[WriteRequestTypeDef] | None:
            answer = await with_retries(
                lambda: self._dynamodb.batch_write_item(RequestItems={self._table: requests}),
                "BatchWriteItem attribution delete",
                self._max_attempts,
            )
            left = answer.get("UnprocessedItems", {}).get(self._table)
            return cast("list[WriteRequestTypeDef]", list(left)) if left else None

        requests: list[WriteRequestTypeDef] = [{"DeleteRequest": {"Key": key}} for key in keys]
        await until_processed(step, requests, "BatchWriteItem delete", self._max_attempts)


def _record_keys(message_id: str) -> list[dict[str, Any]]:
    return [records.click_key(message_id), records.parked_key(message_id)]
