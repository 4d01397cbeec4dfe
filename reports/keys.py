"""Report keys: their text format, and the store in REPORT_KEYS_TABLE (docs/reporting.md).

A key is `adt_<key_id>_<secret>`: the key id (12 lowercase hex digits) is the table's partition
key, so a lookup is one GetItem; the secret is 32 random bytes, base64url without padding. Only
the SHA-256 of the whole key text is stored: 256 random bits need no slow hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from reports.unavailable import bounded

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

KEY_TEXT = re.compile(r"adt_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
KEY_ID = re.compile(r"[0-9a-f]{12}")
MAX_NAME = 100
SECRET_BYTES = 32
STORE = "report keys"
# Operator commands wait longer than a request would: nobody is waiting on a page.
COMMAND_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ReportKey:
    key_id: str
    customer_id: int
    name: str | None
    created_ms: int
    revoked_ms: int | None
    secret_sha256: str = field(repr=False)

    def listing(self) -> dict[str, Any]:
        """What `reports keys list` prints: never the hash."""
        return {
            "key_id": self.key_id,
            "customer_id": self.customer_id,
            "name": self.name,
            "created": self.created_ms,
            "revoked": self.revoked_ms,
        }


class DuplicateKeyIdError(Exception):
    """A freshly drawn key id is taken (48 random bits: about never); the caller draws again."""


def key_id_of(text: str) -> str | None:
    """The key id of a well-formed key text, else None."""
    match = KEY_TEXT.fullmatch(text)
    return match.group(1) if match else None


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def new_key_text() -> str:
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()
    return f"adt_{key_id}_{secret}"


def _item_to_key(item: dict[str, Any]) -> ReportKey:
    revoked = item.get("revoked_ms")
    name = item.get("name")
    return ReportKey(
        key_id=item["key_id"]["S"],
        customer_id=int(item["customer_id"]["N"]),
        name=name["S"] if name else None,
        created_ms=int(item["created_ms"]["N"]),
        revoked_ms=int(revoked["N"]) if revoked else None,
        secret_sha256=item["secret_sha256"]["S"],
    )


class KeyStore:
    """Create, list, revoke and look up keys in REPORT_KEYS_TABLE. Every call is bounded by
    `timeout` seconds; a failure raises UnavailableError("report keys")."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._timeout = timeout
        self._clock = clock

    async def lookup(self, key_id: str) -> ReportKey | None:
        """The key, revoked or not, or None when no such id. Strongly consistent: a revocation
        is seen by the next read."""
        answer = await bounded(
            self._dynamodb.get_item(
                TableName=self._table, Key={"key_id": {"S": key_id}}, ConsistentRead=True
            ),
            STORE,
            self._timeout,
        )
        item = answer.get("Item")
        return _item_to_key(dict(item)) if item else None

    async def create(self, customer_id: int, name: str | None) -> tuple[ReportKey, str]:
        """A new key of the customer: (its record, its text). The text exists only here."""
        for _ in range(5):
            text = new_key_text()
            key = ReportKey(
                key_id=text[4:16],
                customer_id=customer_id,
                name=name,
                created_ms=int(self._clock() * 1000),
                revoked_ms=None,
                secret_sha256=digest(text),
            )
            try:
                await bounded(self._put_new(key), STORE, self._timeout)
            except DuplicateKeyIdError:
                continue
            return key, text
        raise RuntimeError("no free key id after 5 draws")

    async def _put_new(self, key: ReportKey) -> None:
        item: dict[str, Any] = {
            "key_id": {"S": key.key_id},
            "customer_id": {"N": str(key.customer_id)},
            "secret_sha256": {"S": key.secret_sha256},
            "created_ms": {"N": str(key.created_ms)},
        }
        if key.name:
            item["name"] = {"S": key.name}
        try:
            await self._dynamodb.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(key_id)",
            )
        except ClientError as exc:
            if _conditional(exc):
                raise DuplicateKeyIdError from None
            raise

    async def revoke(self, key_id: str) -> bool:
        """Revoke the key now; False when there is no such key. Revoking twice keeps the first
        time."""
        return await bounded(self._revoke(key_id), STORE, self._timeout)

    async def _revoke(self, key_id: str) -> bool:
        try:
            await self._dynamodb.update_item(
                TableName=self._table,
                Key={"key_id": {"S": key_id}},
                UpdateExpression="SET revoked_ms = if_not_exists(revoked_ms, :now)",
                ConditionExpression="attribute_exists(key_id)",
                ExpressionAttributeValues={":now": {"N": str(int(self._clock() * 1000))}},
            )
        except ClientError as exc:
            if _conditional(exc):
                return False
            raise
        return True

    async def list_keys(self, customer_id: int | None = None) -> list[ReportKey]:
        """Every key (of one customer), sorted by customer and creation time."""
        return await bounded(self._scan(customer_id), STORE, self._timeout)

    async def _scan(self, customer_id: int | None) -> list[ReportKey]:
        arguments: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        if customer_id is not None:
            arguments["FilterExpression"] = "customer_id = :customer"
            arguments["ExpressionAttributeValues"] = {":customer": {"N": str(customer_id)}}
        keys: list[ReportKey] = []
        paginator = self._dynamodb.get_paginator("scan")
        async for page in paginator.paginate(**arguments):
            keys.extend(_item_to_key(dict(item)) for item in page.get("Items", []))
        return sorted(keys, key=lambda k: (k.customer_id, k.created_ms, k.key_id))


def _conditional(error: ClientError) -> bool:
    code: str = error.response.get("Error", {}).get("Code", "")
    return code == "ConditionalCheckFailedException"
