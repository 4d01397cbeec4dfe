"""`consumers show PROGRAM_ID`: a program's newest events from DynamoDB, as JSON lines.

One Query on the events table's key: partition `program_id`, sort `event_key` between the two
ends of the time range (the sort key starts with the zero-padded timestamp).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from typing import Any

from consumers.aws import open_clients
from consumers.settings import ConsumerSettings


async def recent_events(
    settings: ConsumerSettings, program_id: str, minutes: float, limit: int
) -> AsyncIterator[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    since_ms = now_ms - int(minutes * 60_000)
    async with AsyncExitStack() as stack:
        _, dynamodb = await open_clients(settings, stack)
        answer = await dynamodb.query(
            TableName=settings.events_table,
            KeyConditionExpression="program_id = :p AND event_key BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":p": {"S": program_id},
                ":lo": {"S": f"{since_ms:013d}"},
                ":hi": {"S": f"{now_ms + 60_000:013d}~"},
            },
            ScanIndexForward=False,
            Limit=limit,
        )
        for item in answer.get("Items", []):
            yield item_json(item)


def item_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """An events-table item as plain JSON, attributes in name order (also used by export)."""
    return {name: _plain(value) for name, value in sorted(item.items())}


def _plain(value: Any) -> Any:
    """A DynamoDB attribute value as plain JSON."""
    kind, inner = next(iter(value.items()))
    if kind == "N":
        return int(inner) if inner.lstrip("-").isdigit() else float(inner)
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    return inner
