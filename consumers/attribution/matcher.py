"""Deciding the conversions that were parked to wait for their click.

Every `consumers events` worker looks at the parked conversions every MATCH_POLL_MS (the
Lambda deployment: a scheduled function, consumers/lambda_handlers.py). A parked conversion
whose click is now recorded is judged as on the stream; one whose click is still unknown
MATCH_WAIT_SECONDS after it was first read is UNKNOWN_CLICK.

Each due conversion is taken through consumers/attribution/settling.py's steps, which make
its decision and its count exactly once however many workers look at once and wherever one is
killed (no DynamoDB transactions: an emulator's are not isolated, and a conditional write per
step is cheaper). A row's conversions are taken one after another, rows side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from consumers.attribution import records
from consumers.attribution.settling import Settler, row_of
from consumers.attribution.table import AttributionTable, Calls, botocore_calls
from consumers.metrics import ConsumerMetrics
from consumers.retrying import with_retries
from consumers.rollups.tally import RollupKey

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

    from consumers.settings import ConsumerSettings

log = logging.getLogger(__name__)
CONCURRENT = 8
MAX_BACKOFF_SECONDS = 60.0


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
        tables = (settings.events_table, settings.rollup_table)
        self._wait_ms = settings.attribution.match_wait_seconds * 1000
        self._settler = Settler(dynamodb, table, tables, metrics, self._wait_ms)
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
        wait = self._waiting
        rows: dict[RollupKey, list[records.Parked]] = {}
        for p in due:
            rows.setdefault(row_of(p), []).append(p)

        async def settle_row(row: list[records.Parked]) -> int:
            # One row's conversions one after another: each decision rewrites the row, and
            # side by side they would only refuse each other.
            async with self._slots:
                return sum(
                    [
                        await self._settler.settle(p, clicks.get(p.conversion.click_id), wait)
                        for p in row
                    ]
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

    async def _retried(self, call: Any, what: str) -> Any:
        return await with_retries(call, what, None, self._metrics.write_errors.inc)

    def _waiting(self, parked: records.Parked, now_ms: int) -> bool:
        """True while the click may still come; then the next look at it is put off, less
        and less often, never past the end of the wait."""
        message_id = parked.conversion.message_id
        deadline = parked.parked_ms + self._wait_ms
        if now_ms >= deadline:
            return False
        looks, _ = self._backoff.get(message_id, (0, 0))
        delay_ms = int(min(self._poll * 2**looks, MAX_BACKOFF_SECONDS) * 1000)
        self._backoff[message_id] = (looks + 1, min(now_ms + delay_ms, deadline))
        return True


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
