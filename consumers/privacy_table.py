"""PRIVACY_TABLE: who is suppressed, and the audit trail of privacy operations.

Key: `user_key` (partition, the keyed hash of the advertiser's user id, never the id itself)
and `entry` (sort). Per user:

- `entry = "suppressed"`: the marker the events consumers look up. `operation` is `erase` or
  `restrict` (an erase supersedes a restrict, never the other way round), `since_ms` the first
  suppression. No `expires_at`: a suppression lasts.
- `entry = "audit#<13-digit epoch ms>#<operation>"`: one per export, erase or restrict, with
  `at_ms`, `count` (items exported or deleted; 0 for restrict) and `expires_at`, after which
  DynamoDB's TTL removes it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from consumers.retrying import with_retries

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef

Operation = Literal["export", "erase", "restrict"]
SUPPRESSED = "suppressed"
DAY_SECONDS = 86_400


def marker_key(user_key: str) -> dict[str, AttributeValueTypeDef]:
    return {"user_key": {"S": user_key}, "entry": {"S": SUPPRESSED}}


class PrivacyTable:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        audit_ttl_days: int,
        max_attempts: int | None = None,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._audit_ttl_days = audit_ttl_days
        self._max_attempts = max_attempts

    async def suppress(self, user_key: str, operation: Literal["erase", "restrict"]) -> None:
        """Write or upgrade the marker; `since_ms` keeps the first suppression's time."""
        # A restrict never turns an erase marker back into a restrict one.
        new_operation = ":op" if operation == "erase" else "if_not_exists(#op, :op)"
        await with_retries(
            lambda: self._dynamodb.update_item(
                TableName=self._table,
                Key=marker_key(user_key),
                UpdateExpression=(
                    f"SET #op = {new_operation}, since_ms = if_not_exists(since_ms, :now)"
                ),
                ExpressionAttributeNames={"#op": "operation"},
                ExpressionAttributeValues={
                    ":op": {"S": operation},
                    ":now": {"N": str(_now_ms())},
                },
            ),
            "suppression marker write",
            self._max_attempts,
        )

    async def audit(self, user_key: str, operation: Operation, count: int) -> None:
        at_ms = _now_ms()
        item: dict[str, AttributeValueTypeDef] = {
            "user_key": {"S": user_key},
            "entry": {"S": f"audit#{at_ms:013d}#{operation}"},
            "operation": {"S": operation},
            "at_ms": {"N": str(at_ms)},
            "count": {"N": str(count)},
            "expires_at": {"N": str(at_ms // 1000 + self._audit_ttl_days * DAY_SECONDS)},
        }
        await with_retries(
            lambda: self._dynamodb.put_item(TableName=self._table, Item=item),
            "audit record write",
            self._max_attempts,
        )


def _now_ms() -> int:
    return int(time.time() * 1000)
