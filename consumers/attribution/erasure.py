"""Erasure's part in the attribution table: a user's click records and parked conversions.

Neither holds the user's key (consumers/attribution/records.py), so they are found through the
user's events: each event item's key ends in its message id, which is the click id of a click
and the sort key of a parked conversion. Both possible records are deleted for every event
(deleting what is not there changes nothing): erasure is rare, a lookup first would cost more.
Dedupe markers stay: they name an order id and a message id, nothing of the person, and
without them a later copy of the same order would be counted again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from consumers.attribution import records
from consumers.user_items import delete_keys

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


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
        await delete_keys(self._dynamodb, self._table, keys, self._max_attempts)


def _record_keys(message_id: str) -> list[dict[str, Any]]:
    return [records.click_key(message_id), records.parked_key(message_id)]
