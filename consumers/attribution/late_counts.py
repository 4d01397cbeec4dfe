"""Counting a conversion the matcher decided in its rollup row, once.

The row's `late` map notes the message ids of the conversions counted this way (value: when,
epoch ms). Counting is one conditional write on the row's version that adds the counters and
the note; a look that finds the note counts nothing. A note is kept until it is NOTE_SECONDS
old *and* its parked record is gone (checked with one consistent read when the note is
dropped): while the record exists, some look may still come to count it; once it is gone, a
look that listed it earlier has checked it within STALE_SECONDS of counting (it gives up
otherwise), long before the note can go. A row holds at most MAX_NOTES notes: past that, a
conversion waits for the next look (the row's size, and so each write's cost, stays bounded).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

from consumers.attribution import records
from consumers.attribution.rules import Conversion, Decision, report_counts
from consumers.dynamodb_batch import BATCH_GET_LIMIT, GetRequest
from consumers.dynamodb_item import Condition
from consumers.rollups.state import RollupState, from_item, to_item, with_late
from consumers.rollups.tally import RollupKey

if TYPE_CHECKING:
    from consumers.attribution.table import AttributionTable

STALE_SECONDS = 10
NOTE_SECONDS = 6 * STALE_SECONDS
MAX_NOTES = 200


class Late(NamedTuple):
    """A decided conversion to count: its row, itself, its decision."""

    row: RollupKey
    conversion: Conversion
    decision: Decision


class LateCounts:
    def __init__(self, table: AttributionTable, rollup_table: str) -> None:
        self._table = table
        self._rollups = rollup_table

    async def count(self, late: Late, checked_at: float, now_ms: int) -> bool:
        """Count `late` in its row unless the row has counted it; False when it gave up (the
        parked record was checked too long ago, or the row has no room for a note yet)."""
        message_id = late.conversion.message_id
        while time.monotonic() - checked_at < STALE_SECONDS:
            state = await self._read(late.row)
            if message_id in state.late:
                return True
            notes = await self._kept_notes(state.late, now_ms)
            if len(notes) >= MAX_NOTES:
                return False
            state_now = RollupState(
                state.counts, state.sketch, state.positions, state.version, notes
            )
            counts = report_counts(late.conversion, late.decision)
            new = with_late(state_now, message_id, str(now_ms), counts)
            if await self._write(late.row, state, new):
                return True
        return False

    async def _kept_notes(self, notes: dict[str, str], now_ms: int) -> dict[str, str]:
        """The notes to keep: the young ones, and old ones whose parked record still exists."""
        oldest = now_ms - NOTE_SECONDS * 1000
        old = [m for m, at in notes.items() if int(at) < oldest]
        if not old:
            return notes
        waiting = await self._still_parked(old)
        return {m: at for m, at in notes.items() if m not in old or m in waiting}

    async def _still_parked(self, message_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for n in range(0, len(message_ids), BATCH_GET_LIMIT):
            keys = [records.parked_key(m) for m in message_ids[n : n + BATCH_GET_LIMIT]]
            items = await self._table.get_many(GetRequest(keys, ("sk",)))
            found.update(item["sk"]["S"] for item in items)
        return found

    async def _read(self, row: RollupKey) -> RollupState:
        return from_item(await self._table.get(self._rollups, _row_key(row)))

    async def _write(self, row: RollupKey, read: RollupState, new: RollupState) -> bool:
        """Write the row over the version read; False when someone wrote it since."""
        condition = Condition("attribute_not_exists(program_id)")
        if read.version:
            condition = Condition("version = :read", {":read": {"N": str(read.version)}})
        return await self._table.put(self._rollups, to_item(row, new), condition)


def _row_key(row: RollupKey) -> dict[str, Any]:
    return {"program_id": {"S": row.program_id}, "bucket": {"S": row.bucket}}
