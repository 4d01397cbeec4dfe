"""One parked conversion, decided and counted: the matcher's steps, each safe to repeat.

1. Read the conversion's item. None yet: wait (its worker writes it after the parked record).
   Decided on the stream (its record came back before the matcher got to it): the stream has
   counted it; drop the record.
2. PENDING: decide (an ATTRIBUTED decision first claims its order) and mark the item with the
   decision on the condition that it is still PENDING: the one atomic decision. A mark that
   finds the item decided already takes that decision instead (and gives back a claim it made
   that the decision does not hold).
3. Count the decision in the rollup row once (late_counts.py), after checking that the parked
   record still exists: a look that listed it before another look finished it stops here.
4. Drop the parked record.
A look killed anywhere leaves the record, and the next look picks up at the step it reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from consumers.attribution import records
from consumers.attribution.decider import stored_decision
from consumers.attribution.late_counts import Late, LateCounts
from consumers.attribution.rules import (
    ATTRIBUTED,
    DUPLICATE,
    PENDING,
    UNKNOWN_CLICK,
    Click,
    Decision,
    dedupe_key,
    judged,
)
from consumers.attribution.table import AttributionTable
from consumers.dynamodb_item import CONFLICT
from consumers.metrics import ConsumerMetrics
from consumers.retrying import with_retries
from consumers.rollups.tally import RollupKey, bucket_name

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

BY_MATCH = "match"
# A parked record whose conversion item never appeared (its user was erased, or its worker died
# between the two writes and the record was then skipped) is dropped this long after its wait.
ORPHAN_SECONDS = 3600
Waiting = Callable[[records.Parked, int], bool]  # True: the click may still come


class Settler:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: AttributionTable,
        tables: tuple[str, str],
        metrics: ConsumerMetrics,
        wait_ms: int,
    ) -> None:
        """`tables`: the events table and the rollup table; `wait_ms`: MATCH_WAIT_SECONDS."""
        self._wait_ms = wait_ms
        self._dynamodb = dynamodb
        self._table = table
        self._events_table, rollup_table = tables
        self._counts = LateCounts(table, rollup_table)
        self._metrics = metrics

    async def settle(self, parked: records.Parked, click: Click | None, waiting: Waiting) -> bool:
        """Take `parked` as far as it can go now; True when it was decided and counted."""
        now_ms = int(time.time() * 1000)
        if click is None and waiting(parked, now_ms):
            return False  # nothing to read or write until the click comes or the wait ends
        decision = await self._decided(parked, click, now_ms)
        if decision is None:
            return False
        checked_at = time.monotonic()
        if await self._table.get(self._table.name, _parked_key(parked)) is None:
            return False  # finished by another look since this one listed it
        late = Late(row_of(parked), parked.conversion, decision)
        if not await self._counts.count(late, checked_at, now_ms):
            return False
        await self._drop(parked)
        self._metrics.conversions_decided.labels(decision.attribution, BY_MATCH).inc()
        return True

    async def _decided(
        self, parked: records.Parked, click: Click | None, now_ms: int
    ) -> Decision | None:
        """The decision the item holds or is given now; None: nothing for this look to do."""
        item = await self._table.get(self._events_table, _item_key(parked))
        if item is None:
            if now_ms > parked.parked_ms + self._wait_ms + ORPHAN_SECONDS * 1000:
                await self._drop(parked)
            return None
        if item["attribution"]["S"] != PENDING:
            return await self._held(parked, item)
        decision = await self._decision(parked, click)
        if await self._mark(parked, decision):
            return decision
        item = await self._table.get(self._events_table, _item_key(parked))
        if item is None:  # erased meanwhile
            return None
        if decision.attribution == ATTRIBUTED and item["attribution"]["S"] != ATTRIBUTED:
            await self._give_back(parked)
        return await self._held(parked, item)

    async def _held(self, parked: records.Parked, item: dict[str, Any]) -> Decision | None:
        """The decision on a decided item, when the matcher made it; else (the stream decided
        and counted it) the record is dropped and None."""
        if item.get("attribution_by", {}).get("S") != BY_MATCH:
            await self._drop(parked)
            return None
        return stored_decision(item)

    async def _decision(self, parked: records.Parked, click: Click | None) -> Decision:
        """The decision now (an ATTRIBUTED one holds its order's claim); no click by now is
        UNKNOWN_CLICK (settle waits while it may come)."""
        conversion = parked.conversion
        if click is None:
            return Decision(UNKNOWN_CLICK)
        attribution = judged(conversion, click)
        if attribution != ATTRIBUTED:
            return Decision(attribution)
        key = dedupe_key(conversion)
        won = await self._table.claim(key, conversion.message_id, conversion.timestamp_ms)
        return Decision(ATTRIBUTED, click) if won else Decision(DUPLICATE)

    async def _mark(self, parked: records.Parked, decision: Decision) -> bool:
        """The item PENDING -> the decision; False when it was decided already."""
        values: dict[str, Any] = {
            ":a": {"S": decision.attribution},
            ":by": {"S": BY_MATCH},
            ":pending": {"S": PENDING},
        }
        update = "SET attribution = :a, attribution_by = :by"
        if decision.click is not None:
            update += ", click_timestamp_ms = :ct, click_billable = :cb"
            values[":ct"] = {"N": str(decision.click.timestamp_ms)}
            values[":cb"] = {"BOOL": decision.click.billable}
        request = {
            "TableName": self._events_table,
            "Key": _item_key(parked),
            "UpdateExpression": update,
            "ConditionExpression": "attribution = :pending",
            "ExpressionAttributeValues": values,
        }
        return await self._conditional(self._dynamodb.update_item, request, "UpdateItem")

    async def _give_back(self, parked: records.Parked) -> None:
        """Another look decided this conversion otherwise (UNKNOWN_CLICK at the end of its
        wait, while this one found the click): the claim this one made on its order goes."""
        conversion = parked.conversion
        request = {
            "TableName": self._table.name,
            "Key": records.marker_key(dedupe_key(conversion)),
            "ConditionExpression": "winner = :m",
            "ExpressionAttributeValues": {":m": {"S": conversion.message_id}},
        }
        await self._conditional(self._dynamodb.delete_item, request, "DeleteItem claim")

    async def _conditional(self, call: Any, request: dict[str, Any], what: str) -> bool:
        """One conditional call, retried while it fails otherwise; False: condition failed."""

        async def attempt() -> bool:
            try:
                await call(**request)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == CONFLICT:
                    return False
                raise
            return True

        done: bool = await with_retries(attempt, what, None, self._metrics.write_errors.inc)
        return done

    async def _drop(self, parked: records.Parked) -> None:
        key = _parked_key(parked)
        await with_retries(
            lambda: self._dynamodb.delete_item(TableName=self._table.name, Key=key),
            "DeleteItem parked",
            None,
            self._metrics.write_errors.inc,
        )


def row_of(parked: records.Parked) -> RollupKey:
    return RollupKey(parked.rollup_program, bucket_name(parked.conversion.timestamp_ms))


def _item_key(parked: records.Parked) -> dict[str, Any]:
    bucket, event_key = parked.item_key
    return {"program_bucket": {"S": bucket}, "event_key": {"S": event_key}}


def _parked_key(parked: records.Parked) -> dict[str, Any]:
    return records.parked_key(parked.conversion.message_id)
