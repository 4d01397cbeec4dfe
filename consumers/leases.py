"""Shard leases in DynamoDB, in the spirit of the Kinesis Client Library.

One item per shard: owner, counter, checkpoint and parent shards. Every change is a conditional
write on the counter the writer last saw, and increments it, so two workers can never both
believe a write of theirs succeeded. Expiry needs no shared clock: a lease whose counter has not
moved for the lease duration, as seen by the observer's own clock, belongs to a dead worker.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

TRIM_HORIZON = "TRIM_HORIZON"
SHARD_END = "SHARD_END"


class LeaseLostError(Exception):
    """Another worker holds the lease now: stop processing its shard at once."""


@dataclass(frozen=True, slots=True)
class Lease:
    shard_id: str
    owner: str | None
    counter: int
    checkpoint: str
    parents: tuple[str, ...]

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END


class LeaseTable:
    """The lease items of one stream (the table may hold other streams' leases too)."""

    def __init__(self, dynamodb: DynamoDBClient, table: str, stream: str) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._stream = stream

    def _key(self, shard_id: str) -> dict[str, Any]:
        return {"lease_key": {"S": f"{self._stream}/{shard_id}"}}

    async def list(self) -> list[Lease]:
        leases: list[Lease] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "ConsistentRead": True,
            "FilterExpression": "#stream = :stream",
            "ExpressionAttributeNames": {"#stream": "stream"},
            "ExpressionAttributeValues": {":stream": {"S": self._stream}},
        }
        while True:
            page = await self._dynamodb.scan(**kwargs)
            leases.extend(_lease(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return leases
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def create(self, shard_id: str, parents: tuple[str, ...]) -> None:
        """Add a lease for a newly seen shard; a lease that exists already is left alone."""
        item: dict[str, Any] = {
            **self._key(shard_id),
            "stream": {"S": self._stream},
            "shard_id": {"S": shard_id},
            "counter": {"N": "0"},
            "checkpoint": {"S": TRIM_HORIZON},
        }
        if parents:
            item["parents"] = {"SS": list(parents)}
        try:
            await self._dynamodb.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(lease_key)",
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise

    async def take(self, lease: Lease, owner: str) -> Lease:
        """Become the owner of a lease last seen as `lease` (expired, free, or to be stolen)."""
        return await self._update(lease, "SET #owner = :me", {":me": {"S": owner}})

    async def renew(self, lease: Lease) -> Lease:
        return await self._update(
            lease, "SET #owner = :me", {":me": {"S": lease.owner or ""}}, owned=True
        )

    async def checkpoint(self, lease: Lease, sequence: str) -> Lease:
        return await self._update(
            lease,
            "SET #checkpoint = :cp",
            {":cp": {"S": sequence}},
            owned=True,
            names={"#checkpoint": "checkpoint"},
        )

    async def release(self, lease: Lease) -> Lease:
        return await self._update(lease, "REMOVE #owner", {}, owned=True)

    async def _update(
        self,
        lease: Lease,
        action: str,
        values: dict[str, Any],
        owned: bool = False,
        names: dict[str, str] | None = None,
    ) -> Lease:
        condition = "#counter = :seen"
        values = {**values, ":seen": {"N": str(lease.counter)}, ":one": {"N": "1"}}
        if owned:
            condition += " AND #owner = :holder"
            values[":holder"] = {"S": lease.owner or ""}
        set_counter = "#counter = #counter + :one"
        expression = (
            f"{action}, {set_counter}"
            if action.startswith("SET")
            else f"SET {set_counter} {action}"
        )
        try:
            answer = await self._dynamodb.update_item(
                TableName=self._table,
                Key=self._key(lease.shard_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ExpressionAttributeNames={
                    "#counter": "counter",
                    "#owner": "owner",
                    **(names or {}),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise LeaseLostError(f"lease on {lease.shard_id} changed hands") from None
            raise
        return _lease(answer["Attributes"])


class HeldLease:
    """A lease this worker holds: renewals and checkpoints are serialized, because both condition
    on the counter and a renewal racing a checkpoint would look like a lost lease."""

    def __init__(self, table: LeaseTable, lease: Lease, duration: float) -> None:
        self.lease = lease
        self._table = table
        self._duration = duration
        self._lock = asyncio.Lock()
        self._confirmed_at = time.monotonic()
        self.lost = False

    @property
    def shard_id(self) -> str:
        return self.lease.shard_id

    @property
    def stale(self) -> bool:
        """Not confirmed for a whole lease duration: another worker may have taken it."""
        return time.monotonic() - self._confirmed_at > self._duration

    async def renew(self) -> None:
        await self._apply(self._table.renew)

    async def checkpoint(self, sequence: str) -> None:
        await self._apply(lambda lease: self._table.checkpoint(lease, sequence))

    async def release(self) -> None:
        await self._apply(self._table.release)

    async def _apply(self, change: Any) -> None:
        async with self._lock:
            if self.lost:
                raise LeaseLostError(f"lease on {self.shard_id} was lost")
            try:
                self.lease = await change(self.lease)
            except LeaseLostError:
                self.lost = True
                raise
            self._confirmed_at = time.monotonic()


def _lease(item: dict[str, Any]) -> Lease:
    return Lease(
        shard_id=item["shard_id"]["S"],
        owner=item["owner"]["S"] if "owner" in item else None,
        counter=int(item["counter"]["N"]),
        checkpoint=item["checkpoint"]["S"],
        parents=tuple(sorted(item["parents"]["SS"])) if "parents" in item else (),
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
