"""Deciding the conversions that were parked to wait for their click.

Every `consumers events` worker looks at the parked conversions every MATCH_POLL_MS (the
Lambda deployment: a scheduled function, consumers/lambda_handlers.py). A parked conversion
whose click is now recorded is judged as on the stream; one whose click is still unknown
MATCH_WAIT_SECONDS after it was first read is UNKNOWN_CLICK.

Exactly once without transactions (an emulator's transactions are not isolated, and a
conditional write per step is cheaper): the conversion's rollup row is the point of decision.
One conditional write, on the row's version, adds the decision's counters to the row and
notes the decision in the row's `late` map; then the item is marked (PENDING -> the decision,
on the condition that it is still PENDING) and the parked record dropped. A look that finds
the note (a worker killed half way, or two workers at once) takes the noted decision and
finishes the steps; one that finds the item decided drops the record. Notes are kept for
NOTE_SECONDS, and a look writes only within STALE_SECONDS of reading the item PENDING, so no
look can miss the note of a decision made after it read the item. An ATTRIBUTED decision
claims its order first (the stream path's conditional write); a claim made by a look whose
decision then lost to another look's is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import ClientError

from consumers.attribution import records
from consumers.attribution.decider import BY_MATCH
from consumers.attribution.rules import (
    ATTRIBUTED,
    DUPLICATE,
    PENDING,
    UNKNOWN_CLICK,
    Click,
    Decision,
    dedupe_key,
    judged,
    report_counts,
)
from consumers.attribution.table import AttributionTable, Calls, botocore_calls
from consumers.dynamodb_item import Condition
from consumers.metrics import ConsumerMetrics
from consumers.retrying import with_retries
from consumers.rollups.state import RollupState, from_item, to_item, with_late
from consumers.rollups.tally import RollupKey, bucket_name

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

    from consumers.settings import ConsumerSettings

log = logging.getLogger(__name__)
ABSENT = "absent"
DECIDED = "decided"
TRIES = 5  # refused transactions per conversion and look, before the next look
CONCURRENT = 8
MAX_BACKOFF_SECONDS = 60.0
# A record whose conversion item never appeared (its user was erased, or its worker died
# between the two writes and the record was then skipped) is dropped this long after its wait.
ORPHAN_SECONDS = 3600
# A look writes a decision only within this long of reading its item PENDING; a row keeps its
# notes of decisions ten times as long. So a look that read the item before another look
# decided it still finds that look's note, and takes its decision instead of counting again;
# and a row holds only the notes of the last few minutes.
STALE_SECONDS = 60
NOTE_SECONDS = 10 * STALE_SECONDS


class Matcher:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        settings: ConsumerSettings,
        table: AttributionTable,
        metrics: ConsumerMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._events_table = settings.events_table
        self._rollup_table = settings.rollup_table
        self._wait_ms = settings.attribution.match_wait_seconds * 1000
        self._poll = settings.attribution.match_poll_seconds
        self._metrics = metrics
        self._clock = clock
        self._slots = asyncio.Semaphore(CONCURRENT)
        # message id -> (looks so far, when the next is due): a click that has not come yet is
        # looked up less and less often, never later than the end of its wait.
        self._backoff: dict[str, tuple[int, int]] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.look()
            except Exception:  # the stream path goes on; the next look tries again
                log.exception("looking at parked conversions failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._poll)

    async def look(self) -> int:
        """Decide what can be decided now; the number decided."""
        parked = await self._parked()
        self._metrics.conversions_waiting.set(len(parked))
        now_ms = int(self._clock() * 1000)
        ids = [p.conversion.message_id for p in parked]
        self._backoff = {i: self._backoff.get(i, (0, 0)) for i in ids}  # forget the decided
        due = [p for p in parked if self._backoff[p.conversion.message_id][1] <= now_ms]
        clicks = await self._table.clicks([p.conversion.click_id for p in due]) if due else {}
        rows: dict[RollupKey, list[records.Parked]] = {}
        for p in due:
            rows.setdefault(_row(p), []).append(p)

        async def settle_row(row: list[records.Parked]) -> int:
            # One row's conversions one after another: each decision rewrites the row, and
            # side by side they would only refuse each other.
            async with self._slots:
                return sum(
                    [await self._settle(p, clicks.get(p.conversion.click_id), now_ms) for p in row]
                )

        return sum(await asyncio.gather(*(settle_row(row) for row in rows.values())))

    async def _parked(self) -> list[records.Parked]:
        found: list[records.Parked] = []
        for partition in range(records.PARKED_PARTITIONS):
            found += await self._partition(f"parked#{partition}")
        return found

    async def _partition(self, partition: str) -> list[records.Parked]:
        kwargs: dict[str, Any] = {
            "TableName": self._table.name,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": partition}},
            "ConsistentRead": True,
        }
        found: list[records.Parked] = []
        while True:
            page = await self._retried(lambda: self._dynamodb.query(**kwargs), "Query parked")
            found += [records.parked_of(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def _settle(self, parked: records.Parked, click: Click | None, now_ms: int) -> bool:
        """Decide one parked conversion if it can be; True when this call decided it."""
        item_read = time.monotonic()
        status = await self._item_status(parked)
        orphaned = now_ms > parked.parked_ms + self._wait_ms + ORPHAN_SECONDS * 1000
        if status == DECIDED or (status == ABSENT and orphaned):
            await self._drop(parked)
        if status != PENDING:
            return False
        row = Row(_row(parked), parked.conversion.message_id)
        for _ in range(TRIES):
            state = await self._read_row(row)
            counted = state.late.get(row.message_id)
            if counted is not None:  # counted by an earlier look that did not finish
                decision = _decision_of(counted)
                await self._release_claim(parked, decision)
                break
            found = await self._decision(parked, click, now_ms)
            if found is None:
                return False
            decision = found
            if time.monotonic() - item_read > STALE_SECONDS:
                return False  # the item may have been decided since: look again next time
            counts = report_counts(parked.conversion, decision)
            new = with_late(state, row.message_id, _noted(decision, now_ms), counts)
            new.late = _recent(new.late, now_ms)
            if await self._put_row(row, state, new):
                break
            self._metrics.match_conflicts.inc()
        else:
            return False
        await self._mark_item(parked, decision)
        await self._drop(parked)
        self._metrics.conversions_decided.labels(decision.attribution, BY_MATCH).inc()
        return True

    async def _decision(
        self, parked: records.Parked, click: Click | None, now_ms: int
    ) -> Decision | None:
        """The decision now (an ATTRIBUTED one holds its order's claim), or None: wait on."""
        conversion = parked.conversion
        if click is None:
            return self._unknown_after_wait(parked, now_ms)
        attribution = judged(conversion, click)
        if attribution != ATTRIBUTED:
            return Decision(attribution)
        key = dedupe_key(conversion)
        won = await self._table.claim(key, conversion.message_id, conversion.timestamp_ms)
        return Decision(ATTRIBUTED, click) if won else Decision(DUPLICATE)

    def _unknown_after_wait(self, parked: records.Parked, now_ms: int) -> Decision | None:
        conversion = parked.conversion
        deadline = parked.parked_ms + self._wait_ms
        if now_ms >= deadline:
            return Decision(UNKNOWN_CLICK)
        looks, _ = self._backoff.get(conversion.message_id, (0, 0))
        delay_ms = int(min(self._poll * 2**looks, MAX_BACKOFF_SECONDS) * 1000)
        self._backoff[conversion.message_id] = (looks + 1, min(now_ms + delay_ms, deadline))
        return None

    async def _release_claim(self, parked: records.Parked, decision: Decision) -> None:
        """Another look counted this conversion otherwise (UNKNOWN_CLICK at the end of its wait,
        while this one found the click): a claim this one made on its order is given back."""
        if decision.attribution == ATTRIBUTED:
            return
        conversion = parked.conversion
        key = records.marker_key(dedupe_key(conversion))
        with contextlib.suppress(ClientError):
            await self._dynamodb.delete_item(
                TableName=self._table.name,
                Key=key,
                ConditionExpression="winner = :m",
                ExpressionAttributeValues={":m": {"S": conversion.message_id}},
            )

    async def _item_status(self, parked: records.Parked) -> str:
        item = await self._table.get(self._events_table, _item_key(parked))
        if item is None:
            return ABSENT
        return PENDING if item.get("attribution", {}).get("S") == PENDING else DECIDED

    async def _mark_item(self, parked: records.Parked, decision: Decision) -> None:
        """The item PENDING -> the decision (already so when an earlier look got this far)."""
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

        async def update_item() -> None:
            with contextlib.suppress(ClientError):
                await self._dynamodb.update_item(
                    TableName=self._events_table,
                    Key=_item_key(parked),
                    UpdateExpression=update,
                    ConditionExpression="attribution = :pending",
                    ExpressionAttributeValues=values,
                )

        await self._retried(update_item, "UpdateItem conversion")

    async def _read_row(self, row: Row) -> RollupState:
        key = {"program_id": {"S": row.key.program_id}, "bucket": {"S": row.key.bucket}}
        return from_item(await self._table.get(self._rollup_table, key))

    async def _put_row(self, row: Row, read: RollupState, new: RollupState) -> bool:
        """Write the row over the version read; False when someone wrote it since."""
        condition = Condition("attribute_not_exists(program_id)")
        if read.version:
            condition = Condition("version = :read", {":read": {"N": str(read.version)}})
        new.version = read.version
        written = await self._table.put(self._rollup_table, to_item(row.key, new), condition)
        new.version = read.version + 1
        return written

    async def _drop(self, parked: records.Parked) -> None:
        key = records.parked_key(parked.conversion.message_id)
        await self._retried(
            lambda: self._dynamodb.delete_item(TableName=self._table.name, Key=key),
            "DeleteItem parked",
        )

    async def _retried(self, call: Any, what: str) -> Any:
        return await with_retries(call, what, None, self._metrics.write_errors.inc)


class Row(NamedTuple):
    key: RollupKey
    message_id: str


def _noted(decision: Decision, now_ms: int) -> str:
    """A decision as the row notes it: the attribution, when, and for ATTRIBUTED its click's
    time and billability (what the item needs once the row has counted it)."""
    if decision.click is None:
        return f"{decision.attribution} {now_ms}"
    billable = int(decision.click.billable)
    return f"{decision.attribution} {now_ms} {decision.click.timestamp_ms} {billable}"


def _decision_of(noted: str) -> Decision:
    attribution, _, *click = noted.split(" ")
    if len(click) != 2:
        return Decision(attribution)
    return Decision(attribution, Click("", int(click[0]), click[1] == "1", 0))


def _recent(late: dict[str, str], now_ms: int) -> dict[str, str]:
    """The notes young enough that a look may still be on its way to them."""
    oldest = now_ms - NOTE_SECONDS * 1000
    return {k: v for k, v in late.items() if int(v.split(" ")[1]) >= oldest}


def _row(parked: records.Parked) -> RollupKey:
    return RollupKey(parked.rollup_program, bucket_name(parked.conversion.timestamp_ms))


def _item_key(parked: records.Parked) -> dict[str, Any]:
    bucket, event_key = parked.item_key
    return {"program_bucket": {"S": bucket}, "event_key": {"S": event_key}}


def build_matcher(
    settings: ConsumerSettings,
    dynamodb: DynamoDBClient,
    metrics: ConsumerMetrics,
    calls: Calls | None = None,
) -> Matcher:
    """The matcher as workers and the scheduled Lambda run it (`calls`: the lean ones)."""
    if calls is None:
        calls = botocore_calls(dynamodb)
    table = AttributionTable(settings.attribution.table, calls, metrics, None)
    return Matcher(dynamodb, settings, table, metrics)
