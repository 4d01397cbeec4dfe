"""GetItem and a conditional PutItem without botocore: the rollup writer's two calls per item.

Through a botocore client, one GetItem and one PutItem of a rollup item (a map of counters, a
map of positions, a 2 KB sketch) cost 2-4 ms of CPU together, most of the rollups' cost per
event at steady traffic (docs/benchmarks.md). The item is DynamoDB JSON already, so each call
is one `json.dumps` / `json.loads`, signed and sent as consumers/dynamodb_batch.py sends
BatchWriteItem; errors come out as botocore's would, so the retry loop is the same.
"""

from __future__ import annotations

import json
from base64 import b64decode
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from botocore.exceptions import ClientError

from consumers.dynamodb_batch import ANSWER_SLACK, SignedCall, UnreadableAnswerError, blob_json
from tracker.aws_json import JsonOperation

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

_JSON = "application/x-amz-json-1.0"
_IDENTITY = (("Accept-Encoding", "identity"),)
GET_ITEM = JsonOperation("dynamodb", "DynamoDB_20120810.GetItem", _JSON, _IDENTITY)
PUT_ITEM = JsonOperation("dynamodb", "DynamoDB_20120810.PutItem", _JSON, _IDENTITY)
ITEM_ANSWER_LIMIT = 400 * 1024 * 6 + ANSWER_SLACK  # DynamoDB's item limit, escaped at worst
CONFLICT = "ConditionalCheckFailedException"


class Condition(NamedTuple):
    """A PutItem's ConditionExpression and the values it names."""

    expression: str
    values: dict[str, Any] | None = None


class GetItem(SignedCall):
    """`await get(table, key)`: the item (binary values as bytes, as botocore gives them) or
    None; always a strongly consistent read."""

    operation = GET_ITEM

    async def __call__(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        body = json.dumps(
            {"TableName": table, "Key": key, "ConsistentRead": True}, separators=(",", ":")
        ).encode()
        try:
            answer = json.loads(await self._call(body, ITEM_ANSWER_LIMIT))
        except ValueError as exc:
            raise UnreadableAnswerError(operation=self.name, reason="not JSON") from exc
        item = answer.get("Item") if isinstance(answer, dict) else None
        if item is None:
            return None
        if not isinstance(item, dict):
            raise UnreadableAnswerError(operation=self.name, reason="Item is not an object")
        return {name: _binary(value) for name, value in item.items()}


class PutItem(SignedCall):
    """`await put(table, item, condition)`: True when written, False when the condition failed."""

    operation = PUT_ITEM

    async def __call__(self, table: str, item: dict[str, Any], condition: Condition) -> bool:
        request: dict[str, Any] = {
            "TableName": table,
            "Item": item,
            "ConditionExpression": condition.expression,
        }
        if condition.values:
            request["ExpressionAttributeValues"] = condition.values
        body = json.dumps(request, separators=(",", ":"), default=blob_json).encode()
        try:
            await self._call(body, ANSWER_SLACK)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == CONFLICT:
                return False
            raise
        return True


def _binary(value: Any) -> Any:
    """A top-level binary attribute decoded from base64 (the JSON wire form)."""
    if isinstance(value, dict) and isinstance(value.get("B"), str):
        return {"B": b64decode(value["B"])}
    return value


class ItemCalls(NamedTuple):
    """The two calls, lean or through a botocore client."""

    get: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]
    put: Callable[[str, dict[str, Any], Condition], Awaitable[bool]]


def botocore_item_calls(dynamodb: DynamoDBClient) -> ItemCalls:
    """The same calls through a botocore client (where no lean calls are opened)."""

    async def get(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        answer = await dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)
        return cast("dict[str, Any] | None", answer.get("Item"))

    async def put(table: str, item: dict[str, Any], condition: Condition) -> bool:
        extra: dict[str, Any] = {"ConditionExpression": condition.expression}
        if condition.values:
            extra["ExpressionAttributeValues"] = condition.values
        try:
            await dynamodb.put_item(TableName=table, Item=item, **extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == CONFLICT:
                return False
            raise
        return True

    return ItemCalls(get, put)
